"""`clbench tune`: settings chosen on the tuning stream, never on test data (issue 11).

The central claim is checked end to end: tuning on a data root whose MNIST *test* files
are replaced by wrong images and labels gives exactly the same scores as on the real
root (so no tuning run ever read them), while evaluation on that root is ruined (the
positive control). Around it: the tuning stream's structure, the sealed tuning record,
`evaluate --hp-from` and the provenance it leaves in records and leaderboards, and the
one-line refusals.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from pydantic import ValidationError

from clbench.errors import ClbenchError
from clbench.methods import Method
from clbench.plugins import get_registry
from clbench.presets import get_protocol
from clbench.protocol import apply_overrides
from clbench.records import read_record
from clbench.tasks import load_tasks
from clbench.tuning import (TuningRecord, at_edge_of_search_space, integrity_hash, read_tuning_record,
                            tuning_protocol)

TINY = ["benchmark.n_tasks=2", "benchmark.train_samples_per_task=400", "benchmark.test_samples_per_task=200",
        "evaluation.curve_test_samples=100", "evaluation.curve_points=2", "training.epochs=1"]
GRID = ["--grid", "si_lambda=0.1,100"]


def _sets(overrides):
    return sum((["--set", o] for o in overrides), [])


def _tune(cli, data_root, out, *extra):
    return cli("tune", "si", "--protocol", "smoke", *_sets(TINY), *GRID, "--seeds", "0",
               "--data-root", data_root, "--out", out, *extra)


def _wrong_test_files(source: Path, root: Path) -> Path:
    """A copy of MNIST (training files linked) whose test images are inverted and whose
    test labels are shifted by one: valid files, wrong data."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"):
        os.symlink(source / "MNIST" / "raw" / name, raw / name)
    images = (source / "MNIST" / "raw" / "t10k-images-idx3-ubyte").read_bytes()
    labels = (source / "MNIST" / "raw" / "t10k-labels-idx1-ubyte").read_bytes()
    (raw / "t10k-images-idx3-ubyte").write_bytes(images[:16] + bytes(255 - b for b in images[16:]))
    (raw / "t10k-labels-idx1-ubyte").write_bytes(labels[:8] + bytes((b + 1) % 10 for b in labels[8:]))
    return root


@pytest.fixture(scope="module")
def tuned(tmp_path_factory, data_root):
    """One tuning command on the real data root: (exit code, stdout, record path)."""
    from clbench.cli import main

    out = tmp_path_factory.mktemp("tuning")
    code = main(["tune", "si", "--protocol", "smoke", *_sets(TINY), *GRID, "--seeds", "0",
                 "--data-root", str(data_root), "--out", str(out)])
    [path] = out.glob("*__tuning__*.json")
    return code, out, path


# ------------------------------------------------------------------ the tuning stream


@pytest.mark.parametrize("preset, overrides", [
    ("smnist-5", []), ("pmnist-10", ["benchmark.n_tasks=3", "benchmark.train_samples_per_task=2000"])])
def test_the_tuning_stream_keeps_the_structure_and_uses_training_images_only(preset, overrides, data_root):
    protocol = apply_overrides(get_protocol(preset), overrides)
    stream = tuning_protocol(protocol)
    assert stream.hash != protocol.hash and stream.benchmark.stream == "tuning"
    assert protocol.model_dump(exclude={"benchmark"}) == stream.model_dump(exclude={"benchmark"})
    evaluation, tuning = load_tasks(protocol.benchmark, data_root, 0), load_tasks(stream.benchmark, data_root, 0)
    assert len(tuning) == len(evaluation)
    test_rows = {row.numpy().tobytes() for task in evaluation for row in task.test_x.flatten(1)}
    for e, t in zip(evaluation, tuning):
        assert len(t.train_y) == len(e.train_y)  # the same training budget
        assert 0 < len(t.test_y) <= len(e.test_y)
        assert t.classes == e.classes
        # validation images are training images, never evaluation test images
        assert not test_rows & {row.numpy().tobytes() for row in t.test_x.flatten(1)}
        train_rows = {row.numpy().tobytes() for row in t.train_x.flatten(1)}
        assert not train_rows & {row.numpy().tobytes() for row in t.test_x.flatten(1)}
    if preset == "pmnist-10":  # other permutations than the evaluation stream's
        assert not torch.equal(tuning[0].train_x.flatten(1)[:, :50], evaluation[0].train_x.flatten(1)[:, :50])


def test_the_evaluation_stream_is_unchanged_by_the_field(data_root):
    """`benchmark.stream=evaluation` is the default and is left out of the hash."""
    protocol = get_protocol("smnist-5")
    assert apply_overrides(protocol, ["benchmark.stream=evaluation"]).hash == protocol.hash
    assert protocol.hash.startswith("1f69cf2f")  # the committed split-mnist records' hash


def test_a_pool_that_leaves_no_validation_images_is_refused_in_one_line(cli, data_root, tmp_path):
    # ten one-digit tasks; digit 5 has 5,421 training images, the pool takes 5,400 of them
    code, _, err = cli("tune", "si", "--protocol", "smnist-5", "--set", "benchmark.n_tasks=10",
                       "--set", "benchmark.train_samples_per_task=5400", "--data-root", data_root,
                       "--out", tmp_path)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "holds out validation images" in err and "classes [5]" in err and "at most 5321" in err
    assert list(tmp_path.iterdir()) == []


def test_image_presets_tune_on_nine_tenths_of_each_task():
    """The image presets train on every training image; their tuning stream holds out a tenth."""
    for name, pool in (("scifar100-10-class", 4500), ("stinyimagenet-10-task", 9000), ("smnist-5", 10000)):
        assert tuning_protocol(get_protocol(name)).benchmark.train_samples_per_task == pool
    with pytest.raises(ClbenchError, match="no tuning stream for pmnist-paper"):
        tuning_protocol(get_protocol("pmnist-paper"))  # its count table needs almost every image


# ------------------------------------------------------------------ never the test data


def test_tuning_never_reads_the_test_files(cli, tuned, data_root, tmp_path):
    code, _, real_path = tuned
    assert code == 0
    wrong_root = _wrong_test_files(data_root, tmp_path / "wrong")
    code, out, err = _tune(cli, wrong_root, tmp_path / "tuning")
    assert code == 0, err
    [wrong_path] = (tmp_path / "tuning").glob("*__tuning__*.json")
    real, wrong = read_tuning_record(real_path), read_tuning_record(wrong_path)
    assert [t.acc for t in wrong.trials] == [t.acc for t in real.trials]  # bit for bit
    assert wrong.selected == real.selected
    # positive control: evaluation does read the test files, and they are wrong
    code, _, _ = cli("evaluate", "si", "--protocol", "smoke", *_sets(TINY), "--seeds", "0", "-q",
                     "--data-root", wrong_root, "--out", tmp_path / "eval-wrong")
    code2, _, _ = cli("evaluate", "si", "--protocol", "smoke", *_sets(TINY), "--seeds", "0", "-q",
                      "--data-root", data_root, "--out", tmp_path / "eval-real")
    assert code == code2 == 0
    [bad] = (tmp_path / "eval-wrong").glob("*.json")
    [good] = (tmp_path / "eval-real").glob("*.json")
    assert read_record(bad).metrics.acc < 0.5 < read_record(good).metrics.acc


def test_tune_refuses_the_evaluation_stream_and_an_explicit_tuning_stream(cli, data_root, tmp_path):
    code, _, err = cli("tune", "si", "--protocol", "smoke", "--set", "benchmark.stream=tuning",
                       "--data-root", data_root, "--out", tmp_path)
    assert code == 2 and "tuning stream itself" in err


# ------------------------------------------------------------------ records and provenance


def test_the_tuning_record_lists_every_setting_and_the_rule(tuned):
    code, out, path = tuned
    record = read_tuning_record(path)
    assert record.method == "si" and record.grid_source == "user" and record.grid_size == 2
    assert [t.hyperparameters["si_lambda"] for t in record.trials] == [0.1, 100.0]
    assert all(len(t.acc) == 1 and t.mean_acc == t.acc[0] for t in record.trials)
    best = max(record.trials, key=lambda t: t.mean_acc)
    assert record.selected == best.hyperparameters and record.selected_mean_acc == best.mean_acc
    assert record.protocol["hash"] == apply_overrides(get_protocol("smoke"), TINY).hash
    assert record.tuning_protocol_hash == tuning_protocol(apply_overrides(get_protocol("smoke"), TINY)).hash
    # every trial is an ordinary, audited run record on the tuning stream
    runs = [read_record(p) for p in (out / "runs").glob("*.json")]
    assert sorted(r.run_id for r in runs) == sorted(i for t in record.trials for i in t.run_ids)
    assert all(r.protocol["benchmark"]["stream"] == "tuning" and r.audit is not None for r in runs)


LEADERBOARDS = Path(__file__).resolve().parent.parent / "leaderboards"


def test_a_choice_at_the_edge_of_the_search_space_is_flagged():
    """The committed reference tunings: task-incremental EWC picked the largest lambda of its
    grid and domain-incremental SI the largest si_lambda (the best may lie beyond); LwF's
    alpha=2 lies inside its grid, and a two-value grid (temperature) has no edge to flag."""
    def record(suite, method):
        [path] = (LEADERBOARDS / suite / "tuning" / method).glob("*__tuning__*.json")
        return read_tuning_record(path)

    assert at_edge_of_search_space(record("reference-vdv-smnist-task", "ewc")) == {"ewc_lambda": "largest"}
    assert at_edge_of_search_space(record("reference-vdv-smnist-domain", "si")) == {"si_lambda": "largest"}
    lwf = record("reference-vdv-smnist-domain", "lwf")
    assert lwf.selected["alpha"] == 2.0 and at_edge_of_search_space(lwf) == {}
    smallest = lwf.model_copy(update={"selected": {"alpha": 0.5, "temperature": 1.0}})
    assert at_edge_of_search_space(smallest) == {"alpha": "smallest"}


def test_tuning_resumes_and_decides_the_same(cli, tuned, data_root):
    code, out, path = tuned
    before = path.read_text()
    code, printed, err = _tune(cli, data_root, out)
    assert code == 0 and "2 already done, 0 to run" in err
    assert "selected: si_lambda=" in printed and "note:" not in printed  # two values: no edge to speak of
    assert json.loads(path.read_text())["trials"] == json.loads(before)["trials"]


def test_evaluate_hp_from_records_its_provenance(cli, tuned, data_root, tmp_path):
    _, _, path = tuned
    record = read_tuning_record(path)
    code, _, err = cli("evaluate", "si", "--protocol", "smoke", *_sets(TINY), "--seeds", "0", "-q",
                       "--hp-from", path, "--data-root", data_root, "--out", tmp_path / "eval")
    assert code == 0, err
    [file] = (tmp_path / "eval").glob("*.json")
    run = read_record(file)
    assert run.method.hyperparameters == record.selected
    source = run.method.hyperparameter_source
    assert (source.kind, source.tuning_id, source.grid_size, source.stream) == \
        ("tuned", record.tuning_id, 2, "tuning")
    # a default run beside it: the leaderboard says which entry was tuned
    assert cli("evaluate", "si", "--protocol", "smoke", *_sets(TINY), "--seeds", "0", "-q",
               "--hp", "si_lambda=3.0", "--data-root", data_root, "--out", tmp_path / "eval")[0] == 0
    code, table, _ = cli("leaderboard", tmp_path / "eval")
    assert code == 0 and "(tuned)" in table
    assert f"tuning records {record.tuning_id}" in table and "tuned and untuned entries side by side" in table
    user = [read_record(p) for p in (tmp_path / "eval").glob("*.json") if p != file]
    assert [r.method.hyperparameter_source.kind for r in user] == ["user"]


def test_hp_from_is_refused_for_another_protocol_or_method_or_with_hp(cli, tuned, data_root, tmp_path):
    _, _, path = tuned
    cases = [
        (["si", "--protocol", "smoke"], "chose for protocol smoke --set benchmark.n_tasks=2"),
        (["ewc", "--protocol", "smoke", *_sets(TINY)], "is for method si, not ewc"),
        (["si", "--protocol", "smoke", *_sets(TINY), "--hp", "eps=0.2"], "--hp-from and --hp together"),
    ]
    for args, expected in cases:
        code, _, err = cli("evaluate", *args, "--hp-from", path, "--data-root", data_root,
                           "--out", tmp_path / "never")
        assert code == 2 and expected in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "never").exists()


def test_a_forged_tuning_record_is_refused(tuned, tmp_path):
    _, _, path = tuned
    original = json.loads(path.read_text())

    def forged(scores, selected, name):
        data = json.loads(json.dumps(original))
        for trial, (acc, mean) in zip(data["trials"], scores):
            trial["acc"], trial["mean_acc"] = [acc], mean
        data["selected"] = data["trials"][selected]["hyperparameters"]
        data["selected_mean_acc"] = scores[selected][1]
        (tmp_path / name).write_text(json.dumps(data))
        return data

    # the selected setting is not the best one
    forged([(0.5, 0.5), (0.6, 0.6)], 0, "loser.json")
    with pytest.raises(ClbenchError, match="selection rule"):
        read_tuning_record(tmp_path / "loser.json")
    # a mean that is not the mean of its seeds
    with pytest.raises(ValidationError, match="mean_acc does not match"):
        TuningRecord.model_validate(forged([(0.5, 0.7), (0.6, 0.6)], 0, "mean.json"))
    # consistent numbers, but edited after writing: the seal no longer matches
    data = forged([(0.5, 0.5), (0.99, 0.99)], 1, "unsealed.json")
    with pytest.raises(ClbenchError, match="integrity"):
        read_tuning_record(tmp_path / "unsealed.json")
    # resealed, it reads: the seal catches accidents, not forgery (re-run `clbench tune`)
    data["integrity"] = integrity_hash(TuningRecord.model_validate(data))
    (tmp_path / "resealed.json").write_text(json.dumps(data))
    assert read_tuning_record(tmp_path / "resealed.json").selected_mean_acc == 0.99


def test_a_huge_file_given_as_a_tuning_record_is_refused_before_it_is_read(tmp_path):
    huge = tmp_path / "huge.json"
    with open(huge, "wb") as handle:  # sparse: 100 MB that take no disk
        handle.truncate(100 * 2**20)
    with pytest.raises(ClbenchError, match=r"^tuning record '.*huge.json' is 100 MiB; records are at most 64 MiB"):
        read_tuning_record(huge)
    with pytest.raises(ClbenchError, match=r"^cannot read tuning record '.*absent.json'"):
        read_tuning_record(tmp_path / "absent.json")


# ------------------------------------------------------------------ search spaces and inputs


def test_every_baseline_search_space_holds_valid_values():
    registry = get_registry()
    spaces = {name: registry.get(name).method.search_space for name in ("ewc", "online-ewc", "si", "mas",
                                                                        "lwf", "gem", "der")}
    for name, space in spaces.items():
        assert space, name
        for key, values in space.items():
            for value in values:
                registry.get(name).method.parse_hyperparameters({key: value})
    # budgets are the comparison, never tuned
    budgets = {"mem_size", "memory_size", "patterns_per_exp", "sample_size", "batch_size_mem"}
    assert not budgets & {key for space in spaces.values() for key in space}


def test_a_search_space_must_name_hyperparameters():
    from clbench_baselines.regularisation import SIHyperparameters

    with pytest.raises(ValueError, match="not one of its hyperparameters"):
        Method(name="x", factory=lambda ctx, hp: None, hyperparameters=SIHyperparameters,
               search_space={"lambda": (1.0,)})
    with pytest.raises(ValueError, match="non-empty"):
        Method(name="x", factory=lambda ctx, hp: None, hyperparameters=SIHyperparameters,
               search_space={"si_lambda": ()})


@pytest.mark.parametrize("args, expected", [
    (["naive"], "declares no search space"),
    (["si", "--grid", "si_lambda"], "--grid expects KEY=V1,V2"),
    (["si", "--grid", "si_lambda=1,-1"], "bad hyperparameter for 'si'"),
    (["si", "--grid", "lambda=1"], "has no hyperparameter 'lambda'"),
    (["si", "--grid", "si_lambda=1", "--grid", "si_lambda=2"], "twice"),
    (["si", "--trials", "0"], "--trials must be at least 1"),
    (["si", "--jobs", "2"], "--jobs needs --executor process or ray"),
])
def test_bad_tune_input_is_one_line_and_exit_2(cli, data_root, tmp_path, args, expected):
    code, _, err = cli("tune", *args, "--data-root", data_root, "--out", tmp_path / "never")
    assert code == 2 and expected in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "never").exists()
