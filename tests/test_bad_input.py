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
