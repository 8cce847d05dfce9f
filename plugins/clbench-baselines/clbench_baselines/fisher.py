"""EWC's Fisher estimate: Avalanche's minibatch version, or the per-sample one of the papers.

Avalanche 0.6's `EWCPlugin.compute_importances` squares the gradient of each minibatch's
*mean* loss and averages those squares over minibatches. The (empirical) Fisher of
Kirkpatrick et al., and van de Ven's reference code, average the squared gradient of each
*sample's* loss. Per-sample gradients are close to independent with mean near zero at the
end of a phase, so the square of their mean is about the mean of their squares divided by
the batch size: at batch 128 Avalanche's importances are roughly a hundred times smaller,
and a lambda taken from a paper is that much weaker (leaderboards/README.md measures it).

`per_sample_importances` computes the per-sample estimate with the harness's criterion,
for a model made of linear maps (the MLPs) in one forward and backward pass per
minibatch, the same work as Avalanche's; for any other model with `torch.func`'s vmapped
per-sample gradients (135-163 times slower on the reference MLPs:
benchmarks/results/fisher-estimates.txt). Each sample's loss is taken at its true label
(the "empirical" Fisher, as Avalanche's) or at the model's predicted one, which is what
van de Ven's reference code does by default (its `--emp-fi` flag selects the true
label). All are selectable (`fisher=` and `fisher_labels=` on `ewc` and `online-ewc`);
Avalanche's estimate stays the default so earlier records keep their meaning.
"""

from __future__ import annotations

import torch
from avalanche.models import MultiTaskModule
from avalanche.training.plugins import EWCPlugin
from avalanche.training.utils import ParamData
from torch import nn
from torch.utils.data import DataLoader

#: the general path materialises this many per-sample gradients at a time (memory: this
#: many copies of the parameters), whatever the batch size
CHUNK = 32


#: the label each sample's loss is taken at: its own, or the model's prediction
LABELS = ("true", "predicted")


def per_sample_importances(model, criterion, dataset, device, batch_size: int,
                           labels: str = "true") -> dict[str, ParamData]:
    """The mean over `dataset` of each sample's squared loss gradient, per parameter.

    Returned as Avalanche's importances (name -> ParamData), in the model's eval mode as
    Avalanche's pass runs; a multi-head model gets each sample through its task's head.
    `criterion` must average over the minibatch (the harness's cross-entropy does).
    `labels="predicted"` takes each sample's loss at the model's most probable class.
    """
    if labels not in LABELS:
        raise ValueError(f"labels must be one of {LABELS}, not {labels!r}")
    was_training = model.training
    model.eval()
    params = {name: p.detach() for name, p in model.named_parameters()}
    totals = {name: torch.zeros_like(p) for name, p in params.items()}
    multitask = isinstance(model, MultiTaskModule)
    linear_only = _linear_parameters(model) == set(params)
    names = {module: name for name, module in model.named_modules()}

    collate = getattr(dataset, "collate_fn", None)
    samples = 0
    for batch in DataLoader(dataset, batch_size=batch_size, collate_fn=collate):
        x, y, tasks = batch[0].to(device), batch[1].to(device), batch[-1]
        groups = ([(int(t), (tasks == t).nonzero().squeeze(1)) for t in torch.unique(tasks)]
                  if multitask else [(None, slice(None))])
        for task, index in groups:
            inputs = (x[index], task) if multitask else (x[index],)
            target = y[index]
            if labels == "predicted":
                with torch.no_grad():
                    target = model(*inputs).argmax(1)
            squares = _linear_squares(model, criterion, inputs, target, names) if linear_only else None
            if squares is None:  # a layer other than a plain linear map: the general way
                squares = _vmap_squares(model, criterion, inputs, target, params)
            for name, square in squares.items():
                totals[name] += square
        samples += len(x)
    model.train(was_training)
    return {name: ParamData(f"imp_{name}", total.shape, init_tensor=total / max(samples, 1), device=total.device)
            for name, total in totals.items()}


def _linear_parameters(model) -> set[str]:
    return {f"{module_name}.{name}" if module_name else name
            for module_name, module in model.named_modules() if isinstance(module, nn.Linear)
            for name, _ in module.named_parameters(recurse=False)}


def _linear_squares(model, criterion, inputs, y, names=None) -> dict[str, torch.Tensor] | None:
    """Sums over the samples of the squared per-sample gradients, for a model whose every
    parameter sits in an `nn.Linear`, in one forward and backward pass.

    A sample's gradient of a linear map's weight is the outer product of the gradient at
    the map's output (g) and its input (a), so the sum of its squares is (g^2)^T (a^2),
    and the bias's is sum g^2. Valid when each sample's loss depends on its own row only
    (eval mode) and each map runs once on 2-D input; None otherwise (the caller falls back).
    `names` (module -> qualified name) can be passed in to save rebuilding it per call.
    """
    seen: dict[nn.Module, tuple[torch.Tensor, torch.Tensor]] = {}
    usable = True

    def keep(module, args, output):
        nonlocal usable
        if module in seen or args[0].dim() != 2:
            usable = False
        seen[module] = (args[0].detach().clone(), output)
        # the layers after see a copy: an in-place activation (ReLU(inplace=True)) would
        # otherwise rewrite `output`, and its gradient would be the activation's
        return output.clone()

    handles = [m.register_forward_hook(keep) for m in model.modules() if isinstance(m, nn.Linear)]
    try:
        with torch.enable_grad():
            out = model(*inputs)
            if not usable or not seen:
                return None
            modules = list(seen)
            outputs = [seen[m][1] for m in modules]
            # the criterion averages over the batch; times its size, each sample's own loss
            loss = criterion(out, y) * len(y)
            grads = torch.autograd.grad(loss, outputs, allow_unused=True)
    finally:
        for handle in handles:
            handle.remove()
    if names is None:
        names = {module: name for name, module in model.named_modules()}
    squares = {}
    for module, g in zip(modules, grads):
        if g is None:
            continue
        a, g2 = seen[module][0], g.pow(2)
        prefix = f"{names[module]}." if names[module] else ""
        squares[prefix + "weight"] = g2.t() @ a.pow(2)
        if module.bias is not None:
            squares[prefix + "bias"] = g2.sum(0)
    return squares


def _vmap_squares(model, criterion, inputs, y, params) -> dict[str, torch.Tensor]:
    """The same sums for any model: per-sample gradients with `torch.func` (slower)."""
    from torch.func import functional_call, grad, vmap

    buffers = {name: b.detach() for name, b in model.named_buffers()}
    x, rest = inputs[0], inputs[1:]

    def sample_loss(weights, xi, yi):
        return criterion(functional_call(model, (weights, buffers), (xi.unsqueeze(0), *rest)), yi.unsqueeze(0))

    gradients = vmap(grad(sample_loss), in_dims=(None, 0, 0), chunk_size=CHUNK)(params, x, y)
    return {name: g.pow(2).sum(0) for name, g in gradients.items()}


class FisherChoice:
    """Mixin for an `EWCPlugin`: the importances `fisher` and `fisher_labels` choose.

    "minibatch" is the plugin's own `compute_importances` (Avalanche's), "per-sample"
    `per_sample_importances` at the `fisher_labels` labels."""

    fisher_estimate: str = "minibatch"
    fisher_labels: str = "true"

    def choose_fisher(self, fisher: str, fisher_labels: str) -> None:
        if fisher == "minibatch" and fisher_labels != "true":
            raise ValueError("fisher_labels applies to fisher='per-sample' only")
        self.fisher_estimate, self.fisher_labels = fisher, fisher_labels

    def compute_importances(self, model, criterion, optimizer, dataset, device, batch_size, num_workers=0):
        if self.fisher_estimate == "per-sample":
            return per_sample_importances(model, criterion, dataset, device, batch_size, labels=self.fisher_labels)
        return super().compute_importances(model, criterion, optimizer, dataset, device, batch_size,
                                           num_workers=num_workers)


class PerSampleEWCPlugin(FisherChoice, EWCPlugin):
    """Avalanche's `EWCPlugin` (either mode) with the per-sample Fisher."""

    def __init__(self, *, fisher_labels: str = "true", **ewc):
        super().__init__(**ewc)
        self.choose_fisher("per-sample", fisher_labels)
