"""Generated CIFAR-100 and Tiny ImageNet in torchvision's on-disk formats, for image tests.

Neither dataset can be downloaded on test machines, so tests write miniatures in the real
layouts (as tests/test_generated_datasets.py does) and clbench reads them through
torchvision's own loaders:

* CIFAR-100: `cifar-100-python/{train,test,meta}` pickles. torchvision checks their md5s
  against class attributes. The harness process reads the data (clbench.isolation), so
  the generated files' md5s must reach that process: `cifar_md5_patch` writes a
  `sitecustomize.py` that sets them on torchvision's `CIFAR100` in every Python started
  with it on PYTHONPATH, and `fresh_harness` restarts the harness process so it is.
* Tiny ImageNet: `tiny-imagenet-200/train/<wnid>/images/*.JPEG` and the labelled val split.

Images are noise around a colour that differs between any two classes, so a network
learns them in a few steps (crops and flips keep the colour).
"""

from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path

import numpy as np
from PIL import Image

SITECUSTOMIZE = '''
import json, os
_md5 = os.environ.get("CLBENCH_TEST_CIFAR100_MD5")
if _md5:
    from torchvision.datasets import CIFAR100
    _md5 = json.loads(_md5)
    CIFAR100.train_list = [["train", _md5["train"]]]
    CIFAR100.test_list = [["test", _md5["test"]]]
    CIFAR100.meta = {**CIFAR100.meta, "md5": _md5["meta"]}
'''


def _images(rng: np.random.Generator, labels: np.ndarray, size: int, classes: int) -> np.ndarray:
    """(N, size, size, 3) uint8: noise around a colour that tells the class apart.

    Red and green take 5 levels each and blue the rest (4 levels for 100 classes, 8 for
    200), so any two classes differ by at least 30 in one channel's mean.
    """
    red = 30 + 50 * (labels % 5)
    green = 30 + 50 * ((labels // 5) % 5)
    blue = 20 + (210 // max(1, (classes - 1) // 25)) * (labels // 25)
    colour = np.stack([red, green, blue], axis=1)
    noise = rng.integers(-20, 21, size=(len(labels), size, size, 3))
    return np.clip(colour[:, None, None, :] + noise, 0, 255).astype(np.uint8)


def write_cifar100(root: Path, train_per_class: int = 5, test_per_class: int = 2, seed: int = 0) -> dict:
    """A CIFAR-100 miniature under root/cifar-100-python; returns the files' md5s."""
    rng = np.random.default_rng(seed)
    folder = Path(root) / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    for split, per_class in (("train", train_per_class), ("test", test_per_class)):
        labels = rng.permutation(np.repeat(np.arange(100), per_class))
        images = _images(rng, labels, 32, 100)  # (N, H, W, C)
        entry = {
            "filenames": [f"generated_{split}_{i}.png" for i in range(len(labels))],
            "batch_label": f"{split}ing batch 1 of 1",
            "fine_labels": [int(v) for v in labels],
            "coarse_labels": [int(v) // 5 for v in labels],
            # one row per image: 1024 red, then 1024 green, then 1024 blue values
            "data": images.transpose(0, 3, 1, 2).reshape(len(labels), 3 * 32 * 32),
        }
        with open(folder / split, "wb") as f:
            pickle.dump(entry, f, protocol=2)
    with open(folder / "meta", "wb") as f:
        pickle.dump({"fine_label_names": [f"fine_{i:03d}" for i in range(100)],
                     "coarse_label_names": [f"coarse_{i:02d}" for i in range(20)]}, f, protocol=2)
    return {name: hashlib.md5((folder / name).read_bytes()).hexdigest() for name in ("train", "test", "meta")}


def write_tinyimagenet(root: Path, train_per_class: int = 2, seed: int = 0) -> None:
    """A Tiny ImageNet miniature under root/tiny-imagenet-200 (one val image per class)."""
    rng = np.random.default_rng(seed)
    base = Path(root) / "tiny-imagenet-200"
    wnids = [f"n{v:08d}" for v in range(1000, 1200)]
    (base / "val" / "images").mkdir(parents=True, exist_ok=True)
    (base / "wnids.txt").write_text("".join(f"{w}\n" for w in wnids))
    lines = []
    for label, wnid in enumerate(wnids):
        images = base / "train" / wnid / "images"
        images.mkdir(parents=True, exist_ok=True)
        pixels = _images(rng, np.full(train_per_class + 1, label), 64, 200)
        for i in range(train_per_class):
            Image.fromarray(pixels[i]).save(images / f"{wnid}_{i}.JPEG", "JPEG")
        Image.fromarray(pixels[-1]).save(base / "val" / "images" / f"val_{label}.JPEG", "JPEG")
        lines.append(f"val_{label}.JPEG\t{wnid}\t0\t0\t63\t63\n")
    (base / "val" / "val_annotations.txt").write_text("".join(lines))


def cifar_md5_patch(folder: Path, md5: dict, monkeypatch) -> None:
    """Make every Python started from now on (the harness process too) accept the generated
    CIFAR-100 files: torchvision's integrity check still runs, against their md5s."""
    import os

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(SITECUSTOMIZE)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(folder), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("CLBENCH_TEST_CIFAR100_MD5", json.dumps(md5))
    from torchvision.datasets import CIFAR100  # and in this process

    monkeypatch.setattr(CIFAR100, "train_list", [["train", md5["train"]]])
    monkeypatch.setattr(CIFAR100, "test_list", [["test", md5["test"]]])
    monkeypatch.setattr(CIFAR100, "meta", {**CIFAR100.meta, "md5": md5["meta"]})


def fresh_harness() -> None:
    """Stop this process's harness process, so the next run starts one with the current
    environment (and its own dataset cache)."""
    from clbench import isolation

    if isolation._CLIENT is not None:
        isolation._CLIENT.close()
        isolation._CLIENT = None
