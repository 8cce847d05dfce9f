"""Why class-incremental Split MNIST LwF is 19.8 in clbench and 23.85 in van de Ven & Tolias 2019.

    python leaderboards/investigations/lwf_class_incremental.py [--seeds 0 1 2]

Runs LwF on the `vdv-smnist-class` protocol with each difference between clbench's LwF
and van de Ven's put back in turn, through clbench's own runner (same data, model,
optimizer, budget and metrics as the committed records; in-process, no isolation), and
writes `lwf-class-incremental.md` beside this file. The "clbench lwf" row is read from
the committed records of `reference-vdv-smnist-class`, not re-run.

The variants (van de Ven's 2019 code, GMvandeVen/continual-learning: `train.py`, `encoder.py`
`train_a_batch`, `utils.loss_fn_kd`):
- *seen-class CE*: the cross-entropy covers only the output units of the classes seen so
  far ("active classes"), not all ten;
- *van de Ven's weighting*: the loss is ``(1/t) CE + (1 - 1/t) T^2 KD`` at task t with
  T = 2, i.e. a distillation weight of ``T^2 (t - 1)`` relative to the CE (0, 4, 8, 12,
  16) where Avalanche's is a constant alpha without the T^2 factor;
- *distillation over all seen units*: van de Ven's `loss_fn_kd` pads the previous model's
  soft targets with zeros for the current task's classes and takes the softmax over every
  seen class, so the distillation also pushes the current classes down on current data
  (Avalanche's distils over the old classes' units only);
- all three together: van de Ven's LwF, as far as the loss goes;
- *new-class CE*: the cross-entropy over the current task's classes only (Avalanche's
  advice for LwF without exemplars in `MaskedCrossEntropy`); not van de Ven's method, a
  pointer to what does move the number.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F

from clbench import Method
from clbench import plugins as plugins_module
from clbench.datasets import resolve_data_root
from clbench.hookspecs import hookimpl
from clbench.leaderboard import read_records
from clbench.presets import get_protocol
from clbench.records import write_atomic
from clbench.runner import RunRequest, run

HERE = Path(__file__).resolve().parent
PROTOCOL = "vdv-smnist-class"
TEMPERATURE = 2.0
N_TASKS = get_protocol(PROTOCOL).benchmark.n_tasks
#: name -> (cross-entropy units, van de Ven's weighting?, distillation over all seen units?)
VARIANTS = {
    "seen-class CE": ("seen", False, False),
    "van de Ven's weighting": ("all", True, False),
    "distillation over all seen units": ("all", False, True),
    "van de Ven's LwF (all three)": ("seen", True, True),
    "new-class CE (not van de Ven's)": ("new", False, False),
}


class UnitMaskedCrossEntropy:
    """Cross-entropy over some output units only; the others get -inf logits (no NaN,
    unlike Avalanche 0.6's `MaskedCrossEntropy`, whose softmax underflows to log 0)."""

    def __init__(self, units: str):
        self.units, self.old, self.new = units, set(), set()

    def before_training_exp(self, strategy, **kwargs):
        self.old |= self.new
        self.new = set(strategy.experience.classes_in_this_experience)

    def __call__(self, logits, targets):
        if self.units == "all":
            return F.cross_entropy(logits, targets)
        keep = sorted(self.new if self.units == "new" else self.old | self.new)
        mask = torch.full((logits.shape[1],), float("-inf"), device=logits.device)
        mask[keep] = 0.0
        return F.cross_entropy(logits + mask, targets)


def _padded_distillation(criterion: UnitMaskedCrossEntropy, alpha, temperature: float):
    """Distillation as van de Ven's `loss_fn_kd`: the softmax covers every seen class's
    unit, and the previous model's soft targets get probability 0 on the current task's
    classes, so the current classes are pushed down on current data too."""
    from clbench_baselines.lwf_heads import SharedTrunkDistillation

    class PaddedDistillation(SharedTrunkDistillation):
        def _distillation_loss(self, out, prev_out, active_units):
            old = sorted(active_units)
            units = old + sorted(criterion.new - set(old))
            log_p = torch.log_softmax(out[:, units] / self.temperature, dim=1)
            q = torch.softmax(prev_out[:, old] / self.temperature, dim=1)
            q = torch.cat([q, q.new_zeros(q.shape[0], len(units) - len(old))], dim=1)
            return -(q * log_p).sum(dim=1).mean()

    return PaddedDistillation(alpha, temperature)


def _factory(units: str, vdv_weighting: bool, padded: bool):
    def make(ctx, hp):
        from avalanche.core import SupervisedPlugin
        from avalanche.training.plugins import LwFPlugin
        from clbench_baselines.lwf_heads import SingleForwardLwF

        class Criterion(UnitMaskedCrossEntropy, SupervisedPlugin):
            def __init__(self):
                SupervisedPlugin.__init__(self)
                UnitMaskedCrossEntropy.__init__(self, units)

        criterion = Criterion()
        kwargs = ctx.strategy_kwargs()
        kwargs["criterion"] = criterion
        kwargs["plugins"].append(criterion)
        alpha = [TEMPERATURE ** 2 * k for k in range(N_TASKS)] if vdv_weighting else 1.0
        strategy = SingleForwardLwF(**kwargs, alpha=alpha, temperature=TEMPERATURE)
        if padded:
            plugin = next(p for p in strategy.plugins if isinstance(p, LwFPlugin))
            plugin.lwf = strategy.distillation = _padded_distillation(criterion, alpha, TEMPERATURE)
        return strategy
    return make


class Variants:
    @hookimpl
    def clbench_register_methods(register):
        from clbench_baselines._base import ALL_SCENARIOS, no_exemplars

        for i, variant in enumerate(VARIANTS.values()):
            register(Method(name=f"lwf-variant-{i}", factory=_factory(*variant),
                            scenarios=ALL_SCENARIOS, stored_exemplars=no_exemplars))


def committed_lwf_acc(seeds) -> dict[int, float]:
    """ACC of the committed clbench LwF (defaults) records, by seed."""
    records = read_records([HERE.parent / f"reference-{PROTOCOL}" / "records"])
    return {r.seed: r.metrics.acc for r in records
            if r.method.name == "lwf" and r.method.hyperparameter_source.kind == "default" and r.seed in seeds}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument("--only", type=int, nargs="*", help="variant numbers to run (a quick look; writes nothing)")
    args = parser.parse_args(argv)
    registry = plugins_module.load_registry({"lwf-variants": Variants})
    plugins_module._REGISTRY = registry
    protocol = get_protocol(PROTOCOL)
    data_root = resolve_data_root(args.data_root)
    rows = [{"variant": "clbench lwf (alpha 1, T 2, CE over all 10 units)", **{
        f"seed {s}": 100 * acc for s, acc in sorted(committed_lwf_acc(args.seeds).items())}}]
    for i, name in enumerate(VARIANTS):
        if args.only is not None and i not in args.only:
            continue
        registered = registry.get(f"lwf-variant-{i}")
        row = {"variant": name}
        for seed in args.seeds:
            record = run(RunRequest(protocol, registered, registered.method.parse_hyperparameters({}),
                                    seed, data_root))
            row[f"seed {seed}"] = 100 * record.metrics.acc
            print(f"{name}, seed {seed}: ACC {100 * record.metrics.acc:.2f}", file=sys.stderr)
        rows.append(row)
    frame = pd.DataFrame(rows).set_index("variant")
    frame["mean"] = frame.mean(axis=1)
    if args.only is not None:
        print(frame.to_markdown(floatfmt=".2f"))
        return 0
    write_atomic(HERE / "lwf-class-incremental.md",
                 "# LwF on class-incremental Split MNIST: van de Ven's differences put back\n\n"
                 f"Protocol `{PROTOCOL}`; ACC in % at the end of the 5 tasks. Published (van de Ven & "
                 "Tolias 2019): 23.85. Written by `lwf_class_incremental.py` (its docstring lists the "
                 "variants).\n\n" + frame.to_markdown(floatfmt=".2f") + "\n")
    print(frame.to_markdown(floatfmt=".2f"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
