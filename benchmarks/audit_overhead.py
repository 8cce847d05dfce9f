"""What the run audit (clbench.audit) costs: the same run with the audit on and off, in one process.

    python benchmarks/audit_overhead.py --protocol smoke --method naive --repeats 2
    python benchmarks/audit_overhead.py --protocol pmnist-10 --method naive --repeats 1

Runs alternate (on, off, on, off, ...) so a drift in machine load hits both sides alike.
"Off" swaps the runner's RunAudit for a stand-in that counts nothing (never done outside
this benchmark). Prints the training seconds (the phases' train_s plus the audit's
phase-end work, which runs outside train_s) and whole-run wall seconds per side, their
ratios (on / off), and, on a loaded machine where paired ratios are noisy, the time spent
inside the audit's own code in the same run (hook dispatch itself is not included).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from avalanche.core import SupervisedPlugin

import clbench.runner as runner
from clbench.datasets import resolve_data_root
from clbench.plugins import get_registry
from clbench.presets import get_protocol
from clbench.protocol import apply_overrides


class NoAudit:
    """The audit's interface, doing nothing (the 'off' side of the comparison)."""

    def __init__(self, *args, **kwargs):
        self.plugin = SupervisedPlugin()

    def attach(self, *args, **kwargs):
        pass

    def begin_phase(self, *args):
        pass

    def end_phase(self, *args):
        return {}

    def state(self):
        return {}

    def load(self, state):
        pass

    def summary(self):
        return None


class TimedAudit(runner.RunAudit):
    """The real audit, timing its own work (the phase-end work runs outside train_s)."""

    seconds = {"end_phase": 0.0, "in_training": 0.0}

    def end_phase(self, strategy):
        return self._timed("end_phase", super().end_phase, strategy)

    def begin_phase(self, phase, x):
        return self._timed("in_training", super().begin_phase, phase, x)

    def _before_step(self):
        return self._timed("in_training", super()._before_step)

    def _after_step(self):
        return self._timed("in_training", super()._after_step)

    def _count_forward(self, n):
        return self._timed("in_training", super()._count_forward, n)

    def _follow(self, strategy):
        return self._timed("in_training", super()._follow, strategy)

    @classmethod
    def _timed(cls, name, function, *args):
        started = time.perf_counter()
        try:
            return function(*args)
        finally:
            cls.seconds[name] += time.perf_counter() - started


def one_run(request, audit: bool) -> tuple[float, float, float]:
    """(training seconds incl. the audit's phase-end work, wall seconds, the audit's own seconds)."""
    runner.RunAudit = TimedAudit if audit else NoAudit
    TimedAudit.seconds = {"end_phase": 0.0, "in_training": 0.0}
    record = runner.run(request)
    train = sum(t.train_s + t.curve_eval_s for t in record.phase_timings) + TimedAudit.seconds["end_phase"]
    return train, record.wall_time_s, sum(TimedAudit.seconds.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--protocol", default="smoke")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--method", default="naive")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--data-root")
    args = parser.parse_args()
    protocol = apply_overrides(get_protocol(args.protocol), args.overrides)
    registered = get_registry().get(args.method)
    request = runner.RunRequest(protocol, registered, registered.method.hyperparameters(), 0,
                                resolve_data_root(args.data_root))
    real = runner.RunAudit
    sides: dict[bool, list[tuple[float, float, float]]] = {True: [], False: []}
    try:
        for repeat in range(args.repeats):
            for audit in ((True, False) if repeat % 2 == 0 else (False, True)):
                sides[audit].append(one_run(request, audit))
                train, wall, own = sides[audit][-1]
                print(f"repeat {repeat} audit {'on ' if audit else 'off'}: train {train:.2f} s, "
                      f"wall {wall:.2f} s" + (f", audit's own code {own:.2f} s "
                                              f"({own / train * 100:.1f}% of training)" if audit else ""),
                      flush=True)
    finally:
        runner.RunAudit = real
    ratios_train = [on[0] / off[0] for on, off in zip(sides[True], sides[False])]
    ratios_wall = [on[1] / off[1] for on, off in zip(sides[True], sides[False])]
    print(f"{protocol.name} {registered.name}: audit on/off, median of {len(ratios_train)} paired "
          f"ratios: training {statistics.median(ratios_train):.3f}, whole run "
          f"{statistics.median(ratios_wall):.3f}")


if __name__ == "__main__":
    main()
