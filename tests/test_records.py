"""Records: integrity hash, atomic writes, validation errors naming the file."""

import json

import pytest

from clbench.errors import ClbenchError
from clbench.records import integrity_hash, read_record, write_atomic, write_record


@pytest.fixture(scope="module")
def record_path(tmp_path_factory, data_root):
    from clbench.cli import main

    out = tmp_path_factory.mktemp("records")
    assert main(["evaluate", "naive", "--protocol", "smoke", "--seeds", "0", "--set", "training.epochs=1",
                 "--data-root", str(data_root), "--out", str(out), "-q"]) == 0
    [path] = out.glob("*.json")
    return path


def test_written_records_are_sealed(record_path):
    record = read_record(record_path)
    assert len(record.integrity) == 64 and record.integrity == integrity_hash(record)


def test_a_hand_edited_record_is_refused(record_path, tmp_path):
    data = json.loads(record_path.read_text())
    data["metrics"]["acc"] = 0.99  # a better number, typed in
    edited = tmp_path / record_path.name
    edited.write_text(json.dumps(data))
    with pytest.raises(ClbenchError, match="integrity check") as info:
        read_record(edited)
    assert str(edited) in str(info.value)


def test_removing_the_seal_does_not_help(record_path, tmp_path):
    data = json.loads(record_path.read_text())
    del data["integrity"]
    stripped = tmp_path / record_path.name
    stripped.write_text(json.dumps(data))
    with pytest.raises(ClbenchError, match="integrity"):
        read_record(stripped)


def test_leaderboard_refuses_an_edited_record(cli, record_path, tmp_path):
    data = json.loads(record_path.read_text())
    data["accuracy_matrix"][0][0] = 1.0
    (tmp_path / record_path.name).write_text(json.dumps(data))
    code, out, err = cli("leaderboard", tmp_path)
    assert code == 2 and "integrity" in err and record_path.name in err and out == ""


@pytest.mark.parametrize("content", ["", "{", "[]", '{"run_id": "x"}'])
def test_corrupt_files_are_one_line_errors(tmp_path, content):
    path = tmp_path / "r.json"
    path.write_text(content)
    with pytest.raises(ClbenchError) as info:
        read_record(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    path = tmp_path / "f.txt"
    path.write_text("old")

    with pytest.raises(TypeError):
        write_atomic(path, None)  # fails while writing
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]  # no temporary file left behind


def test_rewriting_a_record_is_byte_identical(record_path, tmp_path):
    record = read_record(record_path)
    again = write_record(record, tmp_path)
    assert again.read_bytes() == record_path.read_bytes()
