"""Peak memory (RSS) of a `smoke` run, and where it goes: imports, data, training.

Two measurements, each in fresh processes so nothing is shared or cached between them:

  stages  one child process per stage, each doing everything the previous stage did and
          one more step; the figures are that child's own peak RSS (getrusage ru_maxrss,
          read when the stage is done) and the peak summed RSS of it and its children
          over its whole life, interpreter shutdown included (sampled as for `cli`; a run
          may start a harness process):
            python       the bare interpreter
            torch        + import torch
            clbench      + import clbench.runner (Avalanche, torchvision and what they import)
            raw          + MNIST read into memory (uint8, clbench.datasets.load_raw)
            tasks        + the smoke tasks of seed 0 (clbench.tasks.load_tasks)
            run          + a whole `naive` run of smoke, seed 0 (clbench.runner.run)
  cli     `clbench evaluate naive --protocol smoke --seeds 0` as a subprocess; the peak of
          the summed RSS of its whole process tree (children included), sampled every
          10 ms with psutil, and the largest single process's own peak (VmHWM).

    python benchmarks/memory.py                 # both, as a table
    python benchmarks/memory.py --json
    python benchmarks/memory.py --protocol pmnist-10 --only cli

Figures are MB (2**20 bytes). Needs MNIST under --data-root or $CLBENCH_DATA_ROOT.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STAGES = ("python", "torch", "clbench", "raw", "tasks", "run")
REPO = Path(__file__).resolve().parents[1]


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _stage(name: str, protocol_name: str, data_root: str, method: str) -> dict:
    """Run stages up to `name` in this process; return its peak RSS."""
    upto = STAGES.index(name)
    if upto >= 1:
        import torch  # noqa: F401
    if upto >= 2:
        import clbench.runner  # noqa: F401
    if upto >= 3:
        from clbench.datasets import load_raw
        from clbench.presets import get_protocol
        from clbench.tasks import RAW_DATASET

        protocol = get_protocol(protocol_name)
        load_raw(RAW_DATASET[protocol.benchmark.name], Path(data_root))
    if upto == 4:
        from clbench.tasks import load_tasks

        tasks = load_tasks(protocol.benchmark, Path(data_root), 0)  # noqa: F841
    if upto == 5:
        from clbench.plugins import get_registry
        from clbench.runner import RunRequest, run

        registered = get_registry().get(method)
        run(RunRequest(protocol, registered, registered.method.hyperparameters(), 0, Path(data_root)))
    return {"stage": name, "peak_mb": round(_peak_mb(), 1)}


def stages(protocol: str, data_root: str, method: str) -> list[dict]:
    rows = []
    for name in STAGES:
        command = [sys.executable, __file__, "--stage", name, "--protocol", protocol,
                   "--data-root", data_root, "--method", method]
        tree = tree_peak(command)
        rows.append({**json.loads(tree["stdout"].strip().splitlines()[-1]),
                     "tree_peak_mb": tree["tree_peak_mb"]})
    return rows


def _hwm_bytes(pid: int) -> int:
    """A process's own peak RSS so far (VmHWM), 0 if it is gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def tree_peak(command: list[str], interval: float = 0.01) -> dict:
    """Run `command`; the peak summed RSS of its process tree, sampled every `interval` s.

    A child enters the sum from its second sample on: a fork about to exec (uname, ...)
    shares its parent's pages and would otherwise be counted twice for a moment.
    """
    import psutil

    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO)
    root = psutil.Process(process.pid)
    peak_sum = peak_single = 0
    most_processes = 1
    seen: set[int] = set()
    while process.poll() is None:
        try:
            children = root.children(recursive=True)
        except psutil.NoSuchProcess:
            break
        total = 0
        for member in [root, *children]:
            try:
                rss = member.memory_info().rss
            except psutil.Error:
                continue
            if member.pid == root.pid or member.pid in seen:
                total += rss
            peak_single = max(peak_single, _hwm_bytes(member.pid))
        seen = {child.pid for child in children}
        peak_sum = max(peak_sum, total)
        most_processes = max(most_processes, 1 + len(children))
        time.sleep(interval)
    stdout, stderr = (stream.decode(errors="replace") for stream in process.communicate())
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{stderr}")
    return {"command": " ".join(command[1:]), "tree_peak_mb": round(peak_sum / 2**20, 1),
            "largest_process_peak_mb": round(peak_single / 2**20, 1),
            "processes": most_processes, "wall_s": round(time.perf_counter() - started, 1),
            "stdout": stdout}


def cli_run(protocol: str, data_root: str, method: str) -> dict:
    with tempfile.TemporaryDirectory(prefix="clbench-memory-") as out:
        clbench = Path(sys.executable).with_name("clbench")
        command = [str(clbench), "evaluate", method, "--protocol", protocol, "--seeds", "0",
                   "--data-root", data_root, "--out", out, "--quiet"]
        result = tree_peak(command)
        del result["stdout"]
        return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--protocol", default="smoke")
    parser.add_argument("--method", default="naive")
    parser.add_argument("--data-root", default=os.environ.get("CLBENCH_DATA_ROOT")
                        or str(REPO.parent / "shared" / "data"))
    parser.add_argument("--only", choices=["stages", "cli"])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--stage", choices=STAGES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.stage:
        print(json.dumps(_stage(args.stage, args.protocol, args.data_root, args.method)))
        return 0
    result: dict = {"protocol": args.protocol, "method": args.method}
    if args.only in (None, "stages"):
        result["stages"] = stages(args.protocol, args.data_root, args.method)
    if args.only in (None, "cli"):
        result["cli"] = cli_run(args.protocol, args.data_root, args.method)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    if "stages" in result:
        print(f"peak RSS by stage ({args.protocol}, {args.method}, seed 0; each stage includes the "
              "ones above): the stage's process, and its process tree")
        previous = 0.0
        for row in result["stages"]:
            print(f"  {row['stage']:<8} {row['peak_mb']:8.1f} MB  (+{row['peak_mb'] - previous:7.1f})"
                  f"   tree {row['tree_peak_mb']:8.1f} MB")
            previous = row["peak_mb"]
    if "cli" in result:
        c = result["cli"]
        print(f"clbench evaluate {args.method} -p {args.protocol} --seeds 0: process tree peak "
              f"{c['tree_peak_mb']:.1f} MB, largest process {c['largest_process_peak_mb']:.1f} MB, "
              f"{c['processes']} process(es), {c['wall_s']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
