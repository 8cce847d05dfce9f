"""Mixed-precision training (`training.precision`): bf16 or fp16 autocast, fp16 with a
gradient scaler.

The `MixedPrecision` harness plugin turns autocast on in `before_forward` and off in
`before_backward`, so the model's forward, the strategy's loss (and what a strategy computes
in between: ER-ACE's buffer forward, DER's logit matching) run in the lower precision while
weights, gradients and the optimizer stay fp32, as `torch.autocast` intends. Penalties a
method adds in `before_backward` (LwF's distillation) run after it, in fp32.

fp16 also scales the loss (`torch.amp.GradScaler`): the strategy's `backward` is wrapped to
scale the loss and unscale the gradients right after (so gradient surgery in
`after_backward`, such as A-GEM's projection, sees true gradients), and its
`optimizer_step` to step through the scaler, which skips a step whose gradients
overflowed. The scaler starts afresh every phase, so a run resumed from a phase checkpoint
trains exactly as the uninterrupted one. Evaluation always runs in fp32.
"""

from __future__ import annotations

import torch
from avalanche.core import SupervisedPlugin

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class MixedPrecision(SupervisedPlugin):
    def __init__(self, precision: str, device):
        super().__init__()
        self.precision = precision
        self.dtype = DTYPES[precision]
        self.device_type = torch.device(device).type
        self.scaler: torch.amp.GradScaler | None = None
        self._autocast = None
        self._wrapped: set[int] = set()
        self.skipped_steps = 0  # fp16 steps the scaler skipped (overflowing gradients)

    def before_training_exp(self, strategy, *args, **kwargs):
        if self.precision != "fp16":
            return
        self.scaler = torch.amp.GradScaler(self.device_type)
        if id(strategy) not in self._wrapped:
            self._wrap(strategy)
            self._wrapped.add(id(strategy))

    def _wrap(self, strategy) -> None:
        plugin = self

        def backward():
            plugin.scaler.scale(strategy.loss).backward(retain_graph=getattr(strategy, "retain_graph", False))
            plugin.scaler.unscale_(strategy.optimizer)

        def optimizer_step():
            scale = plugin.scaler.get_scale()
            plugin.scaler.step(strategy.optimizer)
            plugin.scaler.update()
            if plugin.scaler.get_scale() < scale:  # the step was skipped
                plugin.skipped_steps += 1

        strategy.backward = backward
        strategy.optimizer_step = optimizer_step

    def before_forward(self, strategy, *args, **kwargs):
        self.release()
        self._autocast = torch.autocast(self.device_type, dtype=self.dtype)
        self._autocast.__enter__()

    def before_backward(self, strategy, *args, **kwargs):
        self.release()

    def after_training_iteration(self, strategy, *args, **kwargs):
        self.release()

    def release(self) -> None:
        """Leave autocast if it is on (also called by the runner when a run ends or fails)."""
        if self._autocast is not None:
            context, self._autocast = self._autocast, None
            context.__exit__(None, None, None)
