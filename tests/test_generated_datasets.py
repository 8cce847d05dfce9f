"""CIFAR-100 and Tiny ImageNet loading, on small data generated here in the real formats.

There is no network and no copy of either dataset on test machines, so each test module run
writes a miniature of each dataset in its real on-disk layout, then runs clbench's loaders,
which go through torchvision's own code on those files:

* CIFAR-100: `cifar-100-python/{train,test,meta}` pickles. torchvision checks their md5s
  against class attributes; the tests compute the md5s of the generated files and patch
  those attributes, so torchvision's real integrity check and pickle loading run.
* Tiny ImageNet: `tiny-imagenet-200/train/<wnid>/images/<wnid>_<i>.JPEG` and the labelled
  val split `val/images/val_<k>.JPEG` + `val/val_annotations.txt`.

The pixels encode what each image is (CIFAR: the first pixel holds label, index and split;
Tiny ImageNet: a solid colour holds the class), so the tests can check that every sample of
every task really belongs to that task's classes, even after standardisation.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import random
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from clbench import datasets
from clbench.datasets import NORMALISATION, load_raw
from clbench.errors import ClbenchError
from clbench.isolation import stop_harness
from clbench.presets import get_protocol
from clbench.protocol import apply_overrides
from clbench.records import read_record
from clbench.tasks import load_tasks

CIFAR_CLASSES = 100
CIFAR_TRAIN_PER_CLASS = 3
CIFAR_TEST_PER_CLASS = 2
TINY_CLASSES = 200
TINY_TRAIN_PER_CLASS = 2
SMALL_NET = "model.hidden=[16]"  # the presets' 1000x1000 MLP is needlessly slow here


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------------------------
# CIFAR-100 generator
# --------------------------------------------------------------------------------------

def _cifar_split(rng: np.random.Generator, per_class: int, split: int):
    """Shuffled (N, 3, 32, 32) uint8 images and labels; pixel (0, 0) is (label, index, split)."""
    labels = np.repeat(np.arange(CIFAR_CLASSES), per_class)
    index_in_class = np.tile(np.arange(per_class), CIFAR_CLASSES)
    order = rng.permutation(len(labels))
    labels, index_in_class = labels[order], index_in_class[order]
    images = rng.integers(0, 256, size=(len(labels), 3, 32, 32), dtype=np.uint8)
    images[:, 0, 0, 0] = labels
    images[:, 1, 0, 0] = index_in_class
    images[:, 2, 0, 0] = split
    return images, labels


def _write_cifar_pickle(path: Path, images: np.ndarray, labels: np.ndarray, split: str) -> None:
    # The real files are Python 2 pickles; torchvision reads them with encoding="latin1",
    # which turns their keys into str, and then indexes entry["data"], entry["fine_labels"].
    # So the keys must unpickle as str: bytes keys (b"data") would fail in torchvision.
    entry = {
        "filenames": [f"generated_{split}_{i}.png" for i in range(len(labels))],
        "batch_label": f"{split}ing batch 1 of 1",
        "fine_labels": [int(v) for v in labels],
        "coarse_labels": [int(v) // 5 for v in labels],
        # one row per image: 1024 red, then 1024 green, then 1024 blue values, row-major
        "data": images.reshape(len(images), 3 * 32 * 32),
    }
    with open(path, "wb") as f:
        pickle.dump(entry, f, protocol=2)


@pytest.fixture(scope="module")
def cifar(tmp_path_factory):
    root = tmp_path_factory.mktemp("cifar-root")
    folder = root / "cifar-100-python"
    folder.mkdir()
    rng = np.random.default_rng(1234)
    train_x, train_y = _cifar_split(rng, CIFAR_TRAIN_PER_CLASS, split=0)
    test_x, test_y = _cifar_split(rng, CIFAR_TEST_PER_CLASS, split=1)
    # one hand-made image with structure along each axis, to catch transposed layouts
    h, w = np.meshgrid(np.arange(32), np.arange(32), indexing="ij")
    known = np.stack([h * 7 + 3, w * 5 + 1, (h * 32 + w) % 251]).astype(np.uint8)
    known[:, 0, 0] = train_x[0, :, 0, 0]  # keep its (label, index, split) pixel
    train_x[0] = known
    _write_cifar_pickle(folder / "train", train_x, train_y, "train")
    _write_cifar_pickle(folder / "test", test_x, test_y, "test")
    with open(folder / "meta", "wb") as f:
        pickle.dump({"fine_label_names": [f"fine_{i:03d}" for i in range(CIFAR_CLASSES)],
                     "coarse_label_names": [f"coarse_{i:02d}" for i in range(CIFAR_CLASSES // 5)]},
                    f, protocol=2)
    return SimpleNamespace(
        root=root, train_x=train_x, train_y=train_y, test_x=test_x, test_y=test_y, known=known,
        md5={name: _md5(folder / name) for name in ("train", "test", "meta")},
    )


@pytest.fixture
def cifar_checksums(cifar, monkeypatch):
    """Make torchvision's CIFAR100 expect the generated files' md5s (its check still runs)."""
    from torchvision.datasets import CIFAR100

    monkeypatch.setattr(CIFAR100, "train_list", [["train", cifar.md5["train"]]])
    monkeypatch.setattr(CIFAR100, "test_list", [["test", cifar.md5["test"]]])
    monkeypatch.setattr(CIFAR100, "meta", {**CIFAR100.meta, "md5": cifar.md5["meta"]})
    # the harness process reads the data: it gets the same expectation through the environment
    # (a harness process started before this test would not see it: start a fresh one)
    monkeypatch.setenv("CLBENCH_CIFAR100_MD5", json.dumps(cifar.md5))
    stop_harness()
    yield cifar
    stop_harness()


@pytest.fixture(autouse=True)
def fresh_caches(monkeypatch):
    """Each test reads from disk again; other test modules' cached datasets are restored after."""
    monkeypatch.setattr(datasets, "_CACHE", {})


# --------------------------------------------------------------------------------------
# Tiny ImageNet generator
# --------------------------------------------------------------------------------------

def _tiny_colour(class_index: int, shade: int) -> tuple[int, int, int]:
    """A solid colour that survives JPEG: red and green hold the class in steps of 16."""
    return 8 + 16 * (class_index // 16), 8 + 16 * (class_index % 16), shade


def _decode_tiny_class(red: torch.Tensor, green: torch.Tensor) -> torch.Tensor:
    return ((red - 8) / 16).round().long() * 16 + ((green - 8) / 16).round().long()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny-root")
    base = root / "tiny-imagenet-200"
    rng = random.Random(99)
    # arbitrary wnids, created in a shuffled order: labels must be their sorted positions
    wnids = [f"n{v:08d}" for v in rng.sample(range(10**8), TINY_CLASSES)]
    index = {wnid: i for i, wnid in enumerate(sorted(wnids))}
    base.mkdir()
    (base / "wnids.txt").write_text("".join(f"{w}\n" for w in wnids))
    (base / "words.txt").write_text("".join(f"{w}\tthing {w}\n" for w in wnids))

    grey = (min(wnids), 1)  # one greyscale training image (the real set has some), class 0
    for wnid in wnids:
        images = base / "train" / wnid / "images"
        images.mkdir(parents=True)
        boxes = []
        for i in range(TINY_TRAIN_PER_CLASS):
            name = f"{wnid}_{i}.JPEG"
            if (wnid, i) == grey:
                value = _tiny_colour(index[wnid], 0)[0]
                assert value == _tiny_colour(index[wnid], 0)[1], "grey needs red == green"
                Image.new("L", (64, 64), value).save(images / name, "JPEG")
            else:
                Image.new("RGB", (64, 64), _tiny_colour(index[wnid], 64 + 128 * i)).save(images / name, "JPEG")
            boxes.append(f"{name}\t0\t0\t63\t63\n")
        (base / "train" / wnid / f"{wnid}_boxes.txt").write_text("".join(boxes))

    (base / "val" / "images").mkdir(parents=True)
    val_wnids = wnids[:]
    rng.shuffle(val_wnids)  # val_<k> belongs to an unrelated class: only the annotations say which
    lines = []
    for k, wnid in enumerate(val_wnids):
        Image.new("RGB", (64, 64), _tiny_colour(index[wnid], 160)).save(base / "val" / "images" / f"val_{k}.JPEG", "JPEG")
        lines.append(f"val_{k}.JPEG\t{wnid}\t{k % 50}\t{k % 40}\t{k % 50 + 10}\t{k % 40 + 20}\n")
    (base / "val" / "val_annotations.txt").write_text("".join(lines))

    (base / "test" / "images").mkdir(parents=True)  # unlabelled in the real set: must be ignored
    Image.new("RGB", (64, 64), (1, 2, 3)).save(base / "test" / "images" / "test_0.JPEG", "JPEG")
    return SimpleNamespace(root=root, base=base, wnids=wnids, index=index, val_wnids=val_wnids, grey=grey)


# --------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------

def _first_pixel(x: torch.Tensor, name: str) -> torch.Tensor:
    """Pixel (0, 0) of standardised (C, H, W) images (or their flat rows), back in 0..255: shape (N, C)."""
    mean, std = NORMALISATION[name]
    x = x.reshape(len(x), -1)
    plane = x.shape[1] // len(mean)
    columns = x[:, [c * plane for c in range(len(mean))]]
    return (columns * torch.tensor(std) + torch.tensor(mean)) * 255


def _expected_standardised(images: np.ndarray, name: str) -> torch.Tensor:
    mean, std = NORMALISATION[name]
    x = torch.from_numpy(images).float() / 255
    x = (x - torch.tensor(mean).view(1, -1, 1, 1)) / torch.tensor(std).view(1, -1, 1, 1)
    return x.reshape(len(x), -1)


def _assert_partition(task_list, n_classes: int, per_task: int) -> None:
    class_sets = [set(t.classes) for t in task_list]
    assert all(len(s) == per_task for s in class_sets)
    assert set().union(*class_sets) == set(range(n_classes))  # disjoint and complete
    for t in task_list:
        assert set(t.train_y.tolist()) <= set(t.classes)
        assert set(t.test_y.tolist()) <= set(t.classes)


# --------------------------------------------------------------------------------------
# CIFAR-100
# --------------------------------------------------------------------------------------

def test_cifar100_loads_through_torchvision_with_pixels_and_labels_intact(cifar_checksums):
    cifar = cifar_checksums
    raw = load_raw("cifar100", cifar.root, download=False)
    assert raw.name == "cifar100"
    assert raw.train_x.dtype == torch.uint8 and raw.test_x.dtype == torch.uint8
    assert raw.train_y.dtype == torch.int64 and raw.test_y.dtype == torch.int64
    assert raw.train_x.shape == (CIFAR_CLASSES * CIFAR_TRAIN_PER_CLASS, 3, 32, 32)
    assert raw.test_x.shape == (CIFAR_CLASSES * CIFAR_TEST_PER_CLASS, 3, 32, 32)
    # the hand-made image, pixel by pixel: channel 0 varies down rows, channel 1 across columns
    first = raw.train_x[0]
    assert torch.equal(first, torch.from_numpy(cifar.known))
    assert first[0, 5, 0].item() == 5 * 7 + 3 and first[0, 0, 5].item() == 3
    assert first[1, 0, 9].item() == 9 * 5 + 1 and first[1, 9, 0].item() == 1
    # every image and every label exactly as written, in file order
    assert torch.equal(raw.train_x, torch.from_numpy(cifar.train_x))
    assert torch.equal(raw.test_x, torch.from_numpy(cifar.test_x))
    assert raw.train_y.tolist() == cifar.train_y.tolist()
    assert raw.test_y.tolist() == cifar.test_y.tolist()
    # a second call is served from the per-root cache
    assert load_raw("cifar100", cifar.root, download=False) is raw


@pytest.mark.parametrize("wrong", ["train", "meta"])
def test_cifar100_integrity_check_really_runs(cifar_checksums, monkeypatch, wrong):
    """A checksum mismatch (here: torchvision expecting other files) is a one-line ClbenchError."""
    from torchvision.datasets import CIFAR100

    monkeypatch.delenv("CLBENCH_CIFAR100_MD5")  # this process loads, with the wrong md5s below
    if wrong == "train":
        monkeypatch.setattr(CIFAR100, "train_list", [["train", "0" * 32]])
        expected = "Dataset not found or corrupted"
    else:
        monkeypatch.setattr(CIFAR100, "meta", {**CIFAR100.meta, "md5": "0" * 32})
        expected = "metadata file not found or corrupted"
    with pytest.raises(ClbenchError) as info:
        load_raw("cifar100", cifar_checksums.root, download=False)
    message = str(info.value)
    assert expected in message and str(cifar_checksums.root) in message and "\n" not in message
    assert not datasets._CACHE  # a failed load is not cached


def test_scifar100_tasks_are_disjoint_class_splits_of_standardised_images(cifar_checksums):
    cifar = cifar_checksums
    per_task_pool = 10 * CIFAR_TRAIN_PER_CLASS
    protocol = apply_overrides(get_protocol("scifar100-10"),
                               [f"benchmark.train_samples_per_task={per_task_pool - 10}"])
    benchmark = protocol.benchmark
    assert benchmark.input_size == 3 * 32 * 32
    task_list = load_tasks(benchmark, cifar.root, seed=0)

    assert len(task_list) == 10
    _assert_partition(task_list, CIFAR_CLASSES, 10)
    by_key = {(0, int(y), int(i)): img for img, y, i in zip(cifar.train_x, cifar.train_y, cifar.train_x[:, 1, 0, 0])}
    by_key |= {(1, int(y), int(i)): img for img, y, i in zip(cifar.test_x, cifar.test_y, cifar.test_x[:, 1, 0, 0])}
    for t, task in enumerate(task_list):
        assert task.classes == tuple(range(10 * t, 10 * t + 10))  # class_order "fixed"
        assert task.train_x.reshape(len(task.train_x), -1).shape == (per_task_pool - 10, benchmark.input_size)
        assert task.test_x.reshape(len(task.test_x), -1).shape == (10 * CIFAR_TEST_PER_CLASS, benchmark.input_size)  # whole test split
        assert task.train_x.dtype == torch.float32
        for x, y, split in ((task.train_x, task.train_y, 0), (task.test_x, task.test_y, 1)):
            pixel = _first_pixel(x, "cifar100").round().long()
            assert pixel[:, 0].tolist() == y.tolist()  # each sample is an image of its label
            assert (pixel[:, 2] == split).all()  # ... from the right split
            keys = [(split, int(label), int(i)) for label, i in zip(y, pixel[:, 1])]
            assert len(set(keys)) == len(keys)  # drawn without replacement
            expected = _expected_standardised(np.stack([by_key[k] for k in keys]), "cifar100")
            assert (x.reshape(len(x), -1) - expected.reshape(len(expected), -1)).abs().max() < 1e-5
        # the test split is complete: every test image of the task's classes, once
        assert sorted(task.test_y.tolist()) == sorted(c for c in task.classes for _ in range(CIFAR_TEST_PER_CLASS))

    # the training pool is a seeded draw: same seed, same pool; another seed, another one
    again = load_tasks(benchmark, cifar.root, seed=0)
    assert all(torch.equal(a.train_x, b.train_x) for a, b in zip(task_list, again))
    other = load_tasks(benchmark, cifar.root, seed=1)
    assert any(not torch.equal(a.train_x, b.train_x) for a, b in zip(task_list, other))


def test_scifar100_seeded_class_order_and_oversized_pool(cifar_checksums):
    cifar = cifar_checksums
    seeded = apply_overrides(get_protocol("scifar100-10"),
                             ["benchmark.train_samples_per_task=5", "benchmark.class_order=seeded"])
    task_list = load_tasks(seeded.benchmark, cifar.root, seed=3)
    _assert_partition(task_list, CIFAR_CLASSES, 10)
    assert [t.classes for t in task_list] != [tuple(range(10 * t, 10 * t + 10)) for t in range(10)]
    assert [t.classes for t in task_list] == [t.classes for t in load_tasks(seeded.benchmark, cifar.root, seed=3)]

    too_big = apply_overrides(get_protocol("scifar100-10"),
                              [f"benchmark.train_samples_per_task={10 * CIFAR_TRAIN_PER_CLASS + 1}"])
    with pytest.raises(ClbenchError, match="has only 30 training samples"):
        load_tasks(too_big.benchmark, cifar.root, seed=0)


# --------------------------------------------------------------------------------------
# Tiny ImageNet
# --------------------------------------------------------------------------------------

def test_tinyimagenet_loads_train_folders_and_annotated_val(tiny):
    raw = load_raw("tinyimagenet", tiny.root, download=False)
    assert raw.name == "tinyimagenet"
    assert raw.train_x.dtype == torch.uint8 and raw.train_y.dtype == torch.int64
    assert raw.train_x.shape == (TINY_CLASSES * TINY_TRAIN_PER_CLASS, 3, 64, 64)
    assert raw.test_x.shape == (TINY_CLASSES, 3, 64, 64)  # val (one per class) is the test set

    # train labels are ImageFolder's sorted-wnid indices, and match the image content
    assert sorted(set(raw.train_y.tolist())) == list(range(TINY_CLASSES))
    centre = raw.train_x[:, :, 32, 32].float()
    assert _decode_tiny_class(centre[:, 0], centre[:, 1]).tolist() == raw.train_y.tolist()
    # the greyscale JPEG comes back as three equal channels
    grey_label = tiny.index[tiny.grey[0]]
    grey_rows = [i for i, y in enumerate(raw.train_y.tolist()) if y == grey_label]
    grey = raw.train_x[grey_rows[tiny.grey[1]]]
    assert torch.equal(grey[0], grey[1]) and torch.equal(grey[1], grey[2])

    # test labels come from val_annotations.txt, in its line order (val_0, val_1, ...)
    assert raw.test_y.tolist() == [tiny.index[w] for w in tiny.val_wnids]
    centre = raw.test_x[:, :, 32, 32].float()
    assert _decode_tiny_class(centre[:, 0], centre[:, 1]).tolist() == raw.test_y.tolist()

    # pixels are the decoded JPEG itself, channel-first
    decoded = np.asarray(Image.open(tiny.base / "val" / "images" / "val_7.JPEG").convert("RGB"))
    assert torch.equal(raw.test_x[7], torch.from_numpy(decoded.copy()).permute(2, 0, 1))
    red, green, blue = _tiny_colour(tiny.index[tiny.val_wnids[7]], 160)
    assert (raw.test_x[7].float().mean(dim=(1, 2)) - torch.tensor([red, green, blue])).abs().max() < 4


def test_stinyimagenet_tasks_use_val_as_test(tiny):
    pool = 20 * TINY_TRAIN_PER_CLASS
    protocol = apply_overrides(get_protocol("stinyimagenet-10"), [f"benchmark.train_samples_per_task={pool}"])
    benchmark = protocol.benchmark
    assert benchmark.input_size == 3 * 64 * 64
    task_list = load_tasks(benchmark, tiny.root, seed=0)

    assert len(task_list) == 10
    _assert_partition(task_list, TINY_CLASSES, 20)
    for t, task in enumerate(task_list):
        assert task.classes == tuple(range(20 * t, 20 * t + 20))
        assert task.train_x.reshape(len(task.train_x), -1).shape == (pool, benchmark.input_size) and task.train_x.dtype == torch.float32
        assert task.test_x.reshape(len(task.test_x), -1).shape == (20, benchmark.input_size)
        assert sorted(task.train_y.tolist()) == sorted(c for c in task.classes for _ in range(TINY_TRAIN_PER_CLASS))
        assert sorted(task.test_y.tolist()) == list(task.classes)  # each class's one val image
        for x, y in ((task.train_x, task.train_y), (task.test_x, task.test_y)):
            pixel = _first_pixel(x, "tinyimagenet")
            assert _decode_tiny_class(pixel[:, 0], pixel[:, 1]).tolist() == y.tolist()
    val_of = {tiny.index[w]: k for k, w in enumerate(tiny.val_wnids)}
    decoded = np.asarray(Image.open(tiny.base / "val" / "images" / f"val_{val_of[0]}.JPEG").convert("RGB"))
    expected = _expected_standardised(decoded.transpose(2, 0, 1)[None].copy(), "tinyimagenet")
    row = task_list[0].test_y.tolist().index(0)
    assert (task_list[0].test_x[row:row + 1].reshape(1, -1) - expected.reshape(1, -1)).abs().max() < 1e-5


def test_tinyimagenet_missing_without_download(tmp_path):
    with pytest.raises(ClbenchError, match="Tiny ImageNet not found") as info:
        load_raw("tinyimagenet", tmp_path, download=False)
    assert str(tmp_path) in str(info.value)


# --------------------------------------------------------------------------------------
# end to end through the command line
# --------------------------------------------------------------------------------------

def _evaluate(cli, protocol: str, root: Path, out: Path, overrides: list[str]):
    args = ["evaluate", "naive", "--protocol", protocol]
    for text in overrides:
        args += ["--set", text]
    return cli(*args, "--data-root", root, "--out", out, "--seeds", "0", "-q")


@pytest.mark.parametrize("protocol, pool", [("scifar100-10", 10), ("stinyimagenet-10", 20)])
def test_evaluate_end_to_end_on_generated_data(cli, cifar_checksums, tiny, tmp_path, protocol, pool):
    root = cifar_checksums.root if protocol == "scifar100-10" else tiny.root
    overrides = [f"benchmark.train_samples_per_task={pool}", "training.epochs=1", SMALL_NET,
                 "evaluation.curve_points=2"]
    code, out, err = _evaluate(cli, protocol, root, tmp_path / "out", overrides)
    assert code == 0, err
    records = sorted((tmp_path / "out").glob("*.json"))
    assert len(records) == 1
    record = read_record(records[0])  # validates the schema, hash and matrix shapes
    expected = apply_overrides(get_protocol(protocol), overrides)
    assert record.protocol_name == protocol and record.protocol_hash == expected.hash
    assert record.protocol_overrides == overrides and record.seed == 0
    assert len(record.accuracy_matrix) == 10 and all(len(row) == 10 for row in record.accuracy_matrix)
    assert all(0.0 <= a <= 1.0 for row in record.accuracy_matrix for a in row)
    assert record.environment_matrix == [[pool if t == p else 0 for t in range(10)] for p in range(10)]
    assert record.samples_trained == [pool] * 10
    assert json.loads(records[0].read_text())["protocol"]["benchmark"]["train_samples_per_task"] == pool
    assert "ACC" in err and "ACC" in out


@pytest.mark.parametrize("protocol, dataset", [("scifar100-10", "cifar100"),
                                               ("stinyimagenet-10", "tinyimagenet")])
def test_evaluate_with_missing_dataset_fails_cleanly(cli, tmp_path, protocol, dataset):
    """An empty data root, and no way to download (no network): exit 2, one error line."""
    root = tmp_path / "empty-root"
    root.mkdir()
    out = tmp_path / "out"
    code, _, err = _evaluate(cli, protocol, root, out,
                             ["benchmark.train_samples_per_task=10", "training.epochs=1", SMALL_NET])
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("clbench: error: cannot load " + dataset)
    assert f"data root '{root}'" in lines[0]
    assert not out.exists()  # the data is checked before the output folder is even created


def test_evaluate_with_nonexistent_data_root(cli, tmp_path):
    root = tmp_path / "nowhere"
    code, _, err = _evaluate(cli, "scifar100-10", root, tmp_path / "out", [])
    assert code == 2 and err.strip() == f"clbench: error: data root '{root}' (from --data-root) does not exist"
    assert not root.exists()


def test_a_tinyimagenet_download_that_fails_its_md5_is_refused_before_unpacking(tmp_path, monkeypatch):
    """The archive comes over plain http: a tampered or truncated one is never unpacked."""
    import torchvision.datasets.utils as tv_utils

    from clbench.datasets import load_raw

    def fake_download(url, path, *args, **kwargs):  # the network, returning the wrong bytes
        Path(path).write_bytes(b"PK\x03\x04 not the real archive")

    monkeypatch.setattr(tv_utils, "_get_redirect_url", lambda url, max_hops: url)
    monkeypatch.setattr(tv_utils, "_urlretrieve", fake_download)
    with pytest.raises(ClbenchError, match=r"cannot load tinyimagenet .*\(File not found or corrupted"):
        load_raw("tinyimagenet", tmp_path)
    assert not (tmp_path / "tiny-imagenet-200").exists()
