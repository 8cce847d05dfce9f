"""Raw datasets, loaded once through torchvision's own loaders and kept as uint8 tensors.

Users get torchvision's real download code; machines without network point the data
root at a folder that already holds the files. The data root comes from `--data-root`,
else `CLBENCH_DATA_ROOT`, else a per-user cache folder.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from .errors import ClbenchError

DATA_ROOT_ENV = "CLBENCH_DATA_ROOT"

#: Per-channel (mean, std) used to standardise inputs, as commonly reported for each set.
NORMALISATION = {
    "mnist": ((0.1307,), (0.3081,)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "tinyimagenet": ((0.4802, 0.4481, 0.3975), (0.2302, 0.2265, 0.2262)),
}


def input_statistics(name: str, inputs: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel (mean, std) that `benchmark.inputs` subtracts and divides by after pixel
    / 255: the dataset's usual ones when standardised, (0, 1) on unit-interval inputs."""
    mean, std = NORMALISATION[name]
    if inputs == "unit-interval":
        return (0.0,) * len(mean), (1.0,) * len(std)
    if inputs != "standardised":
        raise ValueError(f"unknown input scaling {inputs!r}")
    return mean, std


TINY_IMAGENET_URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
#: md5 of that archive (248,100,043 bytes), as Avalanche's and other loaders check it: the
#: URL is plain http, so the download is verified before it is unpacked.
TINY_IMAGENET_MD5 = "90528d7ca1a48142e341f4ef8d21d0de"


def default_data_root() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(cache) / "clbench" / "data"


def resolve_data_root(option: str | os.PathLike | None = None) -> Path:
    """The data root: the option, else $CLBENCH_DATA_ROOT, else the user cache folder.

    A root that is named (option or variable) must be an existing folder: only the cache
    folder is created, by the first download, so a typo never starts a download into a
    new folder.
    """
    from .preflight import check_path

    if option:
        root, source = Path(option).expanduser(), "--data-root"
    elif os.environ.get(DATA_ROOT_ENV):
        root, source = Path(os.environ[DATA_ROOT_ENV]).expanduser(), f"${DATA_ROOT_ENV}"
    else:
        return default_data_root()
    check_path(root, f"data root (from {source})")
    try:
        root.stat()
    except OSError as exc:
        reason = "does not exist" if isinstance(exc, FileNotFoundError) else f"cannot be read ({exc.strerror})"
        raise ClbenchError(f"data root '{root}' (from {source}) {reason}") from None
    if not root.is_dir():
        raise ClbenchError(f"data root '{root}' (from {source}) is not a folder")
    return root.absolute()  # subprocesses (harness, workers) may run from another folder


@dataclass(frozen=True)
class RawDataset:
    """A whole dataset in memory: images as uint8 (N, C, H, W), labels as int64 (N,)."""

    name: str
    train_x: "torch.Tensor"  # noqa: F821
    train_y: "torch.Tensor"  # noqa: F821
    test_x: "torch.Tensor"  # noqa: F821
    test_y: "torch.Tensor"  # noqa: F821

    def scaled(self, images: "torch.Tensor", inputs: str) -> "torch.Tensor":  # noqa: F821
        """Images as flattened float32 rows, as a protocol's `benchmark.inputs` asks:
        pixel / 255, then (for "standardised") minus the mean, over the std, per channel."""
        import torch

        mean, std = input_statistics(self.name, inputs)
        shape = (1, len(mean), 1, 1)
        x = images.to(torch.float32).div_(255.0)
        x.sub_(torch.tensor(mean).view(shape)).div_(torch.tensor(std).view(shape))  # exact for (0, 1)
        return x.reshape(len(x), -1)

    def standardised(self, images: "torch.Tensor") -> "torch.Tensor":  # noqa: F821
        """Images as flattened float32 rows, standardised per channel."""
        return self.scaled(images, "standardised")

    @cached_property
    def standardised_splits(self) -> tuple["torch.Tensor", "torch.Tensor"]:  # noqa: F821
        """(train, test) as standardised flat float32 rows, computed once per dataset.

        For benchmarks that want whole splits: it keeps a float32 copy of both for the
        process (220 MB for MNIST), so clbench.tasks never uses it and standardises only
        the images a task holds.
        """
        return self.standardised(self.train_x), self.standardised(self.test_x)


_CACHE: dict[tuple[str, str], RawDataset] = {}


def load_raw(name: str, root: Path, download: bool = True) -> RawDataset:
    """Load `name` ('mnist', 'cifar100' or 'tinyimagenet') from `root`, once per process."""
    key = (name, str(Path(root).resolve()))
    if key not in _CACHE:
        loader = {"mnist": _load_mnist, "cifar100": _load_cifar100,
                  "tinyimagenet": _load_tinyimagenet}[name]
        try:
            _CACHE[key] = loader(Path(root), download)
        except ClbenchError:
            raise
        except Exception as exc:  # torchvision raises RuntimeError, URLError, OSError, ...
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ClbenchError(
                f"cannot load {name} from data root '{root}' ({reason}); download it there "
                f"with network access, or point --data-root or ${DATA_ROOT_ENV} at a "
                f"torchvision dataset root that holds it"
            ) from None
    return _CACHE[key]


def _load_mnist(root: Path, download: bool) -> RawDataset:
    from torchvision.datasets import MNIST

    train = MNIST(str(root), train=True, download=download)
    test = MNIST(str(root), train=False, download=download)
    return RawDataset(
        "mnist", train.data.unsqueeze(1), train.targets.long(),
        test.data.unsqueeze(1), test.targets.long(),
    )


def _load_cifar100(root: Path, download: bool) -> RawDataset:
    import torch
    from torchvision.datasets import CIFAR100

    def as_tensors(split):
        images = torch.from_numpy(split.data).permute(0, 3, 1, 2).contiguous()
        return images, torch.tensor(split.targets, dtype=torch.long)

    expected = os.environ.get("CLBENCH_CIFAR100_MD5")
    if expected:  # tests on generated files: torchvision's md5 check still runs, against these
        md5 = json.loads(expected)
        CIFAR100.train_list, CIFAR100.test_list = [["train", md5["train"]]], [["test", md5["test"]]]
        CIFAR100.meta = {**CIFAR100.meta, "md5": md5["meta"]}
    train = CIFAR100(str(root), train=True, download=download)
    test = CIFAR100(str(root), train=False, download=download)
    return RawDataset("cifar100", *as_tensors(train), *as_tensors(test))


def _load_tinyimagenet(root: Path, download: bool) -> RawDataset:
    """Tiny ImageNet (200 classes, 64x64): train folders and the labelled val split as test.

    torchvision has no class for it, so this uses its generic pieces: the archive
    download, `ImageFolder` for the training folders and its PIL loader for val.
    """
    import torch
    from torchvision.datasets import ImageFolder
    from torchvision.datasets.folder import default_loader
    from torchvision.datasets.utils import download_and_extract_archive
    from torchvision.transforms.functional import pil_to_tensor

    base = root / "tiny-imagenet-200"
    if not base.is_dir():
        if not download:
            raise ClbenchError(f"Tiny ImageNet not found under '{base}'")
        download_and_extract_archive(TINY_IMAGENET_URL, str(root), md5=TINY_IMAGENET_MD5)
    train = ImageFolder(str(base / "train"))
    class_index = train.class_to_idx

    def stack(paths_and_labels):
        images = [pil_to_tensor(default_loader(path)) for path, _ in paths_and_labels]
        labels = [label for _, label in paths_and_labels]
        return torch.stack(images), torch.tensor(labels, dtype=torch.long)

    val = []
    annotations = base / "val" / "val_annotations.txt"
    for line in annotations.read_text().splitlines():
        file_name, wnid = line.split("\t")[:2]
        val.append((str(base / "val" / "images" / file_name), class_index[wnid]))
    return RawDataset("tinyimagenet", *stack(train.samples), *stack(val))
