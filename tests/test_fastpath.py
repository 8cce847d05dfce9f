"""The fast path changes speed only: same sample order, same numbers as Avalanche's loader."""

import torch
from torch.utils.data import DataLoader, TensorDataset

from clbench.fastpath import TensorBatchLoader, TensorFastPath
from clbench.plugins import get_registry
from clbench.presets import get_protocol
from clbench.protocol import apply_overrides
from clbench.runner import RunRequest, run


def _batches(loader, epochs=2):
    return [[part.clone() for part in batch] for _ in range(epochs) for batch in loader]


def test_batches_match_torch_dataloader_exactly():
    x, y = torch.randn(103, 5), torch.randint(0, 10, (103,))
    t = torch.zeros_like(y)
    for drop_last in (False, True):
        torch.manual_seed(11)
        stock = _batches(DataLoader(TensorDataset(x, y, t), batch_size=8, shuffle=True, drop_last=drop_last))
        after_stock = torch.rand(1)
        torch.manual_seed(11)
        fast = _batches(TensorBatchLoader(x, y, t, batch_size=8, shuffle=True, drop_last=drop_last))
        assert torch.rand(1) == after_stock  # the global RNG advanced by the same draws
        assert len(stock) == len(fast)
        for a, b in zip(stock, fast):
            assert all(torch.equal(p, q) and p.dtype == q.dtype for p, q in zip(a, b))


def test_each_epoch_visits_every_sample_once():
    x = torch.arange(50).float().unsqueeze(1)
    loader = TensorBatchLoader(x, torch.zeros(50, dtype=torch.long), torch.zeros(50, dtype=torch.long), 16)
    seen = torch.cat([b[0] for b in loader]).squeeze(1)
    assert sorted(seen.tolist()) == list(range(50)) and len(loader) == 4


def test_runs_are_identical_with_and_without_the_fast_path(data_root):
    protocol = apply_overrides(get_protocol("smoke"), ["training.epochs=1"])
    naive = get_registry().get("naive")
    hp = naive.method.parse_hyperparameters({})
    stock = run(RunRequest(protocol, naive, hp, 0, data_root, fast_path=False))
    fast_plugin = TensorFastPath("cpu")  # the same plugin the runner adds, here to inspect it
    fast = run(RunRequest(protocol, naive, hp, 0, data_root, fast_path=False, observers=[fast_plugin]))
    assert fast_plugin.used == [True, True, True]
    assert fast.accuracy_matrix == stock.accuracy_matrix
    assert fast.learning_curves == stock.learning_curves
