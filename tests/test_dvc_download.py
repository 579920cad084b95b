"""Integration: `dvc repro download` in a temporary copy of the repository, against a mirror."""

from __future__ import annotations

import torch
import yaml

from conftest import copy_repo, dvc
from deepsnn.core.data import load_prepared


def test_dvc_repro_download_against_a_mirror(mirror, tmp_path):
    repo = copy_repo(tmp_path / "repo")
    run = dvc(repo, "repro", "download")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "content verified" in run.stdout
    mnist = load_prepared(repo / "data" / "mnist.pt")
    cifar = load_prepared(repo / "data" / "cifar10.pt")
    expected = mirror["sets"]["mnist"]["arrays"]["train-images-idx3-ubyte"]
    assert torch.equal(mnist.train_images[:, 0], torch.from_numpy(expected))
    assert cifar.test_images.shape == (6, 3, 32, 32)
    assert (repo / "dvc.lock").exists()
    # only the selected sets are produced
    assert sorted(p.name for p in (repo / "data").glob("*.pt")) == ["cifar10.pt", "mnist.pt"]
    again = dvc(repo, "repro", "download")
    assert again.returncode == 0 and "didn't change" in again.stdout, again.stdout


def test_dvc_repro_download_fails_cleanly_on_a_corrupt_mirror(mirror, tmp_path):
    repo = copy_repo(tmp_path / "repo")
    path = mirror["root"] / "cifar-10-batches-py" / "test_batch"
    path.write_bytes(path.read_bytes()[:100])
    run = dvc(repo, "repro", "download")
    assert run.returncode != 0
    assert "error: " in run.stderr and "test_batch" in run.stderr and "Traceback" not in run.stderr
    assert not (repo / "data" / "cifar10.pt").exists()
    # the experiments check ran and is recorded; the failed download is not
    assert "download" not in yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
