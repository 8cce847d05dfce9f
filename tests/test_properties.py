"""Property-based tests (hypothesis): random protocol overrides, hyperparameters, command
lines and record files against clbench's contract.

The contract: a command exits 0 with a valid record (or valid output), or exits 2 with
one line on stderr and nothing written; never a traceback, a hang, or a record clbench
cannot read back.

Profiles: `fast` (default; the whole module takes well under two minutes on two cores:
validation paths run in-process, and only a few tiny real training runs) and `long`
(ten times the examples, random rather than fixed draws, plots included):

    CLBENCH_HYPOTHESIS_PROFILE=long python -m pytest tests/test_properties.py
"""

from __future__ import annotations

import atexit
import contextlib
import copy
import hashlib
import io
import json
import math
import os
import shutil
import signal
import string
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, assume, example, given, settings
from hypothesis import strategies as st

from clbench import bounds
from clbench.cli import main
from clbench.environments import dense
from clbench.errors import ClbenchError
from clbench.presets import PROTOCOLS, get_protocol
from clbench.protocol import Protocol, _settable_paths, apply_overrides
from clbench.records import canonical_json, read_record

settings.register_profile("fast", max_examples=150, derandomize=True, deadline=None, database=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("long", max_examples=1500, deadline=None, database=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
PROFILE = os.environ.get("CLBENCH_HYPOTHESIS_PROFILE", "fast")
settings.load_profile(PROFILE)
LONG = PROFILE == "long"
#: Examples of the tests that train for real (each is a whole, if tiny, run).
TRAINING_EXAMPLES = 20 if LONG else 2


@contextlib.contextmanager
def no_hang(seconds: int):
    """Fail (rather than hang) when one example takes longer than `seconds`."""
    def alarm(signum, frame):
        raise TimeoutError(f"no answer within {seconds} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


#: Commands run from here, so that a relative path a random command line names never lands
#: in the repository.
CWD = Path(tempfile.mkdtemp(prefix="clbench-properties-"))
atexit.register(shutil.rmtree, CWD, ignore_errors=True)


def run_cli(argv: list[str], seconds: int = 60) -> tuple[int, str, str]:
    """`clbench ARGV` in-process: (exit status, stdout, stderr). Any exception is a failure."""
    out, err = io.StringIO(), io.StringIO()
    with no_hang(seconds), contextlib.chdir(CWD), contextlib.redirect_stdout(out), \
            contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:  # only argparse's --help / --version (abbreviations too)
            assert exc.code == 0, (argv, err.getvalue())
            code = 0
    return code, out.getvalue(), err.getvalue()


def assert_contract(code: int, err: str, argv, written: list[Path] = ()) -> None:
    """Exit 0, or exit 2 with exactly one line on stderr and nothing written."""
    assert code in (0, 2), (argv, code, err)
    if code == 2:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("clbench: error: "), (argv, err)
        for path in written:
            assert not path.exists(), (argv, path)


# --------------------------------------------------------------------------- strategies

EDGE_INTS = [0, 1, 2, 3, -1, 5, 10, 99, 100, 999, 1000, 1001, 10_000, 60_000, 60_001,
             1_000_000, 1_000_001, 2**31, 2**63 - 1, 2**63, 10**30]
EDGE_FLOATS = [0.0, -0.0, 1e-308, 5e-324, 1e-5, 0.25, 0.5, 0.999, 1.0, 1.0000001, 5.6, 10.0,
               1000.0, 1e308, math.inf, -math.inf, math.nan]

scalars = st.one_of(
    st.none(), st.booleans(),
    st.sampled_from(EDGE_INTS), st.integers(min_value=-10**6, max_value=10**6),
    st.sampled_from(EDGE_FLOATS), st.floats(),
    st.text(max_size=12),
)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=8)


edge_scalars = st.one_of(st.none(), st.booleans(), st.sampled_from(EDGE_INTS), st.sampled_from(EDGE_FLOATS))


@st.composite
def cli_value(draw) -> str:
    """A `--set`/`--hp` value as typed: JSON (Infinity and NaN included) or raw text."""
    choice = draw(st.integers(0, 19))
    if choice < 3:
        return draw(st.text(max_size=20))
    if choice < 12:  # mostly the values at and beyond the edges
        return json.dumps(draw(edge_scalars))
    return json.dumps(draw(json_values))


SETTABLE = sorted(set().union(*(_settable_paths(p.model_dump(mode="json")) for p in PROTOCOLS.values())))
KINDS = ["sequential", "cumulative", "uniform", "exponential", "power-law", "power-law-unrestricted",
         "count-table", "stochastic-power-law"]


def _field_type(key: str):
    """The annotation of a settable protocol key (any environment kind's, for environment.*)."""
    from clbench.environments import ENVIRONMENT_KINDS
    from clbench.protocol import BenchmarkSpec, EvaluationSpec, ModelSpec, TrainingSpec

    section, _, name = key.partition(".")
    models = {"benchmark": [BenchmarkSpec], "model": [ModelSpec], "training": [TrainingSpec],
              "evaluation": [EvaluationSpec], "environment": list(ENVIRONMENT_KINDS.values())}
    for model in models.get(section, [Protocol] if not name else []):
        field = model.model_fields.get(name or section)
        if field is not None:
            return field.annotation
    return None


def _typed_edges(key: str):
    """Edge values of the key's own type: where validation is most likely to slip."""
    from clbench.inputs import wants_number

    tp = _field_type(key)
    if tp is not None and wants_number(tp):
        return st.sampled_from(EDGE_FLOATS + EDGE_INTS) if float in (tp, *getattr(tp, "__args__", ())) \
            else st.sampled_from(EDGE_INTS + [1.5, 2.0, 1e30, math.inf, math.nan])
    return st.lists(st.sampled_from(EDGE_INTS + EDGE_FLOATS), max_size=4) | edge_scalars


@st.composite
def assignment(draw) -> str:
    choice = draw(st.integers(0, 19))
    if choice == 0:
        return draw(st.text(max_size=30))  # anything at all, '=' or not
    if choice == 1:
        key = draw(st.text(max_size=15))
    else:
        key = draw(st.sampled_from(SETTABLE))
    if key == "environment.kind" and draw(st.booleans()):
        return f"{key}={draw(st.sampled_from(KINDS))}"
    if draw(st.booleans()):
        return f"{key}={json.dumps(draw(_typed_edges(key)))}"
    return f"{key}={draw(cli_value())}"


assignments = st.lists(assignment(), max_size=4)
preset_names = st.sampled_from(sorted(PROTOCOLS))


def check_protocol(protocol: Protocol) -> None:
    """What every protocol that validates must satisfy."""
    dump = protocol.model_dump(mode="json")
    json.dumps(dump, allow_nan=False)  # finite numbers only: a record can hold it
    again = Protocol.model_validate({k: v for k, v in protocol.resolved().items() if k != "hash"})
    assert again.hash == protocol.hash
    memory = protocol.memory_estimate()
    assert 0 < memory.total <= bounds.MAX_MEMORY
    T, pool = protocol.benchmark.n_tasks, protocol.benchmark.train_samples_per_task
    assert 1 <= T <= bounds.MAX_TASKS
    if T <= 60:
        seed = 3
        matrix = protocol.env_matrix(seed)
        env = protocol.environment
        assert matrix == dense(env.rows(T, pool, seed), T)
        n_new = env.n_new(pool)
        for p, row in enumerate(matrix):
            assert len(row) == T and row[p] == n_new and not any(row[p + 1:])
            assert all(0 <= count <= pool for count in row)
            assert sum(row) <= env.largest_phase(T, pool)


# ------------------------------------------------------------------ protocol overrides

@given(name=preset_names, sets=assignments)
def test_any_override_gives_a_sound_protocol_or_one_line_error(name, sets):
    with no_hang(30):
        try:
            protocol = apply_overrides(get_protocol(name), sets)
        except ClbenchError as exc:
            assert "\n" not in str(exc) and str(exc)
            return
        check_protocol(protocol)


def _numeric(key: str) -> bool:
    from clbench.inputs import wants_number

    tp = _field_type(key)
    return tp is not None and wants_number(tp)


NUMERIC_KEYS = [key for key in SETTABLE if _numeric(key)]


@given(name=preset_names, key=st.sampled_from(NUMERIC_KEYS),
       value=st.sampled_from(["Infinity", "-Infinity", "NaN", "1e999", "-1e999", "true", "false"]))
def test_no_numeric_field_takes_a_non_finite_value_or_a_boolean(name, key, value):
    kind = {"beta": "exponential", "tau": "power-law", "alpha": "power-law", "rehearsal_fraction": "uniform",
            "recurrence_probability": "stochastic-power-law", "recurrence_fraction": "stochastic-power-law"}
    field = key.split(".")[-1]
    extra = [f"environment.kind={kind[field]}"] if key.startswith("environment.") and field in kind else []
    with pytest.raises(ClbenchError) as info:
        apply_overrides(get_protocol(name), [*extra, f"{key}={value}"])
    text = str(info.value)
    assert key in text and ("finite" in text or "boolean" in text), text


@given(name=preset_names, sets=assignments, json_output=st.booleans(), seed=st.sampled_from(["0", "7", "-1", "x"]))
def test_protocol_commands_keep_the_contract(name, sets, json_output, seed):
    set_args = [a for text in sets for a in ("--set", text)]
    for argv in (["protocols", "show", name, *set_args, *(["--json"] if json_output else [])],
                 ["env-matrix", "-p", name, *set_args, "--seed", seed, "--json"]):
        code, out, err = run_cli(argv)
        assert_contract(code, err, argv)
        if code == 0 and argv[0] == "env-matrix":
            matrix = json.loads(out)["matrix"]
            protocol = apply_overrides(get_protocol(name), sets)
            assert matrix == protocol.env_matrix(int(seed))


# -------------------------------------------------------------- method hyperparameters

def _methods():
    from clbench.plugins import get_registry

    return get_registry().methods


@st.composite
def hyperparameters(draw, fields: list[str]) -> dict:
    keys = draw(st.lists(st.sampled_from(fields), max_size=3, unique=True)) if fields else []
    values = {key: draw(json_values) for key in keys}
    if draw(st.integers(0, 9)) == 0:
        values[draw(st.text(max_size=8))] = draw(json_values)
    return values


@given(data=st.data())
def test_any_hyperparameters_validate_to_finite_json_or_one_line_error(data):
    from clbench.records import run_id

    methods = _methods()
    name = data.draw(st.sampled_from(sorted(methods)))
    method = methods[name].method
    values = data.draw(hyperparameters(list(method.hyperparameters.model_fields)))
    try:
        hp = method.parse_hyperparameters(values)
    except ClbenchError as exc:
        assert "\n" not in str(exc)
        return
    dumped = hp.model_dump(mode="json")
    text = json.dumps(dumped, allow_nan=False)  # a record can hold them
    assert run_id("0" * 64, name, json.loads(text), 0) == run_id("0" * 64, name, dumped, 0)
    assert method.parse_hyperparameters(json.loads(text)) == hp  # and read them back


# ------------------------------------------------------------------- command lines

@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    return tmp_path_factory.mktemp("properties")


def _fresh(scratch: Path, stem: str) -> Path:
    """A new path that does not exist yet (hypothesis seeds `random`, so not from there)."""
    return Path(tempfile.mkdtemp(prefix=f"{stem}-", dir=scratch)) / "out"


tokens = st.one_of(st.text(max_size=10), st.sampled_from(
    ["--json", "--set", "--hp", "--seeds", "-p", "--protocol", "--format", "--dry-run",
     "--list", "--device", "cpu", "cuda", "auto", "-q", "--bogus", "0", "-1", "1e9", "smoke", "naive"]))


@st.composite
def command_line(draw, records: list[str], out: Path, empty_root: Path) -> list[str]:
    """A command line of any command that cannot start training."""
    methods = sorted(_methods())
    name = draw(st.one_of(preset_names, st.text(max_size=8)))
    sets = [a for text in draw(assignments) for a in ("--set", text)]
    kind = draw(st.integers(0, 8))
    if kind == 0:
        argv = ["protocols", *draw(st.lists(st.sampled_from(["--json", "show", name]), max_size=3))]
    elif kind == 1:
        argv = ["env-matrix", "-p", name, *sets, "--json"]
    elif kind in (2, 3):  # never trains: the data root holds no dataset
        method = draw(st.one_of(st.sampled_from(methods), st.text(max_size=8)))
        hps = [a for text in draw(st.lists(assignment(), max_size=2)) for a in ("--hp", text.split(".")[-1])]
        seeds = draw(st.lists(st.sampled_from(["0", "1", "-1", "x", "99999999999999999999"]), max_size=3))
        argv = ["evaluate", method, "-p", name, *sets, *hps, *(["--seeds", *seeds] if seeds else []),
                "--data-root", str(empty_root), "--out", str(out), "-q"]
    elif kind == 4:
        argv = [draw(st.sampled_from(["methods", "plugins"])), *draw(st.lists(st.sampled_from(["--json"]), max_size=1))]
    elif kind == 5:
        chosen = draw(st.lists(st.sampled_from(records), min_size=1, max_size=3))
        fmt = draw(st.lists(st.sampled_from(["md", "latex", "csv", "html", "json", "docx"]), max_size=1))
        argv = ["leaderboard", *chosen, *(["--format", *fmt] if fmt else []),
                *draw(st.sampled_from([[], ["--out", str(out / "board.md")], ["-p", name]]))]
    elif kind == 6:
        from clbench.suites import SUITES

        suite = draw(st.one_of(st.sampled_from(sorted(SUITES)), st.text(max_size=8)))
        argv = ["suite", *draw(st.sampled_from([["--list"], [suite, "--dry-run", "--out", str(out)]]))]
    else:
        argv = draw(st.lists(tokens, max_size=6))
    if draw(st.integers(0, 5)) == 0:
        argv = argv + draw(st.lists(tokens, min_size=1, max_size=2))
    return argv


@given(data=st.data())
def test_random_command_lines_keep_the_contract(data, scratch, record_files):
    empty_root = scratch / "empty-root"
    empty_root.mkdir(exist_ok=True)
    out = _fresh(scratch, "out")
    argv = data.draw(command_line([str(p) for p in record_files], out, empty_root))
    assume(argv[:1] != ["check-plugin"] and argv[:1] != ["verify"])  # they train
    if argv[:1] in (["evaluate"], ["suite"]) and "--dry-run" not in argv and "--list" not in argv:
        assume(argv[0] == "evaluate" and str(empty_root) in argv)
    code, _, err = run_cli(argv)
    assert_contract(code, err, argv, [out])


# ------------------------------------------------------------------------ real runs

TINY = ["benchmark.n_tasks=2", "benchmark.train_samples_per_task=200", "benchmark.test_samples_per_task=100",
        "evaluation.curve_test_samples=100", "evaluation.curve_points=2", "training.epochs=1",
        "model.hidden=[32]"]


def evaluate(data_root: Path, out: Path, method: str, sets: list[str], hps: list[str] = ()) -> tuple[int, str]:
    argv = ["evaluate", method, "-p", "smoke", *[a for s in sets for a in ("--set", s)],
            *[a for h in hps for a in ("--hp", h)], "--seeds", "0", "--data-root", str(data_root),
            "--out", str(out), "-q"]
    code, _, err = run_cli(argv, seconds=240)
    assert_contract(code, err, argv, [out])
    return code, err


def check_written_record(out: Path, protocol: Protocol) -> Path:
    """The one record a run wrote reads back, matches its protocol and makes a leaderboard."""
    records = sorted(out.glob("*.json"))
    assert len(records) == 1, records
    record = read_record(records[0])
    assert record.protocol_hash == protocol.hash and record.seed == 0
    assert record.environment_matrix == protocol.env_matrix(0)
    code, board, err = run_cli(["leaderboard", str(records[0]), "--format", "json"])
    assert code == 0, err
    json.loads(board)
    return records[0]


@pytest.fixture(scope="module")
def tiny_record(data_root, scratch) -> Path:
    """One record from a real tiny run: the seed of the record-file properties."""
    out = scratch / "tiny-run"
    code, err = evaluate(data_root, out, "naive", TINY)
    assert code == 0, err
    return check_written_record(out, apply_overrides(get_protocol("smoke"), TINY))


@st.composite
def tiny_environment(draw) -> list[str]:
    kind = draw(st.sampled_from(KINDS))
    sets = [f"environment.kind={kind}"]
    positive = st.one_of(st.sampled_from([1e-300, 1e-5, 1.0, 5.6, 1e5, 1e308]),
                         st.floats(min_value=1e-6, max_value=1e6))
    fraction = st.one_of(st.sampled_from([1e-9, 0.5, 1.0]), st.floats(min_value=0.01, max_value=1.0))
    if kind in ("uniform", "exponential", "power-law"):
        sets.append(f"environment.rehearsal_fraction={draw(fraction)!r}")
    if kind == "exponential":
        sets.append(f"environment.beta={draw(positive)!r}")
    if kind in ("power-law", "power-law-unrestricted"):
        sets += [f"environment.tau={draw(positive)!r}", f"environment.alpha={draw(positive)!r}"]
    if kind == "stochastic-power-law":
        sets += [f"environment.recurrence_probability={draw(fraction)!r}",
                 f"environment.alpha={draw(positive)!r}", f"environment.recurrence_fraction={draw(fraction)!r}"]
    if kind == "count-table":
        sets.append(f"environment.counts_by_lag={draw(st.lists(st.integers(0, 250), min_size=2, max_size=3))}")
    elif draw(st.booleans()):
        sets.append(f"environment.new_samples={draw(st.integers(1, 220))}")
    return sets


@settings(max_examples=TRAINING_EXAMPLES, phases=[Phase.explicit, Phase.reuse, Phase.generate])
@example(environment=["environment.kind=stochastic-power-law", "environment.alpha=1e-300",
                      "environment.recurrence_fraction=1.0"], batch=7, method=("ewc", ["ewc_lambda=10"]))
@given(environment=tiny_environment(),
       batch=st.sampled_from([1, 7, 64, 1000]),
       method=st.sampled_from([("naive", []), ("l2-anchor", ["strength=0.5"]), ("ewc", ["ewc_lambda=10"])]))
def test_tiny_real_runs_write_records_clbench_reads_back(data_root, scratch, environment, batch, method):
    sets = [*TINY, f"training.batch_size={batch}", *environment]
    out = _fresh(scratch, "run")
    code, err = evaluate(data_root, out, method[0], sets, method[1])
    if code == 0:
        check_written_record(out, apply_overrides(get_protocol("smoke"), sets))
    else:  # refused before anything was written: the protocol must be invalid
        with pytest.raises(ClbenchError):
            apply_overrides(get_protocol("smoke"), sets)


# ------------------------------------------------------------------------ record files

def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value[:3]):
            yield from _paths(item, (*prefix, index))


def _reseal(record: dict) -> dict:
    body = {k: v for k, v in record.items() if k != "integrity"}
    return {**body, "integrity": hashlib.sha256(canonical_json(body).encode()).hexdigest()}


@st.composite
def record_file(draw, original: dict) -> bytes:
    """A record clbench wrote, changed at random: values, keys, bytes or formatting."""
    record = copy.deepcopy(original)
    how = draw(st.integers(0, 6))
    if how <= 2:  # a value anywhere replaced, resealed or not
        path = draw(st.sampled_from([p for p in _paths(record) if p]))
        node = record
        for key in path[:-1]:
            node = node[key]
        if how == 0 or draw(st.booleans()):
            node[path[-1]] = draw(json_values)
        else:
            del node[path[-1]]
        if how >= 1:
            record = _reseal(record)
        return json.dumps(record).encode()
    if how == 3:  # bytes cut or changed
        text = json.dumps(record).encode()
        cut = draw(st.integers(0, len(text)))
        return text[:cut] + draw(st.binary(max_size=8)) + text[cut + draw(st.integers(0, 3)):]
    if how == 4:  # a number token made non-finite or huge, resealed
        text = json.dumps(_reseal(record))
        digits = [i for i, c in enumerate(text) if c in string.digits and text[i - 1] in ":[ "]
        i = draw(st.sampled_from(digits))
        return (text[:i] + draw(st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "9" * 5000]))
                + "0" + text[i + 1:]).encode()
    if how == 5:  # anything JSON
        return json.dumps(draw(json_values)).encode()
    # the same content, formatted differently: must still be read
    return json.dumps(record, indent=draw(st.sampled_from([None, 0, 2, 7])), sort_keys=draw(st.booleans())).encode()


@pytest.fixture(scope="module")
def record_files(tiny_record, scratch) -> list[Path]:
    """A few fixed record-ish files for the command-line property."""
    folder = scratch / "records"
    folder.mkdir()
    good = folder / tiny_record.name
    good.write_bytes(tiny_record.read_bytes())
    (folder / "empty.json").write_text("")
    (folder / "list.json").write_text("[1, 2, 3]")
    (folder / "nan.json").write_text(tiny_record.read_text().replace('"seed": 0', '"seed": NaN', 1))
    return [good, folder / "empty.json", folder / "list.json", folder / "nan.json", folder / "missing.json"]


@given(data=st.data())
def test_random_record_files_are_read_or_refused_in_one_line(data, tiny_record, scratch):
    original = json.loads(tiny_record.read_text())
    content = data.draw(record_file(original))
    folder = _fresh(scratch, "records")
    folder.mkdir()
    path = folder / "run.json"
    path.write_bytes(content)
    # the same content as clbench wrote (`true` is not the 1 it replaced: compare as JSON text)
    reformatted = _parses(content) and canonical_json(json.loads(content)) == canonical_json(original)
    with no_hang(30):
        try:
            record = read_record(path)
        except ClbenchError as exc:
            assert "\n" not in str(exc)
            assert not reformatted, f"clbench refuses its own record, reformatted: {exc}"
            record = None
    out = folder / "board"
    commands = [["leaderboard", str(path)], ["leaderboard", str(folder), "--out", str(out / "b.csv")]]
    if LONG:
        commands.append(["plot", str(path), "--out", str(out / "plots"), "--format", "png"])
    for argv in commands:
        code, _, err = run_cli(argv)
        assert_contract(code, err, argv, [out])
        if record is not None and argv[1] == str(path):
            assert code == 0, (err, content[:200])


def _parses(content: bytes) -> bool:
    try:
        json.loads(content)
        return True
    except ValueError:
        return False
