"""Shared fixtures: the real MNIST root, and a small CLI runner."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from clbench.cli import main

REPO = Path(__file__).resolve().parents[1]


def _data_root() -> Path:
    # absolute, because several tests run scripts and subprocesses from temporary folders
    root = Path(os.environ.get("CLBENCH_DATA_ROOT") or REPO.parent / "shared" / "data").absolute()
    if not (root / "MNIST" / "raw" / "train-images-idx3-ubyte").exists():
        pytest.exit(f"MNIST not found under {root}; set CLBENCH_DATA_ROOT", returncode=3)
    return root


@pytest.fixture(scope="session")
def data_root() -> Path:
    return _data_root()


@pytest.fixture
def cli(capsys):
    """Run `clbench ARGS...` in-process; returns (exit code, stdout, stderr)."""

    def run(*args: str):
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run
