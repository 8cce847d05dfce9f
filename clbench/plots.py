"""Figures from run records: accuracy matrices, average accuracy, forward facilitation.

`clbench plot RECORDS... --out DIR` draws, for each setup (protocol minus environment, the
leaderboard's grouping: records of different setup hashes are never mixed):

- ``<protocol>__accuracy-matrix__<entry>``: one heatmap per entry, the seed-mean of
  R[i][j] (accuracy on task j after phase i) in %, on a fixed 0-100 colour scale;
- ``<protocol>__average-accuracy``: mean accuracy over the tasks seen so far (j <= i) after
  each phase, one line per entry with a ± std band over seeds;
- ``<protocol>__learning-curves__<entry>``: the new task's learning curve in each phase,
  phases coloured along a sequential colormap (later tasks learned faster = later curves
  rise earlier);
- ``<protocol>__ff-auc``: the normalised area under each phase's curve
  (``metrics.forward_facilitation.auc``) against the phase, one line per entry.

An entry is (method, hyperparameters, environment), as in the leaderboard, whose loading and
grouping (`leaderboard_frame`) are reused here, so power-law, uniform and exponential
rehearsal of one setup share the comparison figures. Legends name an environment by its
short label (its kind, plus only the parameters that tell it apart from others of its kind
in the figure); the parameters every environment of a kind shares follow as rows of the
legend. The module has two layers: data extraction (`extract`, plain numbers in
dataclasses, no matplotlib) and drawing (`draw_*`, one Figure each).
Figures are drawn with matplotlib's object-oriented API on the Agg canvas, without pyplot,
so no display is needed and no global backend or figure state is touched. Outputs are
written atomically and carry no timestamps, so the same records give byte-identical files.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import textwrap
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ClbenchError
from .leaderboard import leaderboard_frame, read_records, select_protocol
from .protocol import environment_label
from .records import RunRecord, canonical_json, ensure_writable_dir, write_atomic

FORMATS = ("png", "pdf")
DEFAULT_FORMATS = ("png", "pdf")
DPI = 150
#: No timestamps (PDF) and no Software tag (PNG): the same records give the same bytes.
#: The PDF keeps matplotlib's Creator/Producer, which name its version.
_METADATA = {"png": {"Software": None}, "pdf": {"CreationDate": None, "ModDate": None}}
#: Fixed style on top of matplotlib's defaults, so a user's matplotlibrc changes nothing.
_RC = {
    "font.size": 9,
    "axes.titlesize": 9.5,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "pdf.fonttype": 42,  # TrueType in PDFs: text stays text in a paper's figure
}
MATRIX_CMAP = "viridis"
PHASE_CMAP = "plasma"


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Band:
    """A seed-mean line with its sample std (ddof=1; None with a single seed)."""

    x: np.ndarray
    mean: np.ndarray
    std: np.ndarray | None


@dataclass(frozen=True)
class EntryData:
    """Everything the figures need about one entry, in fractions (not %)."""

    method: str
    hyperparameters: dict[str, Any]
    environment: str  # the full label, with every parameter
    environment_short: str  # the legend's label (see `environment_legend`)
    seeds: tuple[int, ...]
    slug: str
    matrix: np.ndarray  # T x T seed mean of R
    average_accuracy: Band  # x = phase
    curves: tuple[Band, ...]  # one per phase, x = samples processed in the phase
    auc: Band  # x = phase
    threshold: float

    @property
    def method_label(self) -> str:
        hp = ", ".join(f"{k}={canonical_json(self.hyperparameters[k])}" for k in sorted(self.hyperparameters))
        return f"{self.method}" + (f" ({hp})" if hp else "")

    @property
    def label(self) -> str:
        return f"{self.method_label} · {self.environment_short}"

    @property
    def seeds_text(self) -> str:
        n = len(self.seeds)
        return f"{n} seed{'s' if n != 1 else ''}"


@dataclass(frozen=True)
class ProtocolData:
    """One setup (`hash` is the setup hash) and its entries, in leaderboard order (best mean
    ACC first)."""

    name: str
    version: int
    hash: str
    n_tasks: int
    entries: tuple[EntryData, ...]
    environment_rows: tuple[str, ...] = ()  # the legend table: shared parameters per kind

    @property
    def prefix(self) -> str:
        return f"{sanitize(self.name)}-{self.hash[:8]}"

    @property
    def title(self) -> str:
        return f"{self.name} v{self.version}, setup {self.hash[:8]}"


def sanitize(text: str) -> str:
    """Lowercase, runs of characters outside [a-z0-9._-] become '-', no leading dot."""
    return re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-.") or "x"


def _short_digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def entry_slug(method: str, hyperparameters: dict[str, Any], environment: str) -> str:
    """A readable file-name part for an entry; long parts are cut and end in a digest."""
    parts = [method]
    if hyperparameters:
        parts.append(",".join(f"{k}={canonical_json(hyperparameters[k])}" for k in sorted(hyperparameters)))
    parts.append(environment)
    return "__".join(_cut(sanitize(part), part) for part in parts)


def _cut(slug: str, original: str, limit: int = 60) -> str:
    return slug if len(slug) <= limit else f"{slug[:limit - 9].rstrip('-.')}-{_short_digest(original)}"


def _band(x: Sequence[float], rows: Sequence[Sequence[float]]) -> Band:
    values = np.asarray(rows, dtype=float)
    std = values.std(axis=0, ddof=1) if len(values) > 1 else None
    return Band(np.asarray(x, dtype=float), values.mean(axis=0), std)


def average_accuracy(R: Sequence[Sequence[float]]) -> list[float]:
    """Mean over the tasks seen so far after each phase: a_i = mean_{j<=i} R[i][j]."""
    return [float(np.mean(row[: i + 1])) for i, row in enumerate(R)]


def curve_band(curves: Sequence[tuple[Sequence[int], Sequence[float]]]) -> Band:
    """Seed-mean of one phase's learning curves; differing sample grids are interpolated
    linearly onto the union of their points (identical grids are used as they are)."""
    grid = np.unique(np.concatenate([np.asarray(s, dtype=float) for s, _ in curves]))
    return _band(grid, [np.interp(grid, s, a) for s, a in curves])


def _parameters(environment: dict[str, Any], keys: Iterable[str]) -> str:
    """`a=1, b=2` for `keys` of an environment, written as its full label writes them."""
    label = environment_label({"kind": "", **{k: environment[k] for k in keys}})
    return label[2:-1] if label.startswith(" (") else ""


def environment_legend(environments: Sequence[dict[str, Any]]) -> tuple[dict[str, str], tuple[str, ...]]:
    """Short legend labels for one figure's environments, and the legend table's rows.

    An environment is named by its kind alone when it is the only one of its kind in the
    figure, else by its kind and the parameters that differ between those of its kind.
    The parameters all environments of a kind share make one row: 'kind: a=1, b=2'.
    Returns ({full label: short label}, rows).
    """
    by_kind: dict[str, dict[str, dict[str, Any]]] = {}
    for env in environments:
        by_kind.setdefault(env["kind"], {})[environment_label(env)] = env
    short, rows = {}, []
    for kind, envs in sorted(by_kind.items()):
        keys = sorted({k for env in envs.values() for k in env if k != "kind"})
        varying = [k for k in keys if len({canonical_json(env.get(k)) for env in envs.values()}) > 1]
        shared = [k for k in keys if k not in varying]
        for label, env in envs.items():
            params = _parameters(env, varying)
            short[label] = f"{kind} ({params})" if params else kind
        if (params := _parameters(next(iter(envs.values())), shared)):
            rows.append(f"{kind}: {params}")
    return short, tuple(rows)


def entry_data(row, records: Sequence[RunRecord], slug: str, short: dict[str, str]) -> EntryData:
    """One leaderboard row (a `leaderboard_frame` row) and its records, as plot data."""
    T = len(records[0].accuracy_matrix)
    curves = []
    for phase in range(T):
        per_seed = []
        for record in records:
            curve = {c.phase: c for c in record.learning_curves}.get(phase)
            if curve is None:
                raise ClbenchError(f"record {record.run_id} has no learning curve for phase {phase}")
            per_seed.append((curve.samples, curve.accuracy))
        curves.append(curve_band(per_seed))
    phases = range(T)
    return EntryData(
        method=row.method,
        hyperparameters=json.loads(row.hyperparameters),
        environment=row.environment,
        environment_short=short[row.environment],
        seeds=tuple(int(s) for s in row.seeds),
        slug=slug,
        matrix=np.mean([r.accuracy_matrix for r in records], axis=0),
        average_accuracy=_band(phases, [average_accuracy(r.accuracy_matrix) for r in records]),
        curves=tuple(curves),
        auc=_band(phases, [r.metrics.forward_facilitation.auc for r in records]),
        threshold=float(np.mean([r.metrics.forward_facilitation.threshold for r in records])),
    )


def _unique_slugs(keys: Sequence[tuple[str, dict[str, Any], str]]) -> list[str]:
    """Entry slugs, with a digest of the full entry key added where two would collide."""
    slugs = [entry_slug(*key) for key in keys]
    return [f"{slug}-{_short_digest(canonical_json(key))}" if slugs.count(slug) > 1 else slug
            for slug, key in zip(slugs, keys)]


def protocol_data(table, by_id: dict[str, RunRecord]) -> ProtocolData:
    """One setup's rows of a `leaderboard_frame`, with their records, as plot data."""
    rows = [row for _, row in table.iterrows()]
    records = [[by_id[i] for i in row.run_ids] for row in rows]
    short, environment_rows = environment_legend([r[0].protocol["environment"] for r in records])
    slugs = _unique_slugs([(row.method, json.loads(row.hyperparameters), row.environment) for row in rows])
    entries = tuple(entry_data(row, recs, slug, short) for row, recs, slug in zip(rows, records, slugs))
    name, version = rows[0].protocol_labels[0]
    return ProtocolData(name, version, rows[0].setup_hash, len(entries[0].matrix), entries,
                        environment_rows)


def extract(records: Sequence[RunRecord]) -> list[ProtocolData]:
    """Records to plot data, one `ProtocolData` per setup hash (the leaderboard's grouping)."""
    by_id = {r.run_id: r for r in records}
    board = leaderboard_frame(records)
    return [protocol_data(table, by_id) for _, table in board.groupby("setup_hash", sort=False)]


# --------------------------------------------------------------------------- drawing


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    fig.get_layout_engine().set(w_pad=0.08, h_pad=0.08)
    FigureCanvasAgg(fig)
    return fig


def _pct(values: np.ndarray) -> np.ndarray:
    return np.asarray(values) * 100


def _entry_colors(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def _draw_band(ax, band: Band, color, label: str | None, marker: str | None = "o") -> None:
    x, mean = band.x, _pct(band.mean)
    ax.plot(x, mean, color=color, marker=marker, markersize=4, linewidth=1.6, label=label)
    if band.std is not None:
        std = _pct(band.std)
        ax.fill_between(x, mean - std, mean + std, color=color, alpha=0.18, linewidth=0)


def _phase_axis(ax, T: int) -> None:
    ax.set_xticks(range(T))
    ax.set_xlim(-0.2, T - 0.8)
    ax.set_xlabel("phase (task i introduced in phase i)")


_WIDE = 6.4  # inches: the comparison figures


def _legend_labels(labels: Sequence[str], width_in: float = _WIDE) -> list[str]:
    """Entry labels wrapped to the figure's width (legend.fontsize 8, less the marker)."""
    width = max(20, int(width_in * 72 / (8 * 0.6)) - 8)
    return [textwrap.fill(label, width, subsequent_indent="  ") for label in labels]


def _comparison_figure(labels: Sequence[str]):
    """A figure for one line per entry, tall enough for its legend below the axes."""
    lines = sum(label.count("\n") + 1 for label in labels)
    return _figure(_WIDE, 3.7 + 0.19 * lines)


def _legend_below(fig, ax, rows: Sequence[str] = ()) -> None:
    """The entries' legend under the axes, one entry a line, then the environments' table
    (`rows`, without a line symbol)."""
    from matplotlib.lines import Line2D

    handles, labels = ax.get_legend_handles_labels()
    blank = Line2D([], [], linestyle="none")
    fig.legend([*handles, *(blank for _ in rows)], [*labels, *rows], loc="outside lower center",
               ncols=1, frameon=False)


def _title(fig, lines: Sequence[str], fontsize: float) -> str:
    """Title lines, each wrapped to the figure's width (about 0.6 em a character)."""
    width = max(20, int(fig.get_figwidth() * 72 / (fontsize * 0.6)))
    return "\n".join(textwrap.fill(line, width) for line in lines)


def _clamped_ylim(ax) -> None:
    low, high = ax.get_ylim()
    ax.set_ylim(max(low, 0.0), min(high, 100.5))


def draw_accuracy_matrix(proto: ProtocolData, entry: EntryData):
    """Heatmap of the seed-mean R in %, fixed 0-100 scale, cells annotated."""
    from matplotlib import colormaps

    T = proto.n_tasks
    side = max(4.0, 0.62 * T + 1.6)
    fig = _figure(side + 1.3, side + 0.6)
    ax = fig.add_subplot()
    values = _pct(entry.matrix)
    cmap = colormaps[MATRIX_CMAP]
    image = ax.imshow(values, cmap=cmap, vmin=0, vmax=100, origin="upper", aspect="equal")
    ax.grid(False)
    fontsize = 8 if T <= 6 else 7 if T <= 10 else 5.5
    for i in range(T):
        for j in range(T):
            r, g, b, _ = cmap(values[i, j] / 100)
            dark = 0.299 * r + 0.587 * g + 0.114 * b < 0.55
            ax.text(j, i, f"{values[i, j]:.1f}", ha="center", va="center", fontsize=fontsize,
                    color="white" if dark else "black",
                    fontweight="bold" if i == j else "normal")
    ax.set_xticks(range(T))
    ax.set_yticks(range(T))
    ax.set_xlabel("task j (evaluated)")
    ax.set_ylabel("after phase i")
    ax.xaxis.set_label_position("top")
    ax.xaxis.tick_top()
    bar = fig.colorbar(image, ax=ax, shrink=0.85, pad=0.02)
    bar.set_label("accuracy (%)")
    fig.suptitle(_title(fig, [f"{proto.title}: {entry.method_label}",
                              f"{entry.environment} environment",
                              f"accuracy (%) on task j after phase i, mean of {entry.seeds_text}"],
                        9), fontsize=9)
    return fig


def _phase_bands_figure(proto: ProtocolData, series, labels: list[str], ylabel: str, title: str):
    """One line with a ± std band per entry, against the phase."""
    rows = _legend_labels([f"environment {row}" for row in proto.environment_rows])
    fig = _comparison_figure([*labels, *rows])
    ax = fig.add_subplot()
    for entry, color, label in zip(proto.entries, _entry_colors(len(proto.entries)), labels):
        _draw_band(ax, series(entry), color, label)
    _phase_axis(ax, proto.n_tasks)
    ax.set_ylabel(ylabel)
    _clamped_ylim(ax)
    _legend_below(fig, ax, rows)
    ax.set_title(_title(fig, [proto.title, title], 9.5))
    return fig


def draw_average_accuracy(proto: ProtocolData):
    """Mean accuracy over the tasks seen so far, per phase, one line per entry."""
    labels = _legend_labels([f"{e.label} [{e.seeds_text}], final {e.average_accuracy.mean[-1] * 100:.1f}%"
                             for e in proto.entries])
    return _phase_bands_figure(proto, lambda e: e.average_accuracy, labels,
                               "average accuracy over tasks seen, j <= i (%)",
                               "average accuracy after each phase (seed mean, band = ± std over seeds)")


def draw_learning_curves(proto: ProtocolData, entry: EntryData):
    """The new task's learning curve in each phase, phases along a sequential colormap."""
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import BoundaryNorm, ListedColormap

    T = proto.n_tasks
    base = colormaps[PHASE_CMAP]
    colors = [base(0.08 + 0.8 * (p / max(T - 1, 1))) for p in range(T)]  # skip the pale yellow end
    fig = _figure(_WIDE, 4.2)
    ax = fig.add_subplot()
    for phase, (curve, color) in enumerate(zip(entry.curves, colors)):
        _draw_band(ax, curve, color, f"phase {phase}", marker="." if len(curve.x) <= 30 else None)
    threshold = ax.axhline(entry.threshold * 100, color="0.4", linestyle="--", linewidth=1,
                           label=f"facilitation threshold ({entry.threshold * 100:g}%)")
    ax.legend(handles=[threshold], loc="lower right")  # curves plateau high: that corner is free
    ax.set_xlabel("training samples processed in the phase (new task + rehearsal)")
    ax.set_ylabel("accuracy on the phase's new task (%)")
    ax.set_xlim(left=0)
    _clamped_ylim(ax)
    norm = BoundaryNorm(np.arange(T + 1) - 0.5, T)
    bar = fig.colorbar(ScalarMappable(norm=norm, cmap=ListedColormap(colors)), ax=ax,
                       ticks=range(T), pad=0.02)
    bar.set_label("phase (= task learned)")
    bar.ax.tick_params(length=0)
    ax.set_title(_title(fig, [f"{proto.title}: {entry.method_label}",
                              f"{entry.environment} environment",
                              "forward facilitation: new-task learning curve per phase "
                              f"(mean of {entry.seeds_text})"], 9.5))
    return fig


def draw_ff_auc(proto: ProtocolData):
    """Normalised learning-curve AUC of each phase's new task against the phase."""
    labels = _legend_labels([f"{e.label} [{e.seeds_text}]" for e in proto.entries])
    return _phase_bands_figure(proto, lambda e: e.auc, labels, "new-task learning-curve AUC (%)",
                               "forward facilitation: normalised area under the new task's "
                               "learning curve per phase (rising = later tasks learned faster)")


def figures(proto: ProtocolData) -> Iterator[tuple[str, Any]]:
    """(file stem, Figure) for every figure of one setup, in a fixed order."""
    for entry in proto.entries:
        yield f"{proto.prefix}__accuracy-matrix__{entry.slug}", draw_accuracy_matrix(proto, entry)
    yield f"{proto.prefix}__average-accuracy", draw_average_accuracy(proto)
    for entry in proto.entries:
        yield f"{proto.prefix}__learning-curves__{entry.slug}", draw_learning_curves(proto, entry)
    yield f"{proto.prefix}__ff-auc", draw_ff_auc(proto)


# --------------------------------------------------------------------------- files


def parse_formats(text: str | Iterable[str] | None) -> tuple[str, ...]:
    """'png,pdf' (or a list) to a tuple of known formats, in the order given, no repeats."""
    if text is None:
        return DEFAULT_FORMATS
    items = text.split(",") if isinstance(text, str) else list(text)
    formats: list[str] = []
    for item in items:
        fmt = item.strip().lower().lstrip(".")
        if not fmt:
            continue
        if fmt not in FORMATS:
            raise ClbenchError(f"unknown plot format '{item.strip()}'; known: {', '.join(FORMATS)}")
        if fmt not in formats:
            formats.append(fmt)
    if not formats:
        raise ClbenchError(f"no plot format given; known: {', '.join(FORMATS)}")
    return tuple(formats)


def _freeze_layout(fig) -> None:
    """Lay the figure out once and keep that layout for every format.

    Constrained layout runs again at each draw and does not reach the same positions twice,
    so without this a PDF saved after the PNG would differ from one saved alone.
    """
    fig.draw_without_rendering()
    fig.set_layout_engine("none")


def save_atomic(fig, path: Path, fmt: str) -> None:
    """Render `fig` in memory, then write it with the records' atomic writer."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format=fmt, dpi=DPI, metadata=_METADATA[fmt])
    write_atomic(path, buffer.getvalue())


def write_plots(inputs: Iterable[str | Path], out: str | Path, protocol: str | None = None,
                formats: str | Sequence[str] = DEFAULT_FORMATS) -> list[Path]:
    """Records (files or folders) to figure files in `out`; returns the paths written.

    Every input is checked (formats, records, protocol filter, output folder) before any
    file is written; each file is then written atomically.
    """
    import matplotlib
    import matplotlib.style

    formats = parse_formats(formats)
    data = extract(select_protocol(read_records(inputs), protocol))
    folder = ensure_writable_dir(Path(out))
    written = []
    with matplotlib.rc_context():
        matplotlib.style.use("default")
        matplotlib.rcParams.update(_RC)
        for proto in data:
            for stem, fig in figures(proto):
                _freeze_layout(fig)
                for fmt in formats:
                    path = folder / f"{stem}.{fmt}"
                    try:
                        save_atomic(fig, path, fmt)
                    except OSError as exc:
                        raise ClbenchError(f"cannot write '{path}': {exc.strerror or exc}") from None
                    written.append(path)
    return written
