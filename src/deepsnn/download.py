"""What the `download` stage runs: fetch each data set (a local mirror or the official mirrors),
verify its content, and turn it into the prepared tensors of `deepsnn.core.data`.

Raw files are read in torchvision's on-disk layout (`MNIST/raw/*.gz`, `FashionMNIST/raw/*.gz`,
`cifar-10-batches-py/`), whether torchvision just downloaded them or a local mirror holds them.
Content is verified by sha256 of the decoded data, so a mirror whose files differ byte-wise
from the originals (re-pickled CIFAR-10) is accepted and a corrupted one is not.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import torch

from deepsnn.core.data import DATASETS, DataError, IdxFamily, ImageDataset

MIRROR_ENV = "DEEPSNN_DATA_MIRROR"  # folders (os.pathsep-separated) in torchvision's layout
CHECKSUMS_ENV = "DEEPSNN_CONTENT_SHA256"  # JSON file replacing the built-in content table

IDX_FILES = {  # split -> (images, labels), decompressed names
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
CIFAR_BATCHES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}

# Content sha256s. MNIST and Fashion-MNIST: of the decompressed idx files (so re-compressed
# archives with the right content pass); CIFAR-10: of the decoded uint8 arrays (data rows
# N x 3072 as R, G, B planes; labels as uint8), rows in file order. From the data provider's
# README (../shared/datasets/README.md).
CONTENT_SHA256: dict[str, dict[str, str]] = {
    "mnist": {
        "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    },
    "fashion_mnist": {
        "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
    "cifar10": {
        "train_data": "9d5c2eddadb0deff02c14c350c0385aab7b1d5ff1edfeb4997c8dc8644960111",
        "train_labels": "2b7cd2f24487317614016b72ffd53071c3062f592f0eb300c18a770d41ae1253",
        "test_data": "177777c33ba79825320efa646ad04a94bdc3c80e4ebe3bd21724f8cdfd4b9d56",
        "test_labels": "cec8a24a1e92aa2ecaa0bbd3dbfa86bf6cd8759fbd209a832824c8cf0afca9d5",
    },
}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def expected_checksums(name: str) -> dict[str, str]:
    """The content table for `name`: the built-in one, or the file named by $DEEPSNN_CONTENT_SHA256."""
    override = os.environ.get(CHECKSUMS_ENV)
    table = CONTENT_SHA256
    if override:
        try:
            table = json.loads(Path(override).read_text())
        except (OSError, ValueError) as err:
            raise DataError(f"{CHECKSUMS_ENV}={override}: not a readable JSON content table ({err})") from None
    if name not in table:
        where = f"the table in {override} ({CHECKSUMS_ENV})" if override else "the built-in content table"
        raise DataError(f"{name}: {where} has no entry for it, so its content cannot be verified")
    return table[name]


def _check(name: str, key: str, got: str, expected: dict[str, str], source: Path) -> None:
    if got != expected.get(key):
        raise DataError(
            f"{name}: content check failed for {key} in {source} (sha256 {got}, expected "
            f"{expected.get(key)}). The file is corrupted, truncated or not the real data set: "
            "delete it and download or rebuild it."
        )


def _read_gz(path: Path) -> bytes:
    try:
        with gzip.open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise DataError(f"missing file {path}") from None
    except (OSError, EOFError) as err:  # gzip raises these on corrupted or truncated archives
        raise DataError(f"{path}: not a readable gzip archive ({err}); it is corrupted or truncated") from None


def decode_idx(raw: bytes, source: Path) -> np.ndarray:
    """Decode an idx file (magic 0x0000080D: unsigned bytes, D dimensions)."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"{source}: not an idx file of unsigned bytes")
    ndim = raw[3]
    header = 4 + 4 * ndim
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    if len(raw) != header + int(np.prod(shape)):
        raise DataError(f"{source}: size {len(raw)} bytes does not match its header shape {shape}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def read_idx_family(name: str, raw_dir: Path, expected: dict[str, str]) -> ImageDataset:
    arrays = {}
    for split, (images_file, labels_file) in IDX_FILES.items():
        for stem in (images_file, labels_file):
            path = raw_dir / f"{stem}.gz"
            raw = _read_gz(path)
            _check(name, stem, sha256(raw), expected, path)
            arrays[stem] = decode_idx(raw, path)
    out = []
    for images_file, labels_file in IDX_FILES.values():
        images, labels = arrays[images_file], arrays[labels_file]
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise DataError(f"{name}: images {images.shape} and labels {labels.shape} do not match")
        out += [torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.astype(np.int64))]
    return ImageDataset(*out, classes=list(DATASETS[name].classes), name=name)


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """CIFAR batches are pickles; refuse anything but the numpy objects they contain."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("_codecs", "encode"),  # how Python 3 writes bytes into a protocol-2 pickle
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with open(path, "rb") as f:
            batch = _NumpyOnlyUnpickler(f, encoding="bytes").load()
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[b"labels"], dtype=np.uint8)
    except FileNotFoundError:
        raise DataError(f"missing file {path}") from None
    except Exception as err:  # any decoding failure means a damaged file
        raise DataError(f"{path}: not a readable CIFAR batch ({type(err).__name__}: {err})") from None
    if data.ndim != 2 or data.shape[1] != 3072 or len(data) != len(labels):
        raise DataError(f"{path}: data {data.shape} / labels {labels.shape} are not CIFAR-shaped")
    return data, labels


def read_cifar_family(name: str, batches_dir: Path, expected: dict[str, str]) -> ImageDataset:
    out = []
    for split, files in CIFAR_BATCHES.items():
        parts = [_read_cifar_batch(batches_dir / f) for f in files]
        data = np.concatenate([d for d, _ in parts])
        labels = np.concatenate([lab for _, lab in parts])
        _check(name, f"{split}_data", sha256(data.tobytes()), expected, batches_dir)
        _check(name, f"{split}_labels", sha256(labels.tobytes()), expected, batches_dir)
        out += [torch.from_numpy(data.reshape(-1, 3, 32, 32).copy()), torch.from_numpy(labels.astype(np.int64))]
    return ImageDataset(*out, classes=list(DATASETS[name].classes), name=name)


def read_raw(name: str, root: Path) -> ImageDataset:
    """Read data set `name` from `root` (torchvision layout) and verify its content."""
    spec = DATASETS[name]
    expected = expected_checksums(name)
    if isinstance(spec, IdxFamily):
        return read_idx_family(name, root / spec.folder / "raw", expected)
    return read_cifar_family(name, root / spec.folder, expected)


def mirror_dirs() -> list[Path]:
    value = os.environ.get(MIRROR_ENV, "")
    return [Path(p).expanduser() for p in value.split(os.pathsep) if p]


def find_in_mirrors(name: str, mirrors: list[Path]) -> Path | None:
    """The first mirror folder holding data set `name` in torchvision's layout. A mirror folder that
    does not exist is an error (a typo in the variable should not fall through to a download)."""
    folder = DATASETS[name].folder
    for root in mirrors:
        if not root.is_dir():
            raise DataError(f"{MIRROR_ENV}: the folder {root} does not exist (searched, in order: "
                            f"{', '.join(map(str, mirrors))}). Fix the path or remove it from the variable.")
        if (root / folder).is_dir():
            return root
    return None


def download(name: str, cache: Path, mirrors: list[Path]) -> Path:
    """The real download from the official mirrors, through torchvision (checks archive md5s).
    A failed download leaves no `cache` folder behind that it created."""
    import torchvision

    cls = getattr(torchvision.datasets, DATASETS[name].torchvision_name)
    created = not cache.exists()
    try:
        for train in (True, False):
            cls(root=str(cache), train=train, download=True)
    except Exception as err:  # URLError, HTTPError, RuntimeError('File not found or corrupted')
        if created:
            shutil.rmtree(cache, ignore_errors=True)
        searched = (f"{MIRROR_ENV} is set, but none of its folders holds {DATASETS[name].folder}/: "
                    + "; ".join(f"{root} has no {DATASETS[name].folder}/" for root in mirrors)
                    if mirrors else f"{MIRROR_ENV} is not set")
        raise DataError(
            f"{name}: could not download from the official mirrors ({type(err).__name__}: {err}). "
            f"{searched}. Without internet, point {MIRROR_ENV} at a folder in torchvision's layout "
            f"holding {DATASETS[name].folder}/ (see README, 'Offline data')."
        ) from None
    return cache


def fetch(name: str, cache: Path, mirrors: list[Path] | None = None) -> tuple[ImageDataset, str]:
    """Get data set `name` from a local mirror if one holds it, else download it; verified."""
    mirrors = mirror_dirs() if mirrors is None else mirrors
    root = find_in_mirrors(name, mirrors)
    source = f"mirror {root}" if root else "official download"
    if root is None:
        root = download(name, cache, mirrors)
    return read_raw(name, root), source


