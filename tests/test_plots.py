"""`clbench plot`: figure files from run records.

One real `clbench evaluate naive --protocol smoke --seeds 0 1` run (module fixture) gives
genuine records. The other entries are derived from them (clearly not measurements, only
plot input): the same runs relabelled as the uniform environment and as a method with
hyperparameters (same setup, so they share the comparison figures), and one seed relabelled
as `training.epochs=1` (a different setup hash, so separate figures). Deriving them keeps the
test fast; the records are still validated by `RunRecord`.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from matplotlib import image as mpimg

from clbench import plots
from clbench.cli import main
from clbench.metrics import compute_metrics
from clbench.presets import PROTOCOLS
from clbench.protocol import apply_overrides
from clbench.records import RunRecord, read_record, run_id, write_record

SMOKE = PROTOCOLS["smoke"]
UNIFORM = apply_overrides(SMOKE, ["environment.kind=uniform"])
ONE_EPOCH = apply_overrides(SMOKE, ["training.epochs=1"])
POWER_LAW = "power-law-alpha-5.6-rehearsal_fraction-0.5-tau-10.0"  # sanitised environment labels
UNIFORM_ENV = "uniform-rehearsal_fraction-0.5"
SETUP = f"smoke-{SMOKE.setup_hash[:8]}"
OTHER_SETUP = f"smoke-{ONE_EPOCH.setup_hash[:8]}"

ENTRIES = {  # setup prefix -> entry slugs
    SETUP: [f"naive__{POWER_LAW}", f"naive__{UNIFORM_ENV}", f"replay__mem_size-200__{POWER_LAW}"],
    OTHER_SETUP: [f"naive__{POWER_LAW}"],
}


def expected_files(formats=("png", "pdf"), setups=tuple(ENTRIES)) -> set[str]:
    names = set()
    for prefix in setups:
        stems = [f"{prefix}__average-accuracy", f"{prefix}__ff-auc"]
        for slug in ENTRIES[prefix]:
            stems += [f"{prefix}__accuracy-matrix__{slug}", f"{prefix}__learning-curves__{slug}"]
        names |= {f"{stem}.{fmt}" for stem in stems for fmt in formats}
    return names


def derive(record: RunRecord, protocol=None, method=None, hp=None, shift: float = 0.0) -> RunRecord:
    """A copy of a real record under another protocol / method, accuracies lowered by `shift`."""
    data = record.model_dump()
    if protocol is not None:
        data["protocol"] = protocol.resolved()
        data["environment_matrix"] = protocol.env_matrix(record.seed)
    if method is not None:
        data["method"] = {**data["method"], "name": method, "hyperparameters": hp or {}}
    lower = lambda a: max(0.0, a - shift)  # noqa: E731
    data["accuracy_matrix"] = [[lower(a) for a in row] for row in data["accuracy_matrix"]]
    for curve in data["learning_curves"]:
        curve["accuracy"] = [lower(a) for a in curve["accuracy"]]
    data["run_id"] = run_id(data["protocol"]["hash"], data["method"]["name"],
                            data["method"]["hyperparameters"], record.seed)
    # records are checked for consistency: metrics follow the changed accuracies, and the
    # harness's audit (counted for the real run's environment) is left out
    data["metrics"] = compute_metrics(data["accuracy_matrix"], data["untrained_accuracy"], data["learning_curves"],
                                      data["protocol"]["evaluation"]["facilitation_threshold"])
    data.pop("audit", None)
    return RunRecord.model_validate(data)


@pytest.fixture(scope="module")
def records(tmp_path_factory, data_root) -> Path:
    root = tmp_path_factory.mktemp("records")
    code = main(["evaluate", "naive", "--protocol", "smoke", "--seeds", "0", "1",
                 "--data-root", str(data_root), "--out", str(root / "naive"), "-q"])
    assert code == 0
    real = [read_record(p) for p in sorted((root / "naive").glob("*.json"))]
    assert len(real) == 2
    for folder in ("derived", "other-setup"):
        (root / folder).mkdir()
    for record in real:
        write_record(derive(record, protocol=UNIFORM, shift=0.02), root / "derived")
        write_record(derive(record, method="replay", hp={"mem_size": 200}, shift=0.05), root / "derived")
    write_record(derive(real[0], protocol=ONE_EPOCH, shift=0.1), root / "other-setup")
    return root


@pytest.fixture(scope="module")
def plotted(records, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("plots") / "figures"
    assert main(["plot", str(records), "--out", str(out)]) == 0
    return out


def listing(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


def test_expected_files_both_formats(plotted):
    assert listing(plotted) == expected_files()  # nothing else either: no temporary files


def test_file_names_are_sanitised(plotted):
    for name in listing(plotted):
        assert re.fullmatch(r"[a-z0-9][a-z0-9._-]*", name), name


def test_pngs_are_readable_images(plotted):
    for path in sorted(plotted.glob("*.png")):
        pixels = mpimg.imread(path)
        height, width = pixels.shape[:2]
        assert 450 <= width <= 2500 and 450 <= height <= 2500, (path.name, pixels.shape)
        assert pixels[..., :3].std() > 0.05, f"{path.name} looks blank"


def test_pdfs_are_pdfs(plotted):
    for path in sorted(plotted.glob("*.pdf")):
        data = path.read_bytes()
        assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF"), path.name
        assert b"/CreationDate" not in data


def test_regeneration_is_byte_identical(records, plotted, tmp_path, cli):
    # other argument order, files instead of folders: the same bytes
    files = sorted(records.rglob("*.json"), reverse=True)
    code, out, _ = cli("plot", *files, "--out", tmp_path, "--format", "pdf,png")
    assert code == 0
    assert {Path(line).name for line in out.splitlines()} == expected_files()
    assert listing(tmp_path) == expected_files()
    for name in sorted(expected_files()):
        assert (tmp_path / name).read_bytes() == (plotted / name).read_bytes(), name


def test_protocol_filter_and_single_format(records, tmp_path, cli):
    code, out, err = cli("plot", records, "--out", tmp_path, "-p", ONE_EPOCH.setup_hash[:8], "-f", "png")
    assert code == 0, err
    assert listing(tmp_path) == expected_files(("png",), (OTHER_SETUP,))
    assert f"wrote {len(expected_files(('png',), (OTHER_SETUP,)))} files" in err


def test_data_extraction(records):
    from clbench.leaderboard import read_records

    data = {p.prefix: p for p in plots.extract(read_records([records]))}
    assert set(data) == set(ENTRIES)
    naive = next(e for e in data[SETUP].entries if e.slug == f"naive__{POWER_LAW}")
    real = [read_record(p) for p in sorted((records / "naive").glob("*.json"))]
    R = np.array([r.accuracy_matrix for r in real])
    np.testing.assert_allclose(naive.matrix, R.mean(axis=0))
    per_seed = [[np.mean(m[i][: i + 1]) for i in range(3)] for m in R]
    np.testing.assert_allclose(naive.average_accuracy.mean, np.mean(per_seed, axis=0))
    np.testing.assert_allclose(naive.average_accuracy.std, np.std(per_seed, axis=0, ddof=1))
    np.testing.assert_allclose(naive.auc.mean, np.mean([r.metrics.forward_facilitation.auc for r in real], axis=0))
    assert naive.curves[1].x.tolist() == real[0].learning_curves[1].samples
    single = data[OTHER_SETUP].entries[0]
    assert single.seeds == (0,) and single.average_accuracy.std is None


def test_curves_on_different_grids_are_interpolated():
    band = plots.curve_band([([0, 100, 200], [0.0, 0.5, 1.0]), ([0, 200], [0.2, 0.6])])
    assert band.x.tolist() == [0, 100, 200]
    np.testing.assert_allclose(band.mean, [0.1, 0.45, 0.8])


def test_legends_name_environments_by_short_labels():
    """Kind alone when it is the only one of its kind; else the parameters that differ; the
    shared parameters once per kind, as a legend row."""
    power = [{"kind": "power-law", "rehearsal_fraction": r, "tau": 10.0, "alpha": 5.6, "new_samples": None}
             for r in (0.1, 0.5)]
    uniform = {"kind": "uniform", "rehearsal_fraction": 0.25, "new_samples": None}
    short, rows = plots.environment_legend([*power, uniform, {"kind": "sequential", "new_samples": None}])
    assert short == {"power-law (alpha=5.6, rehearsal_fraction=0.1, tau=10.0)": "power-law (rehearsal_fraction=0.1)",
                     "power-law (alpha=5.6, rehearsal_fraction=0.5, tau=10.0)": "power-law (rehearsal_fraction=0.5)",
                     "uniform (rehearsal_fraction=0.25)": "uniform", "sequential": "sequential"}
    assert rows == ("power-law: alpha=5.6, tau=10.0", "uniform: rehearsal_fraction=0.25")


def test_comparison_legends_use_short_labels(records):
    from clbench.leaderboard import read_records

    proto = next(p for p in plots.extract(read_records([records])) if p.prefix == SETUP)
    assert sorted(e.label for e in proto.entries) == [
        "naive · power-law", "naive · uniform", "replay (mem_size=200) · power-law"]
    assert proto.environment_rows == ("power-law: alpha=5.6, rehearsal_fraction=0.5, tau=10.0",
                                      "uniform: rehearsal_fraction=0.5")


def test_entry_slugs():
    assert plots.sanitize("Power-Law (alpha=5.6, tau=10.0)") == "power-law-alpha-5.6-tau-10.0"
    assert plots.sanitize("..x/y") == "x-y"
    long = plots.entry_slug("m", {"a_very_long_hyperparameter_name": "x" * 80}, "uniform")
    assert len(long) < 90 and re.fullmatch(r"[a-z0-9._-]+", long)
    other = plots.entry_slug("m", {"a_very_long_hyperparameter_name": "x" * 81}, "uniform")
    assert other != long  # cut parts end in a digest of the full text


# --------------------------------------------------------------------------- bad input


def assert_error(result, needle: str):
    code, out, err = result
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("clbench: error:") and needle in err, err


def test_no_records(tmp_path, cli):
    (tmp_path / "empty").mkdir()
    assert_error(cli("plot", tmp_path / "empty", "--out", tmp_path / "out"), "no record files")
    assert_error(cli("plot", tmp_path / "missing", "--out", tmp_path / "out"), "no such record")
    assert not (tmp_path / "out").exists()


def test_invalid_record(records, tmp_path, cli):
    folder = tmp_path / "in"
    shutil.copytree(records / "naive", folder)
    (folder / "broken.json").write_text('{"schema_version": 1}')
    assert_error(cli("plot", folder, "--out", tmp_path / "out"), "invalid record")
    (folder / "broken.json").unlink()
    edited = sorted(folder.glob("*.json"))[0]  # a valid record changed by hand: its seal breaks
    edited.write_text(edited.read_text().replace('"device": "cpu"', '"device": "cuda"', 1))
    assert_error(cli("plot", folder, "--out", tmp_path / "out"), "integrity check")
    assert not (tmp_path / "out").exists()


def test_unwritable_out(records, tmp_path, cli):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert_error(cli("plot", records / "naive", "--out", blocker), "not writable")
    assert_error(cli("plot", records / "naive", "--out", blocker / "sub"), "not writable")
    assert listing(tmp_path) == {"a-file"}


def test_unknown_format(records, tmp_path, cli):
    assert_error(cli("plot", records / "naive", "--out", tmp_path / "out", "-f", "png,svg"),
                 "unknown plot format 'svg'; known: png, pdf")
    assert_error(cli("plot", records / "naive", "--out", tmp_path / "out", "-f", ","), "no plot format")
    assert not (tmp_path / "out").exists()


def test_unknown_protocol_and_missing_out(records, tmp_path, cli):
    assert_error(cli("plot", records / "naive", "--out", tmp_path / "out", "-p", "nope"),
                 "no records of protocol 'nope'")
    assert_error(cli("plot", records / "naive"), "--out")
    assert not (tmp_path / "out").exists()
