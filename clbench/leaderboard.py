"""Leaderboards: from run records to tables for a paper or a web page.

The pipeline has three stages, each usable on its own:

1. **Data model** - `load_records` reads and validates record files (every file must be a
   valid `RunRecord`, or nothing is produced), `select_protocol` filters them, and
   `build_leaderboards` groups them by setup hash (the protocol hash without the
   environment; different setups are never mixed) and then by entry = (method name,
   canonical hyperparameters, environment with its parameters).
2. **Statistics** - per entry and metric: mean, sample std (ddof=1) and a 95% Student-t
   confidence interval over seeds; rank by mean ACC; best value per metric; and a two-sided
   paired t-test of each entry's per-seed ACC against the best-ACC entry over shared seeds.
3. **Renderers** - `render(boards, fmt)` for Markdown, LaTeX (booktabs), CSV, HTML and JSON.
   Output is deterministic: the same records give byte-identical text, in any input order.

Docs: docs/publishing-a-leaderboard.md.
"""

from __future__ import annotations

import csv
import html
import io
import json
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from statistics import fmean, stdev
from typing import Any

from .errors import ClbenchError
from .metrics import METRIC_FORMS, METRIC_LABELS
from .records import RunRecord, canonical_json, read_record, write_atomic

from scipy import stats as scipy_stats

#: Metrics where a smaller value is better; for all others larger is better.
LOWER_IS_BETTER = frozenset({"forgetting"})
CONFIDENCE = 0.95
ALPHA = 0.05
FORMATS = ("md", "latex", "csv", "html", "json")
FORMAT_SUFFIXES = {".md": "md", ".markdown": "md", ".tex": "latex", ".csv": "csv",
                   ".html": "html", ".htm": "html", ".json": "json"}

SIGNIFICANCE_TEST = (
    "two-sided paired t-test on per-seed ACC differences against the best-ACC entry, "
    f"over the seeds both entries have, alpha = {ALPHA:g}"
)
#: Significance statuses: the best-ACC entry itself, not significantly different from it
#: (marked), significantly worse, or not testable (fewer than 2 shared seeds).
REFERENCE, NOT_SIGNIFICANT, SIGNIFICANT, UNTESTABLE = "reference", "not_significant", "significant", "untestable"


# --------------------------------------------------------------------------- data model


@dataclass(frozen=True)
class Summary:
    """One metric of one entry over its seeds (fractions, not percent)."""

    values: tuple[float, ...]
    mean: float | None
    std: float | None
    ci_low: float | None
    ci_high: float | None

    @property
    def n(self) -> int:
        return len(self.values)


@dataclass(frozen=True)
class Significance:
    """An entry's paired test against the best-ACC entry (t and p are None when not computed)."""

    status: str
    shared_seeds: int
    t: float | None = None
    p_value: float | None = None


@dataclass
class Entry:
    """One leaderboard row: every seed of one method configuration on one protocol."""

    method: str
    hyperparameters: dict[str, Any]
    environment: str
    records: list[RunRecord]
    stats: dict[str, Summary] = field(default_factory=dict)
    rank: int = 0
    best: set[str] = field(default_factory=set)
    significance: Significance = Significance(UNTESTABLE, 0)

    @property
    def hp_key(self) -> str:
        return canonical_json(self.hyperparameters)

    @property
    def seeds(self) -> tuple[int, ...]:
        return tuple(r.seed for r in self.records)

    @property
    def acc_by_seed(self) -> dict[int, float]:
        return {r.seed: r.metrics.acc for r in self.records}

    @property
    def stored_exemplars(self) -> tuple[int, int]:
        counts = [r.method.stored_exemplars for r in self.records]
        return min(counts), max(counts)

    @property
    def plugins(self) -> tuple[str, ...]:
        return tuple(sorted({f"{r.method.plugin} {r.method.version}" for r in self.records}))

    @property
    def marked(self) -> bool:
        return self.significance.status == NOT_SIGNIFICANT


@dataclass
class Leaderboard:
    """All entries of one setup (protocol minus environment); `protocol_hash` is the setup hash."""

    protocol_hash: str
    labels: tuple[tuple[str, int], ...]  # (name, version) pairs seen; usually exactly one
    environment: str
    entries: list[Entry]

    @property
    def title(self) -> str:
        return ", ".join(f"{name} v{version}" for name, version in self.labels)

    @property
    def records(self) -> list[RunRecord]:
        return [r for e in self.entries for r in e.records]

    @property
    def clbench_versions(self) -> tuple[str, ...]:
        return tuple(sorted({r.versions.clbench for r in self.records}))

    @property
    def plugins(self) -> tuple[str, ...]:
        return tuple(sorted({p for e in self.entries for p in e.plugins}))


def record_paths(inputs: Iterable[str | Path]) -> list[Path]:
    """Files as given, folders expanded to every `*.json` below them; sorted, no repeats."""
    paths: dict[Path, Path] = {}
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = [p for p in path.rglob("*.json") if p.is_file()]
        elif path.exists():
            found = [path]
        else:
            raise ClbenchError(f"no such record file or folder '{path}'")
        for p in found:
            paths.setdefault(p.resolve(), p)
    return [paths[key] for key in sorted(paths)]


def load_records(inputs: Iterable[str | Path]) -> list[RunRecord]:
    """Read and validate every record; any invalid file or conflicting duplicate refuses all."""
    inputs = list(inputs)
    by_id: dict[str, tuple[Path, RunRecord]] = {}
    for path in record_paths(inputs):
        record = read_record(path)
        seen = by_id.get(record.run_id)
        if seen is None:
            by_id[record.run_id] = (path, record)
        elif seen[1] != record:
            raise ClbenchError(
                f"records '{seen[0]}' and '{path}' are the same run (protocol "
                f"{record.protocol_name}, method {record.method.name}, seed {record.seed}) "
                "with different contents; keep only one"
            )
    if not by_id:
        raise ClbenchError(f"no record files (*.json) found in {', '.join(map(str, inputs))}")
    return [record for _, record in sorted(by_id.values(), key=lambda item: item[1].run_id)]


def select_protocol(records: Sequence[RunRecord], protocol: str | None) -> list[RunRecord]:
    """Records whose protocol name is `protocol` or whose hash starts with it."""
    if not protocol:
        return list(records)
    kept = [r for r in records
            if r.protocol_name == protocol or r.protocol_hash.startswith(protocol.lower())
            or r.setup_hash.startswith(protocol.lower())]
    if not kept:
        found = sorted({f"{r.protocol_name} ({r.protocol_hash[:12]})" for r in records})
        raise ClbenchError(f"no records of protocol '{protocol}' (the records have: {', '.join(found)})")
    return kept


def build_leaderboards(records: Sequence[RunRecord]) -> list[Leaderboard]:
    """Group by setup hash (protocol minus environment), then by entry, and compute statistics.

    Entries are (method, hyperparameters, environment), so one table compares methods and
    environments on one fixed setup; different setups are never mixed.
    """
    by_hash: dict[str, list[RunRecord]] = {}
    for record in records:
        by_hash.setdefault(record.setup_hash, []).append(record)
    boards = []
    for setup_hash, group in by_hash.items():
        entries: dict[tuple[str, str, str], Entry] = {}
        for record in sorted(group, key=lambda r: r.seed):
            environment = record.environment_label
            key = (record.method.name, canonical_json(record.method.hyperparameters), environment)
            entry = entries.setdefault(key, Entry(record.method.name, record.method.hyperparameters,
                                                  environment, []))
            entry.records.append(record)
        labels = tuple(sorted({(r.protocol_name, int(r.protocol["version"])) for r in group}))
        environments = sorted({(r.environment_label, r.protocol_hash) for r in group})
        board = Leaderboard(setup_hash, labels,
                            "; ".join(f"{label} (protocol hash {h[:12]})" for label, h in environments),
                            list(entries.values()))
        compute_statistics(board)
        boards.append(board)
    return sorted(boards, key=lambda b: (b.labels, b.protocol_hash))


# --------------------------------------------------------------------------- statistics


def t_quantile(q: float, df: int) -> float:
    """The q-quantile (q > 0.5) of Student's t with df degrees of freedom."""
    return float(scipy_stats.t.ppf(q, df))


def t_two_sided_p(t: float, df: int) -> float:
    """Two-sided p-value of a t statistic."""
    return float(2 * scipy_stats.t.sf(abs(t), df))


def summarize(values: Sequence[float], confidence: float = CONFIDENCE) -> Summary:
    """Mean, sample std (ddof=1) and the Student-t confidence interval of the mean."""
    values = tuple(float(v) for v in values)
    if not values:
        return Summary(values, None, None, None, None)
    mean = fmean(values)
    if len(values) < 2:
        return Summary(values, mean, None, None, None)
    std = stdev(values)
    half = t_quantile((1 + confidence) / 2, len(values) - 1) * std / math.sqrt(len(values))
    return Summary(values, mean, std, mean - half, mean + half)


def paired_test(reference: dict[int, float], other: dict[int, float], alpha: float = ALPHA) -> Significance:
    """Two-sided paired t-test of per-seed values over the seeds both entries have."""
    shared = sorted(set(reference) & set(other))
    n = len(shared)
    if n < 2:
        return Significance(UNTESTABLE, n)
    diffs = [reference[s] - other[s] for s in shared]
    mean, sd = fmean(diffs), stdev(diffs)
    if sd == 0:  # identical differences: t is 0 (all zero) or infinite
        if mean == 0:
            return Significance(NOT_SIGNIFICANT, n, 0.0, 1.0)
        return Significance(SIGNIFICANT, n, None, 0.0)
    t = mean / (sd / math.sqrt(n))
    significant = abs(t) > t_quantile(1 - alpha / 2, n - 1)
    return Significance(SIGNIFICANT if significant else NOT_SIGNIFICANT, n, t, t_two_sided_p(t, n - 1))


def shown(value: float) -> float:
    """A fraction as the table shows it (percent, two decimals); ties and bests use this."""
    return float(f"{value * 100:.2f}")


def compute_statistics(board: Leaderboard) -> None:
    """Fill in each entry's summaries, rank, best metrics and significance, and sort entries."""
    for entry in board.entries:
        entry.stats = {key: summarize([getattr(r.metrics, key) for r in entry.records
                                       if getattr(r.metrics, key) is not None])
                       for key in METRIC_LABELS}

    def acc(entry: Entry) -> float:
        return entry.stats["acc"].mean  # ACC is never None in a record

    board.entries.sort(key=lambda e: (-acc(e), e.method, e.hp_key, e.environment))
    for entry in board.entries:  # competition ranking (1, 1, 3) on the shown ACC
        entry.rank = 1 + sum(shown(acc(other)) > shown(acc(entry)) for other in board.entries)
    for key in METRIC_LABELS:
        means = [shown(e.stats[key].mean) for e in board.entries if e.stats[key].mean is not None]
        if not means:
            continue
        best = min(means) if key in LOWER_IS_BETTER else max(means)
        for entry in board.entries:
            if entry.stats[key].mean is not None and shown(entry.stats[key].mean) == best:
                entry.best.add(key)
    reference = board.entries[0]
    for entry in board.entries:
        entry.significance = (Significance(REFERENCE, len(entry.records)) if entry is reference
                              else paired_test(reference.acc_by_seed, entry.acc_by_seed))


# --------------------------------------------------------------------------- shared text


def _pct(value: float) -> str:
    text = f"{value * 100:.2f}"
    return "0.00" if text == "-0.00" else text


def _hyperparameters_text(hp: dict[str, Any]) -> str:
    if not hp:
        return "-"
    return ", ".join(f"{key}={canonical_json(hp[key])}" for key in sorted(hp))


def _exemplars_text(entry: Entry) -> str:
    low, high = entry.stored_exemplars
    return str(low) if low == high else f"{low}-{high}"


def _footer_lines(board: Leaderboard, mark: str, code=lambda s: s) -> list[str]:
    forms = "; ".join(code(METRIC_FORMS[key]) for key in METRIC_LABELS)
    return [
        f"Protocol {board.title}, setup hash {board.protocol_hash} (benchmark, model, training, "
        f"evaluation); environments: {board.environment}.",
        f"Metrics (averaged over tasks): {forms}.",
        "Cells: mean ± sample std (ddof=1) over seeds, then the 95% confidence interval of the "
        "mean [Student t, n-1 dof]; single-seed entries show the value only. Accuracies in %.",
        "Rank by mean ACC (equal shown values share a rank). Bold: best per metric "
        "(higher is better; Forgetting: lower is better).",
        f"{mark} not significantly different from the best-ACC entry ({SIGNIFICANCE_TEST}); "
        "entries with fewer than 2 seeds shared with it are not tested and not marked.",
        f"Records from clbench {', '.join(board.clbench_versions)}; methods from "
        f"{', '.join(board.plugins)}.",
    ]


_HEADERS = ["Rank", "Method", "Hyperparameters", "Environment", "Seeds", "Exemplars",
            *METRIC_LABELS.values()]


@dataclass(frozen=True)
class _Style:
    """How one output format writes text, bold, ± and a metric cell."""

    text: Callable[[str], str]  # escape plain text
    bold: Callable[[str], str]
    pm: str
    cell: Callable[[str, str | None, bool], str]  # (mean ± std, "[low, high]" or None, marked)


def _cells(entry: Entry, style: _Style) -> list[str]:
    """One row's cells, in `_HEADERS` order."""
    row = [str(entry.rank), style.text(entry.method),
           style.text(_hyperparameters_text(entry.hyperparameters)), style.text(entry.environment),
           str(len(entry.records)), _exemplars_text(entry)]
    for key in METRIC_LABELS:
        s = entry.stats[key]
        if s.mean is None:
            row.append("n/a")
            continue
        core = _pct(s.mean) if s.std is None else f"{_pct(s.mean)}{style.pm}{_pct(s.std)}"
        if key in entry.best:
            core = style.bold(core)
        ci = None if s.ci_low is None else f"[{_pct(s.ci_low)}, {_pct(s.ci_high)}]"
        row.append(style.cell(core, ci, key == "acc" and entry.marked))
    return row


# --------------------------------------------------------------------------- renderers


def _md_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("|", "\\|").replace("*", "\\*")


_MD_STYLE = _Style(
    text=_md_escape, bold=lambda s: f"**{s}**", pm=" ± ",
    cell=lambda core, ci, marked: core + (f" {ci}" if ci else "") + (" †" if marked else ""),
)


def _md_table(headers: list[str], rows: list[list[str]], right: set[int]) -> str:
    """A GitHub table, padded for reading as source; columns in `right` are right-aligned."""
    widths = [max(3, *(len(row[i]) for row in [headers, *rows])) for i in range(len(headers))]

    def line(cells):
        return "| " + " | ".join(c.rjust(w) if i in right else c.ljust(w)
                                 for i, (c, w) in enumerate(zip(cells, widths))) + " |"

    rule = "|" + "|".join("-" * (w + 1) + ":" if i in right else "-" * (w + 2)
                          for i, w in enumerate(widths)) + "|"
    return "\n".join([line(headers), rule, *(line(row) for row in rows)])


def render_markdown(boards: Sequence[Leaderboard]) -> str:
    parts = []
    for board in boards:
        rows = [_cells(e, _MD_STYLE) for e in board.entries]
        table = _md_table(_HEADERS, rows, right={0, 4, 5})
        footer = "\n".join(f"- {line}" for line in _footer_lines(board, "†", lambda s: f"`{s}`"))
        parts.append(f"### Leaderboard: {board.title} (setup hash {board.protocol_hash[:12]})\n\n{table}\n\n{footer}\n")
    return "\n".join(parts)


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
    "<": r"\textless{}", ">": r"\textgreater{}", "±": r"$\pm$", "†": r"$^{\dagger}$",
    "|": r"\textbar{}",
}
_LATEX_RE = re.compile("|".join(re.escape(c) for c in _LATEX_SPECIAL))


_LATEX_MINUS = re.compile(r"(?<![\w.])-(?=\d)")  # a number's minus sign, not a hyphen


def latex_escape(text: str) -> str:
    return _LATEX_RE.sub(lambda m: _LATEX_SPECIAL[m.group()], text)


def _breakable_hash(value: str) -> str:
    return r"\allowbreak{}".join(value[i:i + 8] for i in range(0, len(value), 8))


def _latex_cell(core: str, ci: str | None, marked: bool) -> str:
    """Mean ± std (with the mark) above the CI in small type, stacked to keep columns narrow."""
    core += r"$^{\dagger}$" if marked else ""
    if ci is None:
        return core
    return rf"\begin{{tabular}}[c]{{@{{}}c@{{}}}}{core}\\{{\scriptsize {ci}}}\end{{tabular}}"


_LATEX_STYLE = _Style(text=latex_escape, bold=lambda s: rf"\textbf{{{s}}}", pm=r" $\pm$ ",
                      cell=_latex_cell)


def render_latex(boards: Sequence[Leaderboard]) -> str:
    parts = []
    for board in boards:
        label = re.sub(r"[^a-z0-9-]+", "-", board.labels[0][0].lower())
        lines = [
            f"% clbench leaderboard: protocol {board.title}, hash {board.protocol_hash}",
            "% needs \\usepackage{booktabs} in the preamble",
            r"\begin{table}[htbp]",
            r"\centering",
            rf"\caption{{Leaderboard on protocol {latex_escape(board.title)} "
            rf"(setup hash \texttt{{{board.protocol_hash[:12]}}}). Accuracies in \%.}}",
            rf"\label{{tab:clbench-{label}-{board.protocol_hash[:8]}}}",
            r"\small",
            r"\begin{tabular}{rlllrr" + "c" * len(METRIC_LABELS) + "}",
            r"\toprule",
            " & ".join(latex_escape(h) for h in _HEADERS) + r" \\",
            r"\midrule",
        ]
        for entry in board.entries:
            cells = _cells(entry, _LATEX_STYLE)
            cells[6:] = [_LATEX_MINUS.sub(r"$-$", cell) for cell in cells[6:]]
            lines.append(" & ".join(cells) + r" \\")
        notes = [latex_escape(line) for line in _footer_lines(board, "†")[1:]]
        notes.insert(0, f"Protocol {latex_escape(board.title)}, setup hash "
                        rf"\texttt{{{_breakable_hash(board.protocol_hash)}}}; environments: "
                        f"{latex_escape(board.environment)}.")
        lines += [
            r"\bottomrule",
            r"\end{tabular}",
            r"\par\smallskip",
            r"\begin{minipage}{\linewidth}\footnotesize",
            *(line + r"\par" for line in notes),
            r"\end{minipage}",
            r"\end{table}",
        ]
        parts.append("\n".join(lines) + "\n")
    return "\n".join(parts)


def _html_text(value: str) -> str:
    return html.escape(value, quote=True).encode("ascii", "xmlcharrefreplace").decode("ascii")


_HTML_STYLE = _Style(
    text=_html_text, bold=lambda s: f"<strong>{s}</strong>", pm=" &plusmn; ",
    cell=lambda core, ci, marked: core + (f" <small>{ci}</small>" if ci else "")
    + (" &dagger;" if marked else ""),
)


def render_html(boards: Sequence[Leaderboard]) -> str:
    parts = []
    for board in boards:
        lines = [
            f'<section class="clbench-leaderboard" data-protocol-hash="{board.protocol_hash}">',
            f"<h3>Leaderboard: {_html_text(board.title)} (setup hash {board.protocol_hash[:12]})</h3>",
            "<table>",
            "<thead>",
            "<tr>" + "".join(f"<th>{_html_text(h)}</th>" for h in _HEADERS) + "</tr>",
            "</thead>",
            "<tbody>",
        ]
        for entry in board.entries:
            cells = _cells(entry, _HTML_STYLE)
            lines.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
        lines += ["</tbody>", "</table>", '<ul class="notes">']
        lines += [f"<li>{_html_text(line)}</li>" for line in _footer_lines(board, "†")]
        lines += ["</ul>", "</section>"]
        parts.append("\n".join(lines) + "\n")
    return "\n".join(parts)


def _num(value: float | None) -> float | None:
    """Numbers in machine-readable output: fractions rounded to 10 decimals, no -0.0."""
    if value is None or not math.isfinite(value):
        return None
    value = round(value, 10)
    return 0.0 if value == 0 else value


def _entry_data(board: Leaderboard, entry: Entry) -> dict[str, Any]:
    low, high = entry.stored_exemplars
    sig = entry.significance
    return {
        "protocol": {
            "hash": board.protocol_hash,
            "labels": [{"name": name, "version": version} for name, version in board.labels],
            "environment": board.environment,
        },
        "rank": entry.rank,
        "method": entry.method,
        "hyperparameters": entry.hyperparameters,
        "environment": entry.environment,
        "plugins": list(entry.plugins),
        "seeds": list(entry.seeds),
        "n_seeds": len(entry.records),
        "stored_exemplars": {"min": low, "max": high},
        "metrics": {
            key: {
                "form": METRIC_FORMS[key],
                "mean": _num(s.mean), "std": _num(s.std),
                "ci_low": _num(s.ci_low), "ci_high": _num(s.ci_high),
                "n": s.n, "best": key in entry.best,
                "higher_is_better": key not in LOWER_IS_BETTER,
                "per_seed": [_num(v) for v in s.values] if s.n == len(entry.records) else None,
            }
            for key, s in entry.stats.items()
        },
        "significance": {
            "status": sig.status, "marked": entry.marked, "shared_seeds": sig.shared_seeds,
            "t": _num(sig.t), "p_value": _num(sig.p_value), "test": SIGNIFICANCE_TEST,
        },
        "clbench_versions": sorted({r.versions.clbench for r in entry.records}),
        "run_ids": [r.run_id for r in entry.records],
        "units": "fractions (0-1), not percent",
        "confidence": CONFIDENCE,
    }


def render_json(boards: Sequence[Leaderboard]) -> str:
    entries = [_entry_data(board, entry) for board in boards for entry in board.entries]
    return json.dumps(entries, indent=2, sort_keys=True, ensure_ascii=True) + "\n"


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(_num(value)) if _num(value) is not None else ""
    return str(value)


def render_csv(boards: Sequence[Leaderboard]) -> str:
    columns = ["protocol_hash", "protocol", "environment", "rank", "method", "hyperparameters",
               "plugins", "seeds", "n_seeds", "stored_exemplars_min", "stored_exemplars_max"]
    for key in METRIC_LABELS:
        columns += [f"{key}_mean", f"{key}_std", f"{key}_ci_low", f"{key}_ci_high", f"{key}_n", f"{key}_best"]
    columns += ["significance", "marked", "shared_seeds", "t", "p_value", "clbench_versions"]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for board in boards:
        for entry in board.entries:
            low, high = entry.stored_exemplars
            row: list[Any] = [board.protocol_hash, board.title, entry.environment, entry.rank,
                              entry.method, entry.hp_key, " ".join(entry.plugins),
                              " ".join(map(str, entry.seeds)), len(entry.records), low, high]
            for key in METRIC_LABELS:
                s = entry.stats[key]
                row += [s.mean, s.std, s.ci_low, s.ci_high, s.n, key in entry.best]
            sig = entry.significance
            row += [sig.status, entry.marked, sig.shared_seeds, sig.t, sig.p_value,
                    " ".join(sorted({r.versions.clbench for r in entry.records}))]
            writer.writerow([_csv_value(v) for v in row])
    return out.getvalue()


RENDERERS = {"md": render_markdown, "latex": render_latex, "csv": render_csv,
             "html": render_html, "json": render_json}


def render(boards: Sequence[Leaderboard], fmt: str = "md") -> str:
    try:
        renderer = RENDERERS[fmt]
    except KeyError:
        raise ClbenchError(f"unknown leaderboard format '{fmt}'; known: {', '.join(FORMATS)}") from None
    return renderer(boards)


# --------------------------------------------------------------------------- entry points


def format_for(fmt: str | None, out: str | Path | None) -> str:
    """The explicit format, else the one the output file's suffix implies, else Markdown."""
    if fmt:
        return fmt
    if out is not None:
        return FORMAT_SUFFIXES.get(Path(out).suffix.lower(), "md")
    return "md"


def leaderboard_text(inputs: Iterable[str | Path], protocol: str | None = None, fmt: str = "md") -> str:
    """Records (files or folders) to rendered tables, one per protocol hash."""
    records = select_protocol(load_records(inputs), protocol)
    return render(build_leaderboards(records), fmt)


def write_output(path: str | Path, text: str) -> Path:
    """Write atomically, with a one-line error when the path cannot be written."""
    path = Path(path)
    try:
        write_atomic(path, text)
    except OSError as exc:
        raise ClbenchError(f"cannot write '{path}': {exc.strerror or exc}") from None
    return path
