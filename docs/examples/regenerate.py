"""Every command output shown in docs/ and README.md, regenerated from real runs.

    python docs/examples/regenerate.py               # run every group; rewrite docs/examples/ and the docs
    python docs/examples/regenerate.py quickstart    # only these groups (names: --list)
    python docs/examples/regenerate.py --replay      # quick: no training beyond the quickstart's
    python docs/examples/regenerate.py --embed       # run nothing: copy docs/examples/ into the docs
    python docs/examples/regenerate.py --list        # the groups and their examples

An *example* is a short shell script, shown in a document, and what it printed (stdout and
stderr, in a terminal's order). Its output is written to `docs/examples/NAME.txt` (its
script, for snippets a reader copies, to `NAME.sh` or `NAME.py`), and every document that
embeds it between `<!-- example: NAME -->` and `<!-- /example -->` is rewritten with the
new text. Nothing in those blocks is typed by hand.

Examples come in groups that share a working folder, of four kinds, by what
`tests/test_docs.py` does with them (timings masked in every comparison):
- `cheap` (no training) and `live` (one smoke run): rerun, and compared;
- `trains`: the folder's run records are kept in `docs/examples/runs/GROUP/` (committed);
  the test reruns the examples over them, where every command finds its records and skips
  the training, which prints the same tables;
- `slow` (several minutes of training, no records to keep): rerun only here. The method plugin built in
docs/writing-a-method-plugin.md is assembled from that page's own code blocks (marked
`<!-- file: PATH -->`) and installed for the commands by a `.dist-info` on PYTHONPATH.

Each file is written atomically. Needs MNIST: $CLBENCH_DATA_ROOT, else ../shared/data.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
RUNS = HERE / "runs"
DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
PLUGIN_DOC = REPO / "docs" / "writing-a-method-plugin.md"
#: How the docs spell the data root; commands run with the real one.
DOC_DATA_ROOT = "../shared/data"

BLOCK = re.compile(r"(<!-- example: (?P<name>[\w.-]+) -->\n)(?P<body>.*?)(<!-- /example -->)", re.S)
FILE_BLOCK = re.compile(r"<!-- file: (?P<path>\S+) -->\n```\w*\n(?P<text>.*?)```\n", re.S)
#: Timings differ from run to run: masked wherever outputs are compared.
TIMING = re.compile(r"(?<![\w.])\d+(?:\.\d+)?\s?s\b|\(\d+:\d\d:\d\d\)")
#: A seed a command trained, and the same seed found done when the command runs again.
TRAINED = re.compile(r"^seed (\d+): ACC ([\d.]+)%  \([\d.]+ s\)  -> (\S+)$", re.M)
SKIPPED = re.compile(r"^seed (\d+): skipped, its record is already in (\S+) \(--force runs it again\)$", re.M)


@dataclass(frozen=True)
class Example:
    """A script and its output. `prompt`: show each command as `$ command` before its
    output; `stdout`: keep only stdout; `setup`: commands run first, not shown;
    `source`: also write the script to NAME.<source> for the document to show."""

    name: str
    script: str
    prompt: bool = False
    stdout: bool = False
    setup: str = ""
    source: str = ""
    env: dict[str, str] = field(default_factory=dict)


KINDS = ("cheap", "live", "trains", "slow")


@dataclass(frozen=True)
class Group:
    """Examples run in order in one folder; `kind` is one of KINDS (see above). `plugin`:
    install a variant of the page's method plugin (see `build_plugin`); `repo`: run in the
    repository root (for examples that read its committed files)."""

    name: str
    examples: tuple[Example, ...]
    kind: str = "cheap"
    plugin: str | None = None
    repo: bool = False

    @property
    def folder(self) -> Path:
        return RUNS / self.name


# --------------------------------------------------------------------------- the examples

QUICKSTART_RECORD = """\
import glob, json
path = sorted(glob.glob("results/smoke__naive__seed0__*.json"))[0]
record = json.load(open(path))
for key in ("environment_matrix", "accuracy_matrix", "untrained_accuracy", "samples_trained"):
    print(f"{key}: {record[key]}")
print("learning_curves[0]:", record["learning_curves"][0])
metrics = record["metrics"]
print("metrics:", {key: value for key, value in metrics.items() if key != "forward_facilitation"})
print("forward_facilitation:", metrics["forward_facilitation"])
"""

REPRODUCIBILITY = """\
python - <<'EOF'
import glob
from clbench.records import read_record
a, b = (read_record(glob.glob(f"{d}/*.json")[0]) for d in "ab")
print(a.run_id == b.run_id, a.accuracy_matrix == b.accuracy_matrix)
EOF
"""

METRICS_CURVE = """\
import glob, json
path = sorted(glob.glob("results/smoke__naive__seed0__*.json"))[0]
print(json.dumps(json.load(open(path))["learning_curves"][0]))
"""

METRICS_WORKED = """\
from clbench.metrics import (average_accuracy, backward_transfer, forgetting,
                             forward_transfer, learning_accuracy, forward_facilitation)

R = [[0.90, 0.12, 0.10],
     [0.93, 0.92, 0.15],
     [0.60, 0.80, 0.94]]
b = [0.10, 0.08, 0.11]
curves = [
    {"samples": [0, 500, 1000, 1500, 2000], "accuracy": [0.10, 0.60, 0.80, 0.85, 0.90]},
    {"samples": [0, 500, 1000, 1500, 2000], "accuracy": [0.12, 0.82, 0.88, 0.90, 0.92]},
    {"samples": [0, 750, 1500, 2250, 3000], "accuracy": [0.11, 0.84, 0.90, 0.91, 0.93]},
]
print(average_accuracy(R), backward_transfer(R), forgetting(R),
      forward_transfer(R, b), learning_accuracy(R))
print(forward_facilitation(curves, threshold=0.8))
"""

NOTEBOOK = """\
import pandas as pd
import clbench

runs = clbench.load_records(["leaderboards/split-mnist/records"])
print(runs.shape)
print(runs[["method", "environment_kind", "seed", "acc", "forgetting", "exemplars"]].head(3))

# the published table's ACC column, recomputed from the records
acc = runs.groupby("method")["acc"].agg(["mean", "std", "count"]).mul([100, 100, 1])
print(acc.sort_values("mean", ascending=False).round(2).head(5))

published = pd.read_csv("leaderboards/split-mnist/leaderboard.csv", index_col="method")
print("same means as leaderboard.csv:",
      (acc["mean"] / 100 - published["acc_mean"]).abs().max() < 1e-9)

board = clbench.leaderboard_frame(runs)
print(board[["rank", "method", "acc_mean", "acc_ci_low", "acc_ci_high", "significance"]].head(4))
"""

PUBLISHING_SETUP = """\
clbench evaluate naive  --protocol smoke --seeds 0 1 2 --data-root ../shared/data --out results/ -q
clbench evaluate ewc    --protocol smoke --seeds 0 1 2 --data-root ../shared/data --out results/ -q
clbench evaluate replay --protocol smoke --seeds 0 1 2 --data-root ../shared/data --out results/ -q
"""

GROUPS = (
    Group("quickstart", kind="live", examples=(
        Example("quickstart-first-run", "clbench evaluate naive --protocol smoke --data-root ../shared/data"),
        Example("quickstart-seed0", "clbench evaluate naive --protocol smoke --seeds 0 --data-root ../shared/data",
                stdout=True),
        Example("quickstart-record", f"python - <<'EOF'\n{QUICKSTART_RECORD}EOF\n", source="py"),
        Example("metrics-curve", f"python - <<'EOF'\n{METRICS_CURVE}EOF\n"),
    )),
    Group("reproducibility", kind="trains", examples=(
        Example("quickstart-reproducibility", REPRODUCIBILITY, source="sh", setup=(
            "clbench evaluate naive -p smoke --seeds 0 --data-root ../shared/data --out a -q\n"
            "clbench evaluate naive -p smoke --seeds 0 --data-root ../shared/data --out b -q\n")),
    )),
    Group("publishing", kind="trains", examples=(
        Example("publishing-leaderboard", "clbench leaderboard results/ --protocol smoke", setup=PUBLISHING_SETUP,
                source="sh"),
        Example("publishing-refused", prompt=True,
                setup="mkdir -p old && printf '{\\n' > old/run.json\n"
                      "mkdir -p edited && cp results/smoke__naive__seed0__*.json edited/ && "
                      "sed -i 's/\"device\": \"cpu\"/\"device\": \"cuda\"/' edited/*.json\n",
                script="clbench leaderboard results/ old/\nclbench leaderboard edited/\n"),
    )),
    Group("commands", examples=(
        Example("quickstart-protocols", "clbench protocols", prompt=True),
        Example("quickstart-protocols-show", "clbench protocols show smoke", prompt=True),
        Example("quickstart-env-matrix", "clbench env-matrix --protocol smoke", prompt=True),
        Example("quickstart-methods", "clbench methods", prompt=True),
        Example("quickstart-plugins", "clbench plugins", prompt=True),
        Example("quickstart-set-errors", prompt=True, script=(
            "clbench env-matrix -p smoke --set training.epoch=3\n"
            "clbench env-matrix -p smoke --set environment.rehearsal_fraction=1.5\n")),
        Example("quickstart-hp-error", "clbench evaluate naive --protocol smoke --hp lr=0.1", prompt=True),
        Example("quickstart-device-error",
                "clbench evaluate naive --protocol smoke --device cuda --data-root ../shared/data", prompt=True),
        Example("protocols-table", "clbench protocols"),
        Example("protocols-hashes", prompt=True, script=(
            "clbench protocols show smoke --set seeds=[5,6] --json | python -c \"import json,sys; "
            "print(json.load(sys.stdin)['hash'][:12])\"\n"
            "clbench protocols show smoke --set training.lr=1e-4 --json | python -c \"import json,sys; "
            "print(json.load(sys.stdin)['hash'][:12])\"\n")),
        Example("protocols-env-pmnist-10", "clbench env-matrix --protocol pmnist-10", prompt=True),
        Example("protocols-env-unrestricted",
                "clbench env-matrix -p smoke --set environment.kind=power-law-unrestricted", prompt=True),
        Example("protocols-env-pmnist-paper", "clbench env-matrix --protocol pmnist-paper", prompt=True),
        Example("protocols-env-stochastic",
                "clbench env-matrix -p pmnist-10 --set environment.kind=stochastic-power-law --seed 3", prompt=True),
        Example("metrics-worked-example", f"python - <<'EOF'\n{METRICS_WORKED}EOF\n", source="py"),
    )),
    Group("tuning", kind="trains", examples=(
        Example("tuning-tune", prompt=True, stdout=True, script=(
            "clbench tune si --protocol smoke --set training.epochs=1 --seeds 0 1 "
            "--grid si_lambda=0.1,10,1000 --data-root ../shared/data --out tuning\n")),
        Example("tuning-evaluate", prompt=True, stdout=True, script=(
            "clbench evaluate si --protocol smoke --set training.epochs=1 --seeds 0 1 "
            "--hp-from tuning/smoke__si__tuning__*.json --data-root ../shared/data --out results -q\n")),
    )),
    Group("notebooks", repo=True, examples=(
        Example("notebooks-split-mnist", f"python - <<'EOF'\n{NOTEBOOK}EOF\n", source="py"),
    )),
    Group("missing-data", kind="slow", examples=(
        Example("quickstart-data-error", "CLBENCH_DATA_ROOT=empty-root clbench evaluate naive --protocol smoke",
                prompt=True, setup="mkdir -p empty-root\n"),
    )),
    Group("plugin", kind="trains", plugin="mymethod", examples=(
        Example("plugin-plugins", "clbench plugins"),
        Example("plugin-methods", "clbench methods | grep -E '^\\| (method|mymethod) |^\\|--'", prompt=True),
        Example("plugin-evaluate",
                "clbench evaluate mymethod --protocol smoke --data-root ../shared/data --out results -q\n",
                source="sh"),
        Example("plugin-evaluate-weak", stdout=True, source="sh", script=(
            "clbench evaluate mymethod --protocol smoke --seeds 0 --hp strength=0.01 "
            "--data-root ../shared/data --out results -q\n")),
        Example("plugin-hp-errors", prompt=True, script=(
            "clbench evaluate mymethod -p smoke --hp strength=-1\n"
            "clbench evaluate mymethod -p smoke --hp strenght=1\n"
            "clbench evaluate mymethod -p smoke --hp strength=abc\n"
            "clbench evaluate mymethod -p smoke --hp strength=Infinity\n"
            "clbench evaluate mymethod -p smoke --hp strength=true\n")),
    )),
    Group("plugin-unknown-hook", plugin="unknown-hook", examples=(
        Example("plugin-unknown-hook", "clbench methods", prompt=True),
    )),
    Group("plugin-broken", plugin="broken", examples=(
        Example("plugin-broken", prompt=True, script="clbench plugins\nclbench evaluate mymethod -p smoke\n"),
    )),
    Group("plugin-duplicate", plugin="duplicate", examples=(
        Example("plugin-duplicate", "clbench methods", prompt=True),
    )),
    Group("plugin-checks", kind="slow", plugin="mymethod", examples=(
        Example("plugin-check", "clbench check-plugin mymethod --data-root ../shared/data", prompt=True),
        Example("plugin-check-resumable",
                "clbench check-plugin l2-anchor --data-root ../shared/data | tail -n 2", prompt=True),
        Example("plugin-pytest", "cd clbench-mymethod && CLBENCH_DATA_ROOT=../shared/data python -m pytest -q",
                prompt=True),
    )),
    Group("plugin-stateless", kind="slow", plugin="stateless", examples=(
        Example("plugin-check-stateless",
                "clbench check-plugin mymethod --data-root ../shared/data | tail -n 2", prompt=True),
    )),
)
EXAMPLES = {example.name: (group, example) for group in GROUPS for example in group.examples}


# --------------------------------------------------------------------------- the plugin


def plugin_files(doc: Path = PLUGIN_DOC) -> dict[str, str]:
    """The plugin's files as the page shows them: {path: text} from `<!-- file: PATH -->` blocks."""
    files = {m["path"]: m["text"] for m in FILE_BLOCK.finditer(doc.read_text())}
    if not files:
        raise SystemExit(f"{doc} has no <!-- file: PATH --> code blocks")
    return files


def _edit(text: str, old: str, new: str) -> str:
    if old not in text:
        raise SystemExit(f"the plugin page changed: cannot find {old!r} to build a variant")
    return text.replace(old, new, 1)


#: Variants of the page's plugin, for the failure modes it shows: {variant: edit of __init__.py}.
VARIANTS = {
    "mymethod": lambda text: text,
    "unknown-hook": lambda text: _edit(text, "def clbench_register_methods(", "def clbench_register_method("),
    "broken": lambda text: _edit(text, "from __future__ import annotations\n",
                                 "from __future__ import annotations\n\nimport clbench_helpers_not_installed\n"),
    "duplicate": lambda text: _edit(text, 'name="mymethod"', 'name="naive"'),
    "stateless": lambda text: _edit(_edit(text, "from clbench import ", "from clbench import STATELESS, "),
                                    "        stored_exemplars=", "        checkpointing=STATELESS,\n        stored_exemplars="),
}


def build_plugin(folder: Path, variant: str = "mymethod") -> Path:
    """Write the page's plugin into folder/clbench-mymethod and install it for commands run
    with PYTHONPATH=<returned path>: a `.dist-info` with the page's entry point, as an
    editable `pip install` would leave it."""
    files = plugin_files()
    root = folder / "clbench-mymethod"
    for relative, text in files.items():
        path = folder / relative
        if relative.endswith("__init__.py") and "clbench_mymethod/" in relative:
            text = VARIANTS[variant](text)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    info = root / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n")
    points = project["entry-points"]["clbench"]
    (info / "entry_points.txt").write_text("[clbench]\n" + "".join(f"{k} = {v}\n" for k, v in points.items()))
    (info / "top_level.txt").write_text("clbench_mymethod\n")
    (info / "direct_url.json").write_text(json.dumps({"url": root.as_uri(), "dir_info": {"editable": True}}))
    return root


# --------------------------------------------------------------------------- running


def data_root() -> Path:
    return Path(os.environ.get("CLBENCH_DATA_ROOT") or REPO.parent / "shared" / "data").resolve()


def environment(plugin_path: Path | None, extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CLBENCH_", "WANDB_", "PYTEST_")) and k not in ("PYTHONPATH", "COLUMNS")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(plugin_path) if plugin_path else ""
    env["CLBENCH_DATA_ROOT"] = str(data_root())  # commands that do not name --data-root
    return {**env, **extra}


def shell(script: str, cwd: Path, env: dict[str, str], stdout_only: bool = False) -> str:
    """Run `script` with bash; its output as a terminal shows it (stderr merged, in order)."""
    script = script.replace(DOC_DATA_ROOT, str(data_root()))
    done = subprocess.run(["bash", "-c", script], cwd=cwd, env=env, text=True, stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL if stdout_only else subprocess.STDOUT)
    return done.stdout


def output(example: Example, cwd: Path, env: dict[str, str], replay: bool = False) -> str:
    """Run an example (its setup first) and return the text the document shows. `replay`:
    the folder already holds the records, so setup commands that train are left out."""
    env = {**env, **example.env}
    setup = "".join(line + "\n" for line in example.setup.splitlines()
                    if not (replay and line.startswith("clbench evaluate")))
    if setup:
        shell("set -e\n" + setup, cwd, env)
    if not example.prompt:
        return _terminated(shell(example.script, cwd, env, example.stdout))
    return "".join(f"$ {line}\n" + _terminated(shell(line, cwd, env, example.stdout))
                   for line in example.script.splitlines() if line.strip())


def run_group(group: Group, cwd: Path, replay: bool = False) -> dict[str, str]:
    """Every example of `group`, in order, in `cwd` (prepared by the caller); name -> output."""
    plugin = build_plugin(cwd, group.plugin) if group.plugin else None
    env = environment(plugin, {})
    return {example.name: output(example, cwd, env, replay) for example in group.examples}


def source_text(example: Example) -> str:
    """What a document shows as the example's script: NAME.py (the Python it runs) or
    NAME.sh (its setup and script, as one would type them)."""
    if example.source == "py":
        return example.script.split("<<'EOF'\n", 1)[1].rsplit("EOF\n", 1)[0]
    return _terminated(example.setup + example.script)


def _terminated(text: str) -> str:
    """Text that ends in a newline, so a document's closing fence stays on its own line."""
    return text if not text or text.endswith("\n") else text + "\n"


# --------------------------------------------------------------------------- comparing


def masked(text: str) -> str:
    """The text without what differs between identical runs: timings."""
    return TIMING.sub("<time>", text)


def replayed(text: str) -> str:
    """A training command's output with 'seed S trained -> PATH' and 'seed S skipped, in
    PATH' written alike, so a rerun over the committed records compares equal."""
    text = TRAINED.sub(r"seed \1: record \3", text)
    return masked(SKIPPED.sub(r"seed \1: record \2", text))


def embedded(document: str) -> dict[str, str]:
    """name -> the text a document embeds for it (inside its code fence, if any)."""
    return {m["name"]: _inner(m["body"]) for m in BLOCK.finditer(document)}


def _inner(body: str) -> str:
    if body.startswith("```"):
        lines = body.splitlines(keepends=True)
        return "".join(lines[1:-1])
    return body


def _fill(match: re.Match, texts: dict[str, str]) -> str:
    name, body = match["name"], match["body"]
    if name not in texts:
        return match.group(0)
    text = texts[name]
    if body.startswith("```"):
        lines = body.splitlines(keepends=True)
        text = lines[0] + text + lines[-1]
    return match.group(1) + text + match.group(4)


def embed(texts: dict[str, str]) -> list[Path]:
    """Rewrite every document's blocks for the given names; returns the documents changed."""
    from clbench.records import write_atomic

    changed = []
    for path in DOCUMENTS:
        old = path.read_text()
        new = BLOCK.sub(lambda m: _fill(m, texts), old)
        if new != old:
            write_atomic(path, new)
            changed.append(path)
    return changed


def example_texts(name: str) -> dict[str, str]:
    """The files of one example: {"NAME.txt": output, "NAME.py"/"NAME.sh": script}."""
    _, example = EXAMPLES[name]
    texts = {f"{name}.txt": (HERE / f"{name}.txt").read_text()}
    if example.source:
        texts[f"{name}.{example.source}"] = (HERE / f"{name}.{example.source}").read_text()
    return texts


# --------------------------------------------------------------------------- main


def regenerate(group: Group, replay: bool = False) -> dict[str, str]:
    """Run one group for real and write its files; returns {file name: text}.

    `replay` (a `trains` group only): run it over its committed records instead, without
    training, and take each new output unless it only differs in how a trained seed's
    line reads; an output that depends on training itself needs a full run."""
    from clbench.records import write_atomic

    folder = group.folder
    replay = replay and group.kind == "trains" and folder.exists()
    with tempfile.TemporaryDirectory(prefix=f"clbench-docs-{group.name}-") as scratch:
        cwd = REPO if group.repo else Path(scratch)
        if replay:
            shutil.copytree(folder, cwd, dirs_exist_ok=True)
        outputs = run_group(group, cwd, replay)
        if replay:
            outputs = {name: _replayed_output(name, text) for name, text in outputs.items()}
        elif group.kind == "trains":  # keep the records (and only them) for tests/test_docs.py
            if folder.exists():
                shutil.rmtree(folder)
            for record in Path(scratch).rglob("*.json"):
                if not _is_record(record):  # a setup's broken or edited file: made again
                    continue
                target = folder / record.relative_to(scratch)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(record, target)
    texts = {}
    for example in group.examples:
        texts[f"{example.name}.txt"] = outputs[example.name]
        if example.source:
            texts[f"{example.name}.{example.source}"] = source_text(example)
    for name, text in texts.items():
        write_atomic(HERE / name, text)
    return texts


def _replayed_output(name: str, new: str) -> str:
    old = (HERE / f"{name}.txt").read_text() if (HERE / f"{name}.txt").exists() else ""
    if replayed(new) == replayed(old):
        return old  # keep the trained seeds' lines, with their ACC and time
    if TRAINED.search(old) or SKIPPED.search(new):
        raise SystemExit(f"'{name}' changed in what training printed: run its group in full")
    return new


def _is_record(path: Path) -> bool:
    from clbench.errors import ClbenchError
    from clbench.records import read_record

    try:
        read_record(path)
    except ClbenchError:
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("groups", nargs="*", metavar="GROUP", help="groups to regenerate (default: all)")
    parser.add_argument("--list", action="store_true", help="list the groups and their examples")
    parser.add_argument("--replay", action="store_true",
                        help="rerun `trains` groups over their committed records (no training); "
                             "without GROUPs: every group but the slow ones")
    parser.add_argument("--embed", action="store_true",
                        help="run nothing: write the scripts and copy docs/examples/ into the documents")
    args = parser.parse_args(argv)
    by_name = {group.name: group for group in GROUPS}
    if args.list:
        for group in GROUPS:
            print(f"{group.name} ({group.kind}): {', '.join(e.name for e in group.examples)}")
        return 0
    unknown = [name for name in args.groups if name not in by_name]
    if unknown:
        parser.error(f"unknown group(s) {', '.join(unknown)}; see --list")
    texts: dict[str, str] = {}
    if args.embed:  # scripts come from this file; outputs as they are in docs/examples/
        from clbench.records import write_atomic

        for name, (_, example) in EXAMPLES.items():
            if example.source:
                write_atomic(HERE / f"{name}.{example.source}", source_text(example))
            if (HERE / f"{name}.txt").exists():
                texts.update(example_texts(name))
    default = [g.name for g in GROUPS if not (args.replay and g.kind == "slow")]
    for name in [] if args.embed else args.groups or default:
        print(f"regenerating {name} ...", file=sys.stderr, flush=True)
        for file, text in regenerate(by_name[name], args.replay).items():
            texts[file] = text
    block_texts = {file.rsplit(".", 1)[0] + ("" if file.endswith(".txt") else "." + file.rsplit(".", 1)[1]): text
                   for file, text in texts.items()}
    for path in embed(block_texts):
        print(f"updated {path.relative_to(REPO)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
