"""EWC's per-sample Fisher (`fisher="per-sample"`): the papers' estimate, and earlier runs
keep their ids.

The estimate is checked against the definition computed the slow way (one backward per
sample), on real MNIST phases through the harness, for a single-head and a multi-head
model; the minibatch default against Avalanche's own pass; and the ratio between the two
against the batch-size argument of `clbench_baselines.fisher`.
"""

import torch
import torch.nn.functional as F
from avalanche.core import SupervisedPlugin
from avalanche.training.plugins import EWCPlugin

from clbench.plugins import get_registry
from clbench.presets import get_protocol
from clbench.protocol import apply_overrides
from clbench.records import run_id
from clbench.runner import RunRequest, run
from clbench_baselines.ewc_merged import MergedEWCPlugin
from clbench_baselines.fisher import PerSampleEWCPlugin, per_sample_importances

SMALL = ["environment.kind=sequential", "benchmark.n_tasks=2", "training.epochs=1",
         "benchmark.train_samples_per_task=300"]


class KeepStrategy(SupervisedPlugin):
    """Keeps the strategy and its last phase's training data (the model ends as it was then)."""

    def after_training_exp(self, strategy, **kwargs):
        self.strategy, self.dataset = strategy, strategy.experience.dataset


def _trained(method, protocol, data_root, **hp):
    registered = get_registry().get(method)
    keeper = KeepStrategy()
    run(RunRequest(protocol, registered, registered.method.parse_hyperparameters(hp), 0, data_root,
                   observers=[keeper]))
    return keeper.strategy, keeper.dataset


def _one_sample_at_a_time(strategy, dataset):
    """The definition: mean over samples of the squared gradient of that sample's loss."""
    model = strategy.model
    model.eval()
    sums = {name: torch.zeros_like(p) for name, p in model.named_parameters()}
    for i in range(len(dataset)):
        x, y, task = dataset[i][0], dataset[i][1], dataset[i][-1]
        model.zero_grad()
        out = model(x.unsqueeze(0), task) if hasattr(model, "forward_single_task") else model(x.unsqueeze(0))
        F.cross_entropy(out, torch.tensor([y])).backward()
        for name, p in model.named_parameters():
            if p.grad is not None:
                sums[name] += p.grad.pow(2)
    model.train()
    return {name: s / len(dataset) for name, s in sums.items()}


def _assert_close(actual, expected):
    for name, value in expected.items():
        scale = value.abs().max().item()
        assert torch.allclose(actual[name].data, value, rtol=1e-4, atol=1e-6 * max(scale, 1e-12)), name


def test_per_sample_fisher_is_the_mean_of_squared_sample_gradients(data_root):
    protocol = apply_overrides(get_protocol("smoke"), SMALL)
    strategy, dataset = _trained("ewc", protocol, data_root, fisher="per-sample")
    plugin = next(p for p in strategy.plugins if isinstance(p, EWCPlugin))
    assert isinstance(plugin, MergedEWCPlugin) and plugin.fisher_estimate == "per-sample"
    actual = per_sample_importances(strategy.model, strategy._criterion, dataset, "cpu", strategy.train_mb_size)
    _assert_close(actual, _one_sample_at_a_time(strategy, dataset))


def test_per_sample_fisher_on_a_multi_head_model_uses_each_samples_head(data_root):
    protocol = apply_overrides(get_protocol("vdv-smnist-task"), [
        "benchmark.n_tasks=2", "training.epochs=1", "benchmark.train_samples_per_task=200"])
    strategy, dataset = _trained("online-ewc", protocol, data_root, fisher="per-sample")
    plugin = next(p for p in strategy.plugins if isinstance(p, EWCPlugin))
    assert isinstance(plugin, PerSampleEWCPlugin)
    actual = per_sample_importances(strategy.model, strategy._criterion, dataset, "cpu", strategy.train_mb_size)
    expected = _one_sample_at_a_time(strategy, dataset)
    _assert_close(actual, expected)
    heads = [name for name in expected if name.startswith("classifier.heads.")]
    used = {name.split(".")[2] for name in heads if expected[name].abs().max() > 0}
    assert used == {"1"}  # the second phase's samples all go through head 1; head 0 gets 0


def test_the_minibatch_default_is_avalanches_and_about_batch_size_times_smaller(data_root):
    protocol = apply_overrides(get_protocol("smoke"), SMALL)
    strategy, dataset = _trained("ewc", protocol, data_root)
    args = (strategy.model, strategy._criterion, strategy.optimizer, dataset, "cpu", strategy.train_mb_size)
    minibatch = MergedEWCPlugin(1.0).compute_importances(*args)
    avalanche = EWCPlugin(1.0).compute_importances(*args)
    _assert_close(minibatch, {n: d.data for n, d in avalanche.items()})
    per_sample = MergedEWCPlugin(1.0, fisher="per-sample").compute_importances(*args)
    ratio = (sum(d.data.sum() for d in per_sample.values())
             / sum(d.data.sum() for d in minibatch.values())).item()
    # independent sample gradients: mean of squares ~ batch size x square of the mean;
    # not exact (the gradients' mean is not zero), but far from 1
    assert strategy.train_mb_size / 10 < ratio < strategy.train_mb_size * 2, ratio


def test_fisher_at_its_default_leaves_earlier_run_ids_and_records_unchanged():
    """`fisher` came after EWC records were published: at its default it is not in the
    dump, so a committed record's id (computed without it) is still the run's id."""
    ewc = get_registry().get("ewc").method
    default, per_sample = ewc.parse_hyperparameters({}), ewc.parse_hyperparameters({"fisher": "per-sample"})
    assert default.model_dump(mode="json") == {"ewc_lambda": 500.0, "penalty": "merged"}
    assert per_sample.model_dump(mode="json")["fisher"] == "per-sample"
    protocol = get_protocol("vdv-smnist-task")
    before = run_id(protocol.hash, "ewc", {"ewc_lambda": 500.0, "penalty": "merged"}, 0)
    assert run_id(protocol.hash, "ewc", default.model_dump(mode="json"), 0) == before
    assert run_id(protocol.hash, "ewc", per_sample.model_dump(mode="json"), 0) != before
    # a record's hyperparameters read back to the same configuration
    assert ewc.parse_hyperparameters(default.model_dump(mode="json")) == default
    online = get_registry().get("online-ewc").method
    assert "fisher" not in online.parse_hyperparameters({"ewc_lambda": 1e8}).model_dump()


def _definition(model, x, y):
    sums = {name: torch.zeros_like(p) for name, p in model.named_parameters()}
    for xi, yi in zip(x, y):
        model.zero_grad()
        F.cross_entropy(model(xi.unsqueeze(0)), yi.unsqueeze(0)).backward()
        for name, p in model.named_parameters():
            sums[name] += p.grad.pow(2)
    return sums


def test_the_linear_shortcut_and_the_general_path_both_match_the_definition():
    """The one-pass shortcut for linear layers (with an in-place ReLU between them, whose
    rewrite of a layer's output must not leak into its gradient), and the vmapped path that
    any other model takes (here a convolution, which the shortcut must decline)."""
    from clbench_baselines.fisher import _linear_parameters, _linear_squares, _vmap_squares

    torch.manual_seed(0)
    criterion = torch.nn.CrossEntropyLoss()
    x, y = torch.randn(24, 1, 6, 6), torch.randint(0, 5, (24,))
    mlp = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(36, 16), torch.nn.ReLU(inplace=True),
                              torch.nn.Linear(16, 5)).eval()
    expected = _definition(mlp, x, y)
    params = {name: p.detach() for name, p in mlp.named_parameters()}
    _assert_close(_linear_squares(mlp, criterion, (x,), y), expected)
    _assert_close(_vmap_squares(mlp, criterion, (x,), y, params), expected)
    conv = torch.nn.Sequential(torch.nn.Conv2d(1, 3, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                               torch.nn.Linear(48, 5)).eval()
    params = {name: p.detach() for name, p in conv.named_parameters()}
    assert _linear_parameters(mlp) == set(dict(mlp.named_parameters())) and _linear_parameters(conv) != set(params)
    _assert_close(_vmap_squares(conv, criterion, (x,), y, params), _definition(conv, x, y))


def test_predicted_labels_take_each_samples_loss_at_the_models_own_prediction(data_root):
    """`fisher_labels="predicted"` (van de Ven's default) is the definition with the
    model's argmax in place of the label: equal to the true-label estimate on the samples
    the model gets right, different on the rest."""
    protocol = apply_overrides(get_protocol("smoke"), SMALL)
    strategy, dataset = _trained("ewc", protocol, data_root, fisher="per-sample", fisher_labels="predicted")
    model = strategy.model.eval()
    x = torch.stack([dataset[i][0] for i in range(len(dataset))])
    y = torch.tensor([int(dataset[i][1]) for i in range(len(dataset))])
    with torch.no_grad():
        predicted = model(x).argmax(1)
    assert 0 < int((predicted != y).sum()) < len(y)  # a model that errs on some samples
    plugin = next(p for p in strategy.plugins if isinstance(p, MergedEWCPlugin))
    assert plugin.fisher_labels == "predicted"
    actual = plugin.compute_importances(model, strategy._criterion, None, dataset, "cpu", strategy.train_mb_size)
    _assert_close(actual, {n: s / len(y) for n, s in _definition(model, x, predicted).items()})
    true = per_sample_importances(model, strategy._criterion, dataset, "cpu", strategy.train_mb_size)
    right = predicted == y
    on_right = {n: s / len(y) for n, s in _definition(model, x[right], y[right]).items()}
    on_wrong_true = _definition(model, x[~right], y[~right])
    on_wrong_predicted = _definition(model, x[~right], predicted[~right])
    for name in on_right:
        assert torch.allclose(true[name].data, on_right[name] + on_wrong_true[name] / len(y), rtol=1e-4, atol=1e-9)
        assert torch.allclose(actual[name].data, on_right[name] + on_wrong_predicted[name] / len(y),
                              rtol=1e-4, atol=1e-9)
    # the misclassified samples' true-label gradients are the large ones
    total = sum(t.data.sum() for t in true.values()) / sum(a.data.sum() for a in actual.values())
    assert total > 1, total


def test_predicted_labels_need_the_per_sample_estimate(cli):
    code, out, err = cli("evaluate", "ewc", "--hp", "fisher_labels=predicted", "-q")
    assert code == 2 and "fisher_labels='predicted' needs fisher='per-sample'" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    online = get_registry().get("online-ewc").method
    hp = online.parse_hyperparameters({"fisher": "per-sample", "fisher_labels": "predicted"})
    assert hp.model_dump(mode="json")["fisher_labels"] == "predicted"
    assert "fisher_labels" not in online.parse_hyperparameters({"fisher": "per-sample"}).model_dump()
