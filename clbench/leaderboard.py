"""Leaderboards: from run records to tables for a paper or a web page.

Three stages, each usable on its own:

1. **Records** - `read_records` reads and validates record files (every file must be a
   valid, sealed `RunRecord`, or nothing is produced); `select_protocol` filters them.
   Any other filter is a list comprehension away: every stage takes a list of records.
2. **Statistics** - `leaderboard_frame` turns the records' DataFrame (clbench.frames) into
   one row per entry = (method, canonical hyperparameters, environment), grouped by setup
   hash (the protocol hash without the environment; different setups are never mixed).
   Per entry and metric: mean, sample std (ddof=1) and a 95% Student-t confidence interval
   over seeds; a rank by mean ACC; the best value per metric; and a two-sided paired t-test
   of each entry's per-seed ACC against the best-ACC entry over shared seeds.
3. **Renderers** - `render(board, fmt)` for Markdown, LaTeX (booktabs), CSV, HTML and JSON.
   Output is deterministic: the same records give byte-identical text, in any input order.

Docs: docs/publishing-a-leaderboard.md, docs/notebooks.md.
"""

from __future__ import annotations

import html
import json
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from statistics import fmean, stdev
from typing import Any

import pandas as pd
from scipy import stats as scipy_stats

from .errors import ClbenchError
from .frames import ENTRY_KEYS, collect_records, records_frame
from .metrics import METRIC_FORMS, METRIC_LABELS
from .records import RunRecord, canonical_json, read_record, write_atomic

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


# --------------------------------------------------------------------------- records


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


def read_records(inputs: Iterable[str | Path]) -> list[RunRecord]:
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
    """Records whose protocol name is `protocol` or whose protocol or setup hash starts with it."""
    if not protocol:
        return list(records)
    kept = [r for r in records
            if r.protocol_name == protocol or r.protocol_hash.startswith(protocol.lower())
            or r.setup_hash.startswith(protocol.lower())]
    if not kept:
        found = sorted({f"{r.protocol_name} ({r.protocol_hash[:12]})" for r in records})
        raise ClbenchError(f"no records of protocol '{protocol}' (the records have: {', '.join(found)})")
    return kept


# --------------------------------------------------------------------------- statistics


@dataclass(frozen=True)
class Significance:
    """An entry's paired test against the best-ACC entry (t and p are None when not computed)."""

    status: str
    shared_seeds: int
    t: float | None = None
    p_value: float | None = None


def t_quantile(q: float, df: int) -> float:
    """The q-quantile (q > 0.5) of Student's t with df degrees of freedom."""
    return float(scipy_stats.t.ppf(q, df))


def t_two_sided_p(t: float, df: int) -> float:
    """Two-sided p-value of a t statistic."""
    return float(2 * scipy_stats.t.sf(abs(t), df))


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


def _mean(values: pd.Series) -> float:
    """The mean of the defined values (math.fsum-exact, like the std below)."""
    values = values.dropna()
    return fmean(values) if len(values) else math.nan


def _std(values: pd.Series) -> float:
    """Sample std (ddof=1) of the defined values; exactly rounded, so shown digits never
    depend on the summation order."""
    values = values.dropna()
    return stdev(values) if len(values) > 1 else math.nan


def _sorted_set(values: Iterable) -> tuple:
    return tuple(sorted(set(values)))


def leaderboard_frame(records: pd.DataFrame | Iterable[RunRecord | str | Path],
                      confidence: float = CONFIDENCE) -> pd.DataFrame:
    """One row per entry with its statistics, setups in a fixed order, entries by rank.

    `records` is a DataFrame from `clbench.load_records` (filter it first if you like), or
    RunRecords and record paths. Metric columns: `M_mean`, `M_std`, `M_ci_low`,
    `M_ci_high`, `M_n`, `M_best` and `M_values` (per seed, fractions) for every metric M.
    """
    runs = records if isinstance(records, pd.DataFrame) else records_frame(collect_records(records))
    if runs.empty:
        raise ClbenchError("no records to tabulate")
    runs = runs.sort_values(["seed", "run_id"], kind="stable").assign(
        plugin_label=lambda f: f.plugin + " " + f.plugin_version,
        label=lambda f: list(zip(f.protocol, f.protocol_version.astype(int))),
        label_changes=lambda f: list(zip(f.protocol, f.setup_changes)),
        label_text=lambda f: [f"{name} v{version}" + (f" with {changes}" if changes else "")
                              for name, version, changes in zip(f.protocol, f.protocol_version, f.setup_changes)],
        env_hash=lambda f: f.environment + " (protocol hash " + f.protocol_hash.str[:12] + ")")
    entries = runs.groupby(ENTRY_KEYS, sort=False)
    board = entries.agg(seeds=("seed", tuple), n_seeds=("seed", "size"),
                        stored_exemplars_min=("exemplars", "min"),
                        stored_exemplars_max=("exemplars", "max"),
                        plugins=("plugin_label", _sorted_set),
                        hp_sources=("hp_source", _sorted_set),
                        tuning_ids=("tuning_id", _sorted_set),
                        clbench_versions=("clbench_version", _sorted_set),
                        run_ids=("run_id", tuple))
    for key in METRIC_LABELS:
        values = entries[key]
        mean, std, n = values.agg(_mean), values.agg(_std), values.count()
        half = scipy_stats.t.ppf((1 + confidence) / 2, n - 1) * std / n ** 0.5
        board = board.assign(**{f"{key}_mean": mean, f"{key}_std": std, f"{key}_ci_low": mean - half,
                                f"{key}_ci_high": mean + half, f"{key}_n": n,
                                f"{key}_values": values.agg(lambda s: tuple(s.dropna()))})
    board = board.reset_index()
    setups = runs.groupby("setup_hash", sort=False).agg(
        protocol_labels=("label", _sorted_set), protocol_changes=("label_changes", _sorted_set),
        protocol_texts=("label_text", _sorted_set), environments=("env_hash", _sorted_set))
    # "pmnist-10 v1 with training.epochs=1": a setup made with --set says how it differs
    setups["protocol"] = setups.pop("protocol_texts").map(", ".join)
    setups["environments"] = setups.environments.map("; ".join)
    order = sorted(setups.index, key=lambda h: (setups.protocol_labels[h], setups.protocol[h], h))
    board = board.join(setups, on="setup_hash").assign(
        setup_order=lambda f: f.setup_hash.map({h: i for i, h in enumerate(order)}))
    board = board.sort_values(["setup_order", "acc_mean", "method", "hyperparameters", "environment"],
                              ascending=[True, False, True, True, True], kind="stable",
                              ignore_index=True)
    # competition ranking (1, 1, 3) on the ACC as shown
    board["rank"] = board.acc_mean.map(shown).groupby(board.setup_hash).rank(
        method="min", ascending=False).astype(int)
    for key in METRIC_LABELS:
        shown_means = board[f"{key}_mean"].map(shown, na_action="ignore")
        best = shown_means.groupby(board.setup_hash).transform("min" if key in LOWER_IS_BETTER else "max")
        board[f"{key}_best"] = shown_means.eq(best)
    tests = pd.concat([_significance(table) for table in _setups(board)])
    board[["significance", "shared_seeds", "t", "p_value"]] = pd.DataFrame(
        [(s.status, s.shared_seeds, s.t, s.p_value) for s in tests], index=board.index)
    board["marked"] = board.significance.eq(NOT_SIGNIFICANT)
    return board.drop(columns="setup_order")


def _significance(table: pd.DataFrame) -> pd.Series:
    """Each entry of one setup tested against its first (best-ACC) entry."""
    by_seed = [dict(zip(seeds, accs)) for seeds, accs in zip(table.seeds, table.acc_values)]
    return pd.Series([Significance(REFERENCE, len(table.seeds.iloc[0])) if i == 0 else
                      paired_test(by_seed[0], other) for i, other in enumerate(by_seed)],
                     index=table.index)


def _setups(board: pd.DataFrame) -> Iterable[pd.DataFrame]:
    """Each setup's rows, in table order."""
    return (table for _, table in board.groupby("setup_hash", sort=False))


# --------------------------------------------------------------------------- shared text


def _pct(value: float) -> str:
    text = f"{value * 100:.2f}"
    return "0.00" if text == "-0.00" else text


def hyperparameters_text(hp: dict[str, Any] | str) -> str:
    """`key=value` pairs (values in JSON form) sorted by key, or '-'; takes a dict or its JSON."""
    hp = json.loads(hp) if isinstance(hp, str) else hp
    if not hp:
        return "-"
    return ", ".join(f"{key}={canonical_json(hp[key])}" for key in sorted(hp))


def _union(table: pd.DataFrame, column: str) -> str:
    return ", ".join(sorted({item for items in table[column] for item in items}))


def _footer_lines(table: pd.DataFrame, mark: str, code=lambda s: s) -> list[str]:
    first = table.iloc[0]
    forms = "; ".join(code(METRIC_FORMS[key]) for key in METRIC_LABELS)
    return [
        f"Protocol {first.protocol}, setup hash {first.setup_hash} (benchmark, model, training, "
        f"evaluation); environments: {first.environments}.",
        f"Metrics (averaged over tasks): {forms}.",
        "Cells: mean ± sample std (ddof=1) over seeds, then the 95% confidence interval of the "
        "mean [Student t, n-1 dof]; single-seed entries show the value only. Accuracies in %.",
        "Rank by mean ACC (equal shown values share a rank). Bold: best per metric "
        "(higher is better; Forgetting: lower is better).",
        f"{mark} not significantly different from the best-ACC entry ({SIGNIFICANCE_TEST}); "
        "entries with fewer than 2 seeds shared with it are not tested and not marked.",
        f"Records from clbench {_union(table, 'clbench_versions')}; methods from "
        f"{_union(table, 'plugins')}.",
        *_tuning_lines(table),
    ]


def _tuning_lines(table: pd.DataFrame) -> list[str]:
    """Say which entries were tuned, and that tuned and untuned entries share the ranking."""
    tuned = table.hp_sources.map(lambda kinds: "tuned" in kinds)
    if not tuned.any():
        return []
    ids = ", ".join(sorted({i for ids in table.tuning_ids[tuned] for i in ids if i}))
    line = ("(tuned): hyperparameters chosen by `clbench tune` on the protocol's tuning stream "
            f"(tuning records {ids}).")
    if not tuned.all():
        line += (" The other entries use their defaults or hand-set values: this ranking puts "
                 "tuned and untuned entries side by side.")
    return [line]


HEADERS = ["Rank", "Method", "Hyperparameters", "Environment", "Seeds", "Exemplars",
           *METRIC_LABELS.values()]


@dataclass(frozen=True)
class _Style:
    """How one output format writes text, bold, ± and a metric cell."""

    text: Callable[[str], str]  # escape plain text
    bold: Callable[[str], str]
    pm: str
    cell: Callable[[str, str | None, bool], str]  # (mean ± std, "[low, high]" or None, marked)


def _cells(row: pd.Series, style: _Style) -> list[str]:
    """One entry's cells, in `HEADERS` order."""
    low, high = row.stored_exemplars_min, row.stored_exemplars_max
    hp = hyperparameters_text(row.hyperparameters) + (" (tuned)" if "tuned" in row.hp_sources else "")
    cells = [str(row["rank"]), style.text(row.method), style.text(hp),
             style.text(row.environment), str(row.n_seeds), str(low) if low == high else f"{low}-{high}"]
    for key in METRIC_LABELS:
        mean, std, low, high = (row[f"{key}_{part}"] for part in ("mean", "std", "ci_low", "ci_high"))
        if pd.isna(mean):
            cells.append("n/a")
            continue
        core = _pct(mean) if pd.isna(std) else f"{_pct(mean)}{style.pm}{_pct(std)}"
        if row[f"{key}_best"]:
            core = style.bold(core)
        ci = None if pd.isna(low) else f"[{_pct(low)}, {_pct(high)}]"
        cells.append(style.cell(core, ci, key == "acc" and row.marked))
    return cells


def _table_cells(table: pd.DataFrame, style: _Style) -> list[list[str]]:
    return [_cells(row, style) for _, row in table.iterrows()]


# --------------------------------------------------------------------------- renderers


def _md_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("|", "\\|").replace("*", "\\*")


_MD_STYLE = _Style(
    text=_md_escape, bold=lambda s: f"**{s}**", pm=" ± ",
    cell=lambda core, ci, marked: core + (f" {ci}" if ci else "") + (" †" if marked else ""),
)


def _md_table(headers: list[str], rows: list[list[str]], right: set[int]) -> str:
    """A GitHub table padded to its widest cell (tabulate pads two more and marks no alignment)."""
    widths = [max(3, *(len(row[i]) for row in [headers, *rows])) for i in range(len(headers))]

    def line(cells):
        return "| " + " | ".join(c.rjust(w) if i in right else c.ljust(w)
                                 for i, (c, w) in enumerate(zip(cells, widths))) + " |"

    rule = "|" + "|".join("-" * (w + 1) + ":" if i in right else "-" * (w + 2)
                          for i, w in enumerate(widths)) + "|"
    return "\n".join([line(headers), rule, *(line(row) for row in rows)])


def render_markdown(board: pd.DataFrame) -> str:
    parts = []
    for table in _setups(board):
        first = table.iloc[0]
        footer = "\n".join(f"- {line}" for line in _footer_lines(table, "†", lambda s: f"`{s}`"))
        parts.append(f"### Leaderboard: {first.protocol} (setup hash {first.setup_hash[:12]})\n\n"
                     f"{_md_table(HEADERS, _table_cells(table, _MD_STYLE), right={0, 4, 5})}\n\n{footer}\n")
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


def _latex_cell(core: str, ci: str | None, marked: bool) -> str:
    """Mean ± std (with the mark) above the CI in small type, stacked to keep columns narrow."""
    core += r"$^{\dagger}$" if marked else ""
    if ci is not None:
        core = rf"\begin{{tabular}}[c]{{@{{}}c@{{}}}}{core}\\{{\scriptsize {ci}}}\end{{tabular}}"
    return _LATEX_MINUS.sub(r"$-$", core)


_LATEX_STYLE = _Style(text=latex_escape, bold=lambda s: rf"\textbf{{{s}}}", pm=r" $\pm$ ",
                      cell=_latex_cell)


def render_latex(board: pd.DataFrame) -> str:
    parts = []
    for table in _setups(board):
        first = table.iloc[0]
        setup, label = first.setup_hash, re.sub(r"[^a-z0-9-]+", "-", first.protocol.split(" ")[0].lower())
        cells = pd.DataFrame(_table_cells(table, _LATEX_STYLE), columns=HEADERS)
        tabular = cells.style.hide(axis="index").to_latex(
            hrules=True, column_format="rlllrr" + "c" * len(METRIC_LABELS))  # booktabs rules
        breakable = r"\allowbreak{}".join(setup[i:i + 8] for i in range(0, len(setup), 8))
        notes = [f"Protocol {latex_escape(first.protocol)}, setup hash \\texttt{{{breakable}}}; "
                 f"environments: {latex_escape(first.environments)}.",
                 *(latex_escape(line) for line in _footer_lines(table, "†")[1:])]
        parts.append("\n".join([
            f"% clbench leaderboard: protocol {first.protocol}, hash {setup}",
            "% needs \\usepackage{booktabs} in the preamble",
            r"\begin{table}[htbp]",
            r"\centering",
            rf"\caption{{Leaderboard on protocol {latex_escape(first.protocol)} "
            rf"(setup hash \texttt{{{setup[:12]}}}). Accuracies in \%.}}",
            rf"\label{{tab:clbench-{label}-{setup[:8]}}}",
            r"\small",
            tabular + r"\par\smallskip",
            r"\begin{minipage}{\linewidth}\footnotesize",
            *(line + r"\par" for line in notes),
            r"\end{minipage}",
            r"\end{table}",
        ]) + "\n")
    return "\n".join(parts)


def _html_text(value: str) -> str:
    return html.escape(value, quote=True).encode("ascii", "xmlcharrefreplace").decode("ascii")


_HTML_STYLE = _Style(
    text=_html_text, bold=lambda s: f"<strong>{s}</strong>", pm=" &plusmn; ",
    cell=lambda core, ci, marked: core + (f" <small>{ci}</small>" if ci else "")
    + (" &dagger;" if marked else ""),
)


def render_html(board: pd.DataFrame) -> str:
    parts = []
    for table in _setups(board):
        first = table.iloc[0]
        cells = pd.DataFrame(_table_cells(table, _HTML_STYLE), columns=HEADERS)
        notes = "".join(f"<li>{_html_text(line)}</li>\n" for line in _footer_lines(table, "†"))
        parts.append(
            f'<section class="clbench-leaderboard" data-setup-hash="{first.setup_hash}">\n'
            f"<h3>Leaderboard: {_html_text(first.protocol)} (setup hash {first.setup_hash[:12]})</h3>\n"
            f"{cells.to_html(index=False, escape=False, border=0)}\n"
            f'<ul class="notes">\n{notes}</ul>\n</section>\n')
    return "\n".join(parts)


def _num(value: Any) -> float | None:
    """Numbers in machine-readable output: fractions rounded to 10 decimals, no -0.0, no NaN."""
    if value is None or not math.isfinite(value):
        return None
    value = round(float(value), 10)
    return 0.0 if value == 0 else value


def _entry_data(row: pd.Series) -> dict[str, Any]:
    return {
        "protocol": {
            "setup_hash": row.setup_hash,
            "labels": [{"name": name, "version": version} for name, version in row.protocol_labels],
            "changes": {name: changes for name, changes in row.protocol_changes if changes},
            "environment": row.environments,
        },
        "rank": int(row["rank"]),
        "method": row.method,
        "hyperparameters": json.loads(row.hyperparameters),
        "hyperparameter_sources": list(row.hp_sources),
        "environment": row.environment,
        "plugins": list(row.plugins),
        "seeds": [int(s) for s in row.seeds],
        "n_seeds": int(row.n_seeds),
        "stored_exemplars": {"min": int(row.stored_exemplars_min), "max": int(row.stored_exemplars_max)},
        "metrics": {
            key: {
                "form": METRIC_FORMS[key],
                **{part: _num(row[f"{key}_{part}"]) for part in ("mean", "std", "ci_low", "ci_high")},
                "n": int(row[f"{key}_n"]), "best": bool(row[f"{key}_best"]),
                "higher_is_better": key not in LOWER_IS_BETTER,
                "per_seed": ([_num(v) for v in row[f"{key}_values"]]
                             if row[f"{key}_n"] == row.n_seeds else None),
            }
            for key in METRIC_LABELS
        },
        "significance": {
            "status": row.significance, "marked": bool(row.marked), "shared_seeds": int(row.shared_seeds),
            "t": _num(row.t), "p_value": _num(row.p_value), "test": SIGNIFICANCE_TEST,
        },
        "clbench_versions": list(row.clbench_versions),
        "run_ids": list(row.run_ids),
        "units": "fractions (0-1), not percent",
        "confidence": CONFIDENCE,
    }


def render_json(board: pd.DataFrame) -> str:
    entries = [_entry_data(row) for _, row in board.iterrows()]
    return json.dumps(entries, indent=2, sort_keys=True, ensure_ascii=True) + "\n"


CSV_COLUMNS = [
    "setup_hash", "protocol", "environment", "rank", "method", "hyperparameters", "plugins",
    "seeds", "n_seeds", "stored_exemplars_min", "stored_exemplars_max",
    *(f"{key}_{part}" for key in METRIC_LABELS for part in ("mean", "std", "ci_low", "ci_high", "n", "best")),
    "significance", "marked", "shared_seeds", "t", "p_value", "clbench_versions",
]


def _csv_value(value: Any) -> str:
    if isinstance(value, tuple):
        return " ".join(map(str, value))
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "" if _num(value) is None else repr(_num(value))
    return "" if value is None else str(value)


def render_csv(board: pd.DataFrame) -> str:
    return board[CSV_COLUMNS].astype(object).map(_csv_value).to_csv(index=False, lineterminator="\n")


RENDERERS = {"md": render_markdown, "latex": render_latex, "csv": render_csv,
             "html": render_html, "json": render_json}


def render(board: pd.DataFrame, fmt: str = "md") -> str:
    """A `leaderboard_frame` as text in one of FORMATS."""
    try:
        renderer = RENDERERS[fmt]
    except KeyError:
        raise ClbenchError(f"unknown leaderboard format '{fmt}'; known: {', '.join(FORMATS)}") from None
    return renderer(board)


# --------------------------------------------------------------------------- entry points


def format_for(fmt: str | None, out: str | Path | None) -> str:
    """The explicit format, else the one the output file's suffix implies, else Markdown."""
    if fmt:
        return fmt
    if out is not None:
        return FORMAT_SUFFIXES.get(Path(out).suffix.lower(), "md")
    return "md"


def leaderboard_text(inputs: Iterable[str | Path], protocol: str | None = None, fmt: str = "md") -> str:
    """Records (files or folders) to rendered tables, one per setup hash."""
    return render(leaderboard_frame(select_protocol(read_records(inputs), protocol)), fmt)


def write_output(path: str | Path, text: str) -> Path:
    """Write atomically, with a one-line error when the path cannot be written."""
    path = Path(path)
    try:
        write_atomic(path, text)
    except OSError as exc:
        raise ClbenchError(f"cannot write '{path}': {exc.strerror or exc}") from None
    return path
