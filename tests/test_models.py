"""The networks protocols name (clbench.models): sizes, shapes, heads, and protocol rules.

- every architecture in every scenario has exactly the parameters the catalog computes
  without torch (what `clbench protocols` prints and validation bounds);
- the features/classifier split holds (LwF, iCaRL and DER call the parts);
- the multi-head network is an Avalanche MultiTaskModule: each sample goes through its
  task's head, a mixed minibatch gives what per-task minibatches give, and a head no
  sample used gets no gradient (optimizers skip it, so a new task never moves old heads);
- images stay C x H x W; only the MLP flattens, and it computes exactly what it did on rows.
"""

from __future__ import annotations

import pytest
import torch

from clbench.models import ARCHITECTURES, MLP, build_model, count_parameters
from clbench.presets import get_protocol
from clbench.protocol import apply_overrides

SCENARIO_PRESETS = ["smnist-5", "smnist-5-task", "smnist-5-domain", "scifar100-10-class",
                    "scifar100-20-task", "stinyimagenet-10-task"]

#: Published sizes: reduced ResNet-18 ~1.1M (GEM), ResNet-18 11.2M, ResNet-32 0.46M (100 classes).
KNOWN_SIZES = {"resnet18-reduced": 1_109_240, "resnet18": 11_220_132, "resnet32": 470_004}


def _protocol(preset: str, architecture: str):
    return apply_overrides(get_protocol(preset), [f"model.architecture={architecture}"])


def _forward(model, protocol, x, tasks=None):
    if protocol.benchmark.n_heads == 1:
        return model(x)
    labels = tasks if tasks is not None else torch.arange(len(x)) % protocol.benchmark.n_tasks
    return model(x, labels)


@pytest.mark.parametrize("preset", SCENARIO_PRESETS)
@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES))
def test_sizes_shapes_and_the_features_classifier_split(preset, architecture):
    protocol = _protocol(preset, architecture)
    torch.manual_seed(0)
    model = build_model(protocol.model, protocol.benchmark).eval()
    assert count_parameters(model) == protocol.parameters == protocol.network_size.total
    size = protocol.network_size
    assert count_parameters(model.features) == size.features
    assert count_parameters(model.classifier) == size.heads
    x = torch.randn(6, *protocol.benchmark.input_shape)
    out = _forward(model, protocol, x)
    assert out.shape == (6, protocol.benchmark.output_classes)
    features = model.features(x.flatten(1) if architecture == "mlp" else x)
    assert features.shape == (6, size.feature_dim)
    if protocol.benchmark.n_heads == 1:
        assert torch.allclose(model.classifier(features), out, atol=1e-6)


def test_published_backbone_sizes():
    for architecture, expected in KNOWN_SIZES.items():
        assert _protocol("scifar100-10-class", architecture).parameters == expected


def test_same_seed_same_network_in_every_process():
    """The harness process builds its own copy from the protocol: the state_dict must fit it."""
    protocol = get_protocol("scifar100-10-task")
    torch.manual_seed(5)
    a = build_model(protocol.model, protocol.benchmark)
    torch.manual_seed(5)
    b = build_model(protocol.model, protocol.benchmark)
    assert type(a) is type(b)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    b.load_state_dict(a.state_dict(), strict=True)


def test_the_multi_head_network_routes_each_sample_to_its_task_head():
    from avalanche.models import MultiTaskModule, avalanche_forward

    protocol = get_protocol("smnist-5-task")
    torch.manual_seed(0)
    model = build_model(protocol.model, protocol.benchmark).eval()
    assert isinstance(model, MultiTaskModule) and len(model.classifier.heads) == 5
    x = torch.randn(10, 1, 28, 28)
    tasks = torch.tensor([0, 3, 3, 1, 4, 0, 2, 2, 1, 4])
    mixed = avalanche_forward(model, x, tasks)
    for t in range(5):
        alone = model(x[tasks == t], torch.full((int((tasks == t).sum()),), t))
        assert torch.allclose(mixed[tasks == t], alone, atol=1e-6)
        assert torch.allclose(alone, model.forward_single_task(x[tasks == t], t), atol=1e-6)
    every = model(x, None)  # LwF's call: every head's output
    assert sorted(every) == list(range(5))
    assert torch.allclose(every[3][tasks == 3], mixed[tasks == 3], atol=1e-6)
    # an int task label is one head for the whole batch
    assert torch.allclose(model(x, 2), every[2], atol=1e-6)


def test_heads_without_samples_get_no_gradient_and_stay_put():
    protocol = get_protocol("smnist-5-task")
    torch.manual_seed(0)
    model = build_model(protocol.model, protocol.benchmark)
    before = [h.weight.detach().clone() for h in model.classifier.heads]
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    for _ in range(3):  # momentum would move a head with a zero (rather than no) gradient
        optimizer.zero_grad()
        out = model(torch.randn(8, 1, 28, 28), torch.tensor([1, 1, 3, 3, 1, 3, 1, 3]))
        torch.nn.functional.cross_entropy(out, torch.zeros(8, dtype=torch.long)).backward()
        assert all(model.classifier.heads[t].weight.grad is None for t in (0, 2, 4))
        optimizer.step()
    for t, weight in enumerate(before):
        moved = not torch.equal(weight, model.classifier.heads[t].weight)
        assert moved == (t in (1, 3)), t


def test_batch_norm_sees_the_whole_minibatch_in_a_mixed_batch():
    """The trunk runs once over all samples (not once per task), as a single head would."""
    protocol = apply_overrides(get_protocol("smnist-5-task"), ["model.architecture=resnet18-reduced"])
    torch.manual_seed(0)
    model = build_model(protocol.model, protocol.benchmark).train()
    calls = []
    model.features.register_forward_hook(lambda module, args, out: calls.append(len(args[0])))
    model(torch.randn(6, 1, 28, 28), torch.tensor([0, 1, 2, 0, 1, 2]))
    assert calls == [6]


def test_the_mlp_flattens_images_and_computes_what_it_did_on_rows():
    protocol = get_protocol("smnist-5")
    torch.manual_seed(0)
    model = build_model(protocol.model, protocol.benchmark)
    torch.manual_seed(0)
    legacy = build_model(protocol.model, 784, 10)  # the signature before image shapes
    assert type(model) is type(legacy) is MLP
    x = torch.randn(4, 1, 28, 28)
    assert torch.equal(model(x), legacy(x.reshape(4, 784)))
    with pytest.raises(ValueError, match="MLPs only"):
        build_model(_protocol("smnist-5", "resnet32").model, 784, 10)


def test_resnets_keep_images_as_images():
    protocol = _protocol("scifar100-10-class", "resnet32")
    model = build_model(protocol.model, protocol.benchmark)
    with pytest.raises(RuntimeError):
        model(torch.randn(2, 3 * 32 * 32))  # flat rows are not images


@pytest.mark.parametrize("overrides, message", [
    (["model.architecture=resnet18", "model.hidden=[10]"], "only apply to the mlp architecture"),
    (["model.architecture=vgg"], "model.architecture"),
    (["benchmark.scenario=domain"], "split-cifar100 has no domain-incremental scenario"),
    (["benchmark.scenario=taskish"], "benchmark.scenario"),
])
def test_protocol_refuses_architectures_and_scenarios_that_do_not_exist(cli, overrides, message):
    args = ["protocols", "show", "scifar100-10-class"]
    for text in overrides:
        args += ["--set", text]
    code, out, err = cli(*args)
    assert code == 2 and out == "" and message in err and len(err.strip().splitlines()) == 1


def test_permuted_mnist_has_no_class_incremental_scenario(cli):
    code, _, err = cli("protocols", "show", "smoke", "--set", "benchmark.scenario=class")
    assert code == 2 and "permuted-mnist has no class-incremental scenario" in err


def test_protocols_show_prints_the_network_size(cli):
    code, out, _ = cli("protocols", "show", "scifar100-10-task", "--set", "model.architecture=resnet18-reduced")
    assert code == 0
    assert "resnet18-reduced on 3x32x32 inputs, 1,109,240 parameters" in out
    assert "in 10 heads of 10 outputs" in out
    code, out, _ = cli("protocols", "show", "smnist-5-task", "--json")
    import json

    network = json.loads(out)["network"]
    # 784*400+400 + 400*400+400 in the trunk; 5 heads of 400*2+2
    assert network == {"parameters": 478410, "feature_parameters": 474400, "head_parameters": 4010,
                       "heads": 5, "input_shape": [1, 28, 28]}
    code, out, _ = cli("protocols")
    assert "resnet18" in out and "11220132" in out
