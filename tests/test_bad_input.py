"""Every bad input: one line on stderr, exit status 2, nothing written."""

import pytest


def _one_line_error(code, out, err):
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("clbench: error: "), err
    return lines[0]


@pytest.mark.parametrize("args,expected", [
    (["evaluate", "naiv", "--protocol", "smoke"], "did you mean 'naive'"),
    (["evaluate", "naive", "--protocol", "smok"], "did you mean 'smoke'"),
    (["evaluate", "naive", "--protocol", "smoke", "--set", "training.epochs=zero"], "training.epochs"),
    (["evaluate", "naive", "--protocol", "smoke", "--set", "training.epochs"], "KEY=VALUE"),
    (["evaluate", "naive", "--protocol", "smoke", "--set", "trainig.epochs=2"], "did you mean"),
    (["evaluate", "naive", "--protocol", "smoke", "--hp", "lr=0.1"], "has no hyperparameter 'lr'"),
    (["evaluate", "naive", "--protocol", "smoke", "--hp", "=3"], "KEY=VALUE"),
    (["evaluate", "naive", "--protocol", "smoke", "--seeds", "0", "0"], "twice"),
    (["evaluate", "naive", "--protocol", "smoke", "--seeds", "x"], "invalid int value"),
    (["evaluate", "naive", "--protocol", "smoke", "--device", "tpu"], "device"),
    (["evaluate"], "METHOD"),
    (["protocols", "show", "nope"], "unknown protocol 'nope'"),
    (["env-matrix"], "--protocol"),
    (["env-matrix", "--protocol", "smoke", "--set", "environment.rehearsal_fraction=2"], "less than or equal to 1"),
    (["frobnicate"], "invalid choice"),
])
def test_bad_arguments(cli, tmp_path, args, expected):
    out_dir = tmp_path / "out"
    if args[:1] == ["evaluate"] and len(args) > 1:
        args = args + ["--out", str(out_dir), "--data-root", str(tmp_path)]
    line = _one_line_error(*cli(*args))
    assert expected in line
    assert not out_dir.exists()


def test_missing_data_root(cli, tmp_path):
    missing = tmp_path / "nowhere"
    line = _one_line_error(*cli("evaluate", "naive", "--protocol", "smoke", "--data-root", missing,
                                "--out", tmp_path / "out"))
    assert "does not exist" in line
    assert not (tmp_path / "out").exists()


def test_data_root_without_mnist_and_no_network(cli, tmp_path, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    line = _one_line_error(*cli("evaluate", "naive", "--protocol", "smoke", "--data-root", empty,
                                "--out", tmp_path / "out"))
    assert "cannot load mnist" in line and "--data-root" in line and "CLBENCH_DATA_ROOT" in line
    assert not (tmp_path / "out").exists()


def test_unwritable_output_folder(cli, tmp_path, data_root):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    line = _one_line_error(*cli("evaluate", "naive", "--protocol", "smoke", "--data-root", data_root,
                                "--out", blocker / "results"))
    assert "not writable" in line
    assert blocker.read_text() == "not a folder"


def test_unsupported_scenario_is_refused(cli, tmp_path, data_root):
    from clbench import Method, hookimpl
    from clbench import plugins as plugins_module

    class ClassOnly:
        @hookimpl
        def clbench_register_methods(register):
            register(Method(name="class-only", factory=lambda ctx, hp: None, scenarios=("class",)))

    registry = plugins_module.load_registry({"class-only": ClassOnly})
    previous = plugins_module._REGISTRY
    plugins_module._REGISTRY = registry
    try:
        line = _one_line_error(*cli("evaluate", "class-only", "--protocol", "smoke",
                                    "--data-root", data_root, "--out", tmp_path / "out"))
    finally:
        plugins_module._REGISTRY = previous
    assert "class-incremental" in line and "domain-incremental" in line
    assert not (tmp_path / "out").exists()


def _catalogue(tmp):
    """(arguments, expected text) for every command; {tmp} folders must stay untouched."""
    empty = tmp / "empty.json"
    empty.write_text("")
    corrupt = tmp / "corrupt.json"
    corrupt.write_text('{"run_id": ')
    out = tmp / "out"
    return [
        (["evaluate", "naive", "--set", "benchmark.train_samples_per_task=0"], "greater than 0"),
        (["evaluate", "naive", "--set", "benchmark.n_tasks=-3"], "greater than 0"),
        (["evaluate", "naive", "--set", "training.batch_size=0"], "greater than 0"),
        (["evaluate", "naive", "--set", "environment.rehearsal_fraction=1.01"], "less than or equal to 1"),
        (["evaluate", "naive", "--set", "model.dropout=1.5"], "less than 1"),
        (["evaluate", "naive", "--set", "model.hidden=[]"], "at least 1"),
        (["evaluate", "naive", "--seeds", "-1"], "non-negative"),
        (["evaluate", "naive", "--set", "environment.kind=count-table"], "counts_by_lag"),
        (["env-matrix", "-p", "smoke", "--set", "environment.kind=uniform", "--set", "environment.tau=3"],
         "Extra inputs"),
        (["env-matrix", "-p", "pmnist-paper", "--set", "benchmark.n_tasks=12"], "12 tasks"),
        (["protocols", "show", "smoke", "--set", "=1"], "KEY=VALUE"),
        (["leaderboard", str(empty)], "invalid record"),
        (["leaderboard", str(corrupt)], "invalid record"),
        (["leaderboard", str(tmp / "missing")], "no such record file or folder"),
        (["leaderboard", str(tmp / "nothing-here"), "--format", "docx"], "invalid choice"),
        (["plot", str(corrupt), "--out", str(out)], "invalid record"),
        (["suite", "paper-enviroments"], "did you mean"),
        (["suite", "smoke-environments", "--jobs", "0", "--out", str(out)], "at least 1"),
        (["suite", "smoke-environments", "--jobs", "2", "--out", str(out)], "--executor process"),
        (["suite", "smoke-environments", "--time-limit", "0", "--out", str(out)], "positive"),
        (["suite", "smoke-environments", "--seeds", "1", "1", "--out", str(out)], "distinct"),
        (["suite", "smoke-environments", "--executor", "cluster"], "invalid choice"),
        (["check-plugin", "naiv"], "did you mean 'naive'"),
        (["check-plugin", "naive", "--protocol", "smoke", "--set", "training.epochs=-1"], "greater than 0"),
        (["methods", "--bogus"], "unrecognized arguments"),
    ]


def test_bad_input_catalogue(cli, tmp_path, data_root):
    for args, expected in _catalogue(tmp_path):
        before = sorted(p.name for p in tmp_path.rglob("*"))
        if args[0] == "evaluate":
            args = [*args, "--data-root", str(data_root), "--out", str(tmp_path / "out")]
        line = _one_line_error(*cli(*args))
        assert expected in line, (args, line)
        assert sorted(p.name for p in tmp_path.rglob("*")) == before, args  # nothing written
