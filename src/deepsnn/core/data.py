"""The data sets both pipelines train and evaluate on: what each one is (classes, image shape,
pixel statistics) and the prepared file the `download` stage writes (uint8 tensors, one file a
set). Fetching and verifying raw files is `deepsnn.download`'s job, which only that stage runs."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import torch

from deepsnn.core.errors import UserError
from deepsnn.core.io import atomic_save


class DataError(UserError, RuntimeError):
    """Raw data is missing, corrupted or has the wrong content."""


@dataclass(frozen=True)
class IdxFamily:
    """MNIST-style data set: four gzip'd idx files under <Folder>/raw/."""

    folder: str
    classes: tuple[str, ...]
    torchvision_name: str
    mean: tuple[float, ...]  # per-channel pixel mean and std of the training set, in [0, 1]
    std: tuple[float, ...]
    flips: bool = False  # whether a mirrored image keeps its class (training augmentation)


@dataclass(frozen=True)
class CifarFamily:
    """CIFAR-10 python pickles under cifar-10-batches-py/."""

    folder: str
    classes: tuple[str, ...]
    torchvision_name: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    flips: bool = True


DIGITS = tuple(str(d) for d in range(10))
IMAGE_SHAPES = {"mnist": (1, 28), "fashion_mnist": (1, 28), "cifar10": (3, 32)}  # (channels, height = width)
DATASETS: dict[str, IdxFamily | CifarFamily] = {
    "mnist": IdxFamily("MNIST", DIGITS, "MNIST", mean=(0.1307,), std=(0.3081,)),
    "fashion_mnist": IdxFamily(
        "FashionMNIST",
        ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
        "FashionMNIST", mean=(0.2860,), std=(0.3530,),
    ),
    "cifar10": CifarFamily(
        "cifar-10-batches-py",
        ("airplane", "automobile", "bird", "cat", "deer",
         "dog", "frog", "horse", "ship", "truck"),
        "CIFAR10", mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616),
    ),
}

@dataclass
class ImageDataset:
    """A whole data set as uint8 NCHW images and int64 labels (small enough to hold in memory)."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    classes: list[str]
    name: str  # the key in DATASETS, e.g. "cifar10"


def save_prepared(dataset: ImageDataset, path: Path) -> None:
    atomic_save(dataset.__dict__, path)


def load_prepared(path: str | Path, expected: str | None = None) -> ImageDataset:
    """The data set written by the download stage at `path` (well under a second); with `expected`,
    it must be that data set (a model is only evaluated on the data set it was trained on)."""
    path = Path(path)
    redo = (f"It is written by the DVC stage `download`: run `dvc repro download`, or `dvc checkout {path}` "
            f"to restore the committed run's copy.")
    if not path.is_file():
        raise DataError(f"{path}: data file not found. {redo}")
    try:
        stored = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a truncated zip, random bytes, a pickle of other objects
        raise DataError(f"{path}: not a readable data file (torch.load raised {type(err).__name__}); it is "
                        f"truncated or corrupted. {redo}") from None
    names = [f.name for f in fields(ImageDataset)]
    if not isinstance(stored, dict) or sorted(stored) != sorted(names):
        raise DataError(f"{path}: not a data file of the download stage (it should hold {', '.join(names)}). {redo}")
    dataset = ImageDataset(**stored)
    if expected is not None and dataset.name != expected:
        raise DataError(f"{path}: holds the data set {dataset.name}, and this stage expects {expected} (the data set "
                        f"the model was trained on). Pass --data data/{expected}.pt.")
    return dataset
