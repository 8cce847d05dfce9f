"""Executors: where a suite's runs execute (this process, worker processes, or Ray tasks).

A suite says what runs (`clbench.suites`); an executor takes one plain-data payload per
run and yields ``(key, record_json, error)`` as each run ends. Used as a context manager,
every executor leaves nothing running behind it:

- On a normal end it waits for its workers (there is nothing left to wait for).
- On Ctrl-C or any error in the driver, `stop` kills the runs still going, at once: the
  `process` executor SIGKILLs its workers (each also dies on its own when the driver dies,
  through Linux's parent-death signal), the `ray` executor cancels its tasks. Before that,
  `finished` yields the runs that ended but were not yet collected, so the driver keeps
  every finished record. A run killed part-way keeps its latest per-phase checkpoint
  (written atomically) and continues from it next time.
- Workers never see Ctrl-C themselves (see `clbench.signals`): the driver decides.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Hashable, Iterator
from pathlib import Path

from .errors import ClbenchError

#: (the run's key, its record as JSON or None, the exception that failed it or None)
Result = tuple

EXECUTORS = ("local", "process", "ray")


def run_payload(payload: dict) -> str:
    """Run one run described by plain data and return its record as JSON.

    Only plain data crosses the process boundary: the worker resolves the protocol and
    method itself from the installed plugins, so nothing is unpickled from the driver.
    """
    import torch

    from .plugins import get_registry
    from .protocol import Protocol
    from .runner import RunRequest, run

    torch.set_num_threads(payload["threads"])
    registered = get_registry().get(payload["method"])
    hp = registered.method.parse_hyperparameters(payload["hyperparameters"])
    protocol = Protocol.model_validate(payload["protocol"])
    folder = payload.get("checkpoint_dir")
    request = RunRequest(protocol, registered, hp, payload["seed"], Path(payload["data_root"]),
                         payload["device"], payload["overrides"], time_limit_s=payload["time_limit_s"],
                         checkpoint_dir=Path(folder) if folder else None,
                         hyperparameter_source=payload.get("hyperparameter_source"),
                         sandbox=bool(payload.get("sandbox")),
                         notify=lambda line: print(f"{registered.name} seed {payload['seed']}: {line}",
                                                   file=sys.stderr, flush=True))
    return run(request).model_dump_json()


class Executor:
    """Runs payloads; `results` blocks, `finished` never does, `stop` ends everything."""

    def start(self, payloads: dict[Hashable, dict]) -> None:
        self._payloads = dict(payloads)

    def results(self) -> Iterator[Result]:
        raise NotImplementedError

    def finished(self) -> Iterator[Result]:
        """Runs that have ended but were not yet yielded by `results` (after an interrupt)."""
        return iter(())

    def close(self) -> None:
        """After `results` is exhausted."""

    def stop(self) -> None:
        """Kill whatever still runs; idempotent."""

    def __enter__(self) -> "Executor":
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if kind is None:
            self.close()
        else:
            self.stop()


class LocalExecutor(Executor):
    """One run after another in this process (Ctrl-C interrupts the run itself)."""

    def results(self) -> Iterator[Result]:
        for key, payload in self._payloads.items():
            try:
                yield key, run_payload(payload), None
            except Exception as exc:
                yield key, None, exc


def _init_worker(driver_pid: int) -> None:
    from .signals import die_with_parent

    die_with_parent(driver_pid)


class ProcessExecutor(Executor):
    """`jobs` spawned worker processes that die with the driver and ignore Ctrl-C."""

    def __init__(self, jobs: int):
        self.jobs = jobs
        self._pool = None
        self._futures: dict = {}
        self._yielded: set = set()

    def start(self, payloads: dict[Hashable, dict]) -> None:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        from .signals import sigint_blocked_for_children

        context = multiprocessing.get_context("spawn")  # no forked torch or avalanche state
        self._pool = ProcessPoolExecutor(max_workers=self.jobs, mp_context=context,
                                         initializer=_init_worker, initargs=(os.getpid(),))
        with sigint_blocked_for_children():  # workers are started by submit, in this thread
            for key, payload in payloads.items():
                self._futures[self._pool.submit(run_payload, payload)] = key

    def _outcome(self, future) -> Result:
        self._yielded.add(future)
        try:
            return self._futures[future], future.result(), None
        except Exception as exc:
            return self._futures[future], None, exc

    def results(self) -> Iterator[Result]:
        from concurrent.futures import as_completed

        for future in as_completed(self._futures):
            if future not in self._yielded:
                yield self._outcome(future)

    def finished(self) -> Iterator[Result]:
        for future in list(self._futures):
            if future not in self._yielded and future.done() and not future.cancelled():
                yield self._outcome(future)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def stop(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        workers = list((getattr(pool, "_processes", None) or {}).values())
        manager = getattr(pool, "_executor_manager_thread", None)
        # queued runs never start (the pool cancels them itself: cancelling a future here
        # races with the pool failing it once its worker is gone)
        pool.shutdown(wait=False, cancel_futures=True)
        for worker in workers:
            try:
                worker.kill()
            except (OSError, ValueError, AttributeError):
                pass
        # the pool's manager thread sees its workers die, fails what was running and ends;
        # waiting for it releases the queues' semaphores (nothing left for resource_tracker)
        if manager is not None:
            manager.join(timeout=10)
        for worker in workers:
            worker.join(timeout=5)
        self._futures = {}


class RayExecutor(Executor):
    """Each run as a Ray task asking for `threads` CPUs (and a GPU for a CUDA device).

    With no address a local Ray instance with `jobs * threads` CPUs is started (and
    stopped afterwards); with one, the runs go to that cluster, whose workers must have
    clbench, the plugins and the data root at the same path. `stop` cancels the tasks
    (force: their worker processes are killed).
    """

    def __init__(self, device: str, threads: int, jobs: int, address: str | None):
        try:
            import ray
        except ImportError:
            raise ClbenchError("the ray executor needs Ray: pip install 'clbench[ray]'") from None
        self._ray = ray
        self.device, self.threads, self.jobs, self.address = device, threads, jobs, address
        self._started_here = False
        self._pending: dict = {}

    def start(self, payloads: dict[Hashable, dict]) -> None:
        ray = self._ray
        if not ray.is_initialized():
            options = {"include_dashboard": False, "logging_level": "ERROR", "log_to_driver": False}
            if self.address:
                ray.init(address=self.address, **options)
            else:
                ray.init(num_cpus=self.jobs * self.threads, **options)
            self._started_here = True
        task = ray.remote(num_cpus=self.threads, num_gpus=1 if self.device.startswith("cuda") else 0,
                          max_retries=0)(run_payload)
        self._pending = {task.remote(payload): key for key, payload in payloads.items()}

    def _outcome(self, ref) -> Result:
        key = self._pending.pop(ref)
        try:
            return key, self._ray.get(ref), None
        except Exception as exc:  # ray wraps the worker's exception; keep its text
            return key, None, exc

    def results(self) -> Iterator[Result]:
        while self._pending:
            [ready], _ = self._ray.wait(list(self._pending), num_returns=1)
            yield self._outcome(ready)

    def finished(self) -> Iterator[Result]:
        if self._pending:
            ready, _ = self._ray.wait(list(self._pending), num_returns=len(self._pending), timeout=0)
            for ref in ready:
                yield self._outcome(ref)

    def close(self) -> None:
        if self._started_here:
            self._ray.shutdown()
            self._started_here = False

    def stop(self) -> None:
        for ref in list(self._pending):
            try:
                self._ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001 - already finished or gone: nothing to cancel
                pass
        self._pending = {}
        self.close()


def make_executor(name: str, jobs: int = 1, device: str = "cpu", threads: int = 1,
                  ray_address: str | None = None) -> Executor:
    from .errors import unknown_name

    if name == "local":
        return LocalExecutor()
    if name == "process":
        return ProcessExecutor(jobs)
    if name == "ray":
        return RayExecutor(device, threads, jobs, ray_address)
    raise unknown_name("executor", name, EXECUTORS)
