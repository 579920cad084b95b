"""Data: exact decoding of the real formats, content verification, atomic output, clear errors."""

from __future__ import annotations

import gzip
import json
import os
import pickle
import stat
import urllib.error

import pytest
import torch
import torchvision

from deepsnn import download as data_mod
from deepsnn.core.data import DATASETS, DataError, load_prepared, save_prepared
from deepsnn.download import fetch, read_raw

from conftest import run_download, write_params


def test_idx_sets_decode_exactly(mirror):
    for name, folder in (("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")):
        arrays = mirror["sets"][name]["arrays"]
        ds = read_raw(name, mirror["root"])
        assert torch.equal(ds.train_images[:, 0], torch.from_numpy(arrays["train-images-idx3-ubyte"]))
        assert torch.equal(ds.train_labels, torch.from_numpy(arrays["train-labels-idx1-ubyte"]).long())
        assert torch.equal(ds.test_images[:, 0], torch.from_numpy(arrays["t10k-images-idx3-ubyte"]))
        assert ds.train_images.dtype == torch.uint8 and ds.train_images.shape[1:] == (1, 28, 28)
        assert len(ds.classes) == 10


def test_cifar_decodes_exactly_as_rgb_planes(mirror):
    arrays = mirror["sets"]["cifar10"]["arrays"]
    ds = read_raw("cifar10", mirror["root"])
    assert ds.train_images.shape == (20, 3, 32, 32) and ds.test_images.shape == (6, 3, 32, 32)
    # row layout: 1024 red, then 1024 green, then 1024 blue values, each row-major 32x32
    first = arrays["train_data"][0]
    assert torch.equal(ds.train_images[0, 1], torch.from_numpy(first[1024:2048].reshape(32, 32)))
    assert torch.equal(ds.test_labels, torch.from_numpy(arrays["test_labels"]).long())


def test_prepared_file_round_trips(mirror, tmp_path):
    ds, source = fetch("mnist", tmp_path / "cache")
    assert "mirror" in source
    save_prepared(ds, tmp_path / "mnist.pt")
    back = load_prepared(tmp_path / "mnist.pt")
    assert torch.equal(back.train_images, ds.train_images) and back.classes == ds.classes


def _corrupt(path, how):
    raw = path.read_bytes()
    if how == "truncated":
        path.write_bytes(raw[: len(raw) // 2])
    elif how == "garbage":
        path.write_bytes(b"not a gzip file at all")
    elif how == "wrong_content":  # a valid archive whose pixels differ from the real ones
        content = bytearray(gzip.decompress(raw))
        content[-1] ^= 0xFF
        path.write_bytes(gzip.compress(bytes(content)))


@pytest.mark.parametrize("how", ["truncated", "garbage", "wrong_content"])
def test_bad_mirror_file_fails_clearly_and_writes_nothing(mirror, tmp_path, capsys, how):
    _corrupt(mirror["root"] / "MNIST" / "raw" / "t10k-images-idx3-ubyte.gz", how)
    params = write_params(tmp_path / "params.yaml")
    out_dir = tmp_path / "data"
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte") as err:
        run_download(out_dir)
    assert ("content check failed" in str(err.value)) == (how == "wrong_content")
    assert not (out_dir / "mnist.pt").exists()
    assert not list(out_dir.glob(".*tmp")), "no temporary leftovers"


def test_cifar_wrong_content_is_rejected(mirror):
    path = mirror["root"] / "cifar-10-batches-py" / "data_batch_3"
    with open(path, "rb") as f:
        batch = pickle.load(f, encoding="bytes")
    batch[b"data"][0, 0] ^= 1
    with open(path, "wb") as f:
        pickle.dump(batch, f, protocol=2)
    with pytest.raises(DataError, match="content check failed for train_data"):
        read_raw("cifar10", mirror["root"])


def test_cifar_pickle_may_not_run_code(mirror):
    class Evil:
        def __reduce__(self):
            return (print, ("owned",))

    with open(mirror["root"] / "cifar-10-batches-py" / "test_batch", "wb") as f:
        pickle.dump({b"data": Evil()}, f, protocol=2)
    with pytest.raises(DataError, match=r"refusing to load (__builtin__|builtins)\.print"):
        read_raw("cifar10", mirror["root"])


def test_idx_header_must_match_size():
    raw = bytes([0, 0, 8, 1]) + (5).to_bytes(4, "big") + b"\x00" * 4
    with pytest.raises(DataError, match="does not match its header"):
        data_mod.decode_idx(raw, "x")


def test_offline_without_mirror_gives_one_clear_error(monkeypatch, tmp_path):
    monkeypatch.delenv("DEEPSNN_DATA_MIRROR", raising=False)

    class Offline:
        resources = []

        def __init__(self, *args, **kwargs):
            raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torchvision.datasets, "MNIST", Offline)
    with pytest.raises(DataError) as err:
        fetch("mnist", tmp_path / "cache")
    message = str(err.value)
    assert "could not download" in message and "DEEPSNN_DATA_MIRROR" in message


def test_stage_reports_data_errors_without_traceback(monkeypatch, tmp_path, capsys):
    from deepsnn.core import cli

    def failing():
        raise DataError("mnist: missing file x")

    with pytest.raises(SystemExit) as exit_info:
        cli.run(failing)
    assert exit_info.value.code == "error: mnist: missing file x"


def test_fashion_mnist_is_verified_by_content_with_the_built_in_table(mirror, monkeypatch):
    monkeypatch.delenv("DEEPSNN_CONTENT_SHA256")
    # generated files are not the real Fashion-MNIST: the built-in content table refuses them
    with pytest.raises(DataError, match="fashion_mnist: content check failed for train-images-idx3-ubyte.*expected c59f468a"):
        read_raw("fashion_mnist", mirror["root"])


def test_recompressed_archives_with_the_right_content_pass(mirror):
    """Debian's Fashion-MNIST archives are re-compressed: other bytes, the same content."""
    raw = mirror["root"] / "FashionMNIST" / "raw"
    for archive in raw.glob("*.gz"):
        content = gzip.decompress(archive.read_bytes())
        recompressed = gzip.compress(content, compresslevel=1, mtime=12345)
        assert recompressed != archive.read_bytes()
        archive.write_bytes(recompressed)
    dataset = read_raw("fashion_mnist", mirror["root"])
    expected = mirror["sets"]["fashion_mnist"]["arrays"]["train-images-idx3-ubyte"]
    assert torch.equal(dataset.train_images[:, 0], torch.from_numpy(expected))


def test_a_content_table_without_the_set_is_refused(mirror, tmp_path, monkeypatch):
    table = tmp_path / "partial.json"
    table.write_text(json.dumps({"mnist": mirror["sets"]["mnist"]["sha256"]}))
    monkeypatch.setenv("DEEPSNN_CONTENT_SHA256", str(table))
    with pytest.raises(DataError, match=r"cifar10: the table in .*partial.json .* has no entry for it"):
        read_raw("cifar10", mirror["root"])


def test_builtin_tables_cover_real_sets():
    assert set(data_mod.CONTENT_SHA256) == {"mnist", "fashion_mnist", "cifar10"} == set(DATASETS)
    for table in data_mod.CONTENT_SHA256.values():
        assert all(len(h) == 64 and int(h, 16) >= 0 for h in table.values())


def test_saved_files_are_byte_identical_for_equal_contents(tmp_path):
    """DVC hashes bytes: saving the same data twice must not look like a change."""
    from deepsnn.core.io import atomic_save

    payload = {"images": torch.arange(100, dtype=torch.uint8).view(4, 25), "labels": torch.arange(4)}
    atomic_save(payload, tmp_path / "a.pt")
    atomic_save(payload, tmp_path / "b" / "c.pt")
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "b" / "c.pt").read_bytes()


def test_written_files_get_the_usual_permissions(tmp_path):
    from deepsnn.core.io import write_json

    umask = os.umask(0o022)
    try:
        write_json({"a": 1}, tmp_path / "m.json")
    finally:
        os.umask(umask)
    assert stat.S_IMODE((tmp_path / "m.json").stat().st_mode) == 0o644
