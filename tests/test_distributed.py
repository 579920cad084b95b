"""Data-parallel training (torchrun, gloo on CPU) of both training stages: two processes follow
one process's trajectory, and a rank that fails stops the others and leaves no output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import REPO, TINY_CONVERSION, TINY_SPATIAL, run_download, write_params
from deepsnn.core.data import load_prepared
from deepsnn.core.params import load_params
from deepsnn.core.training import seed_everything
from deepsnn.direct.params import TRAIN_SPATIAL
from deepsnn.direct.spatial import build_spatial_model

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]


def prepare(mirror_tmp: Path, architecture: str = "cnn3") -> tuple[Path, Path]:
    # 40 images in global batches of 16 (slices of 8 and 8; the last batch 8 = 4 + 4), 2 epochs
    params = write_params(mirror_tmp / "params.yaml", **{**TINY_SPATIAL, "train_spatial.epochs": 2,
                                                         "train_spatial.architecture": architecture})
    run_download(mirror_tmp / "data")
    return params, mirror_tmp / "data" / "mnist.pt"


def train(launcher: list[str], script: Path, params: Path, data: Path, out: Path) -> subprocess.CompletedProcess:
    out.mkdir()
    args = ["--params", str(params), "--data", str(data), "--model", str(out / "spatial.pt"),
            "--curve", str(out / "curve.csv"), "--metrics", str(out / "metrics.json")]
    return subprocess.run([*launcher, str(script), *args], cwd=REPO, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("architecture", ["cnn3", "vgg7"])
def test_two_gloo_processes_give_the_weights_of_one(mirror, tmp_path, architecture):
    params, data = prepare(tmp_path, architecture)
    script = REPO / "stages" / "train_spatial.py"
    one = train([sys.executable], script, params, data, tmp_path / "one")
    two = train(TORCHRUN, script, params, data, tmp_path / "two")
    assert one.returncode == 0, one.stderr
    assert two.returncode == 0, two.stderr
    single = torch.load(tmp_path / "one" / "spatial.pt")["state_dict"]
    parallel = torch.load(tmp_path / "two" / "spatial.pt")["state_dict"]
    # weights and BatchNorm running statistics (global batch statistics, not one slice's)
    for name, tensor in single.items():
        assert torch.allclose(tensor.float(), parallel[name].float(), rtol=1e-4, atol=1e-5), name
    assert single["bns.1.num_batches_tracked"] == 6 == parallel["bns.1.num_batches_tracked"]
    seed_everything(0)  # the committed seed: the untrained net, which training moved
    untrained = build_spatial_model(load_params(params, TRAIN_SPATIAL)["train_spatial"], load_prepared(data))
    assert (untrained.convs[0].weight - single["convs.0.weight"]).abs().max() > 1e-3
    metrics = {run: json.loads((tmp_path / run / "metrics.json").read_text()) for run in ("one", "two")}
    assert (metrics["one"]["processes"], metrics["two"]["processes"]) == (1, 2)
    # epoch statistics count every rank's images
    assert metrics["one"]["train_accuracy"] == metrics["two"]["train_accuracy"]


def test_a_failing_rank_stops_the_others_and_leaves_no_output(mirror, tmp_path):
    params, data = prepare(tmp_path)
    done = train(TORCHRUN, REPO / "tests" / "helpers" / "fail_on_rank_1.py", params, data, tmp_path / "out")
    assert done.returncode != 0
    assert "injected failure on rank 1" in done.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == []  # no output, no temporary file


def test_global_batch_smaller_than_the_processes_fails_before_training(mirror, tmp_path):
    params, data = prepare(tmp_path)
    params = write_params(params, **{**TINY_SPATIAL, "train_spatial.batch_size": 1})
    done = train(TORCHRUN, REPO / "stages" / "train_spatial.py", params, data, tmp_path / "out")
    assert done.returncode != 0
    assert "train_spatial.batch_size: 1 is the global batch" in done.stderr
    assert list((tmp_path / "out").iterdir()) == []


def test_two_gloo_processes_train_the_ann_of_one(mirror, tmp_path):
    # 20 CIFAR images, global batch 4 (slices of 2): 2 epochs of 5 steps; BatchNorm statistics over
    # the global batch. ReLU: QCFS's rounding turns float-order differences (1e-7 here) into
    # whole quantisation steps now and then (1e-4 in the weights after 10 steps), which says
    # nothing about the data-parallel machinery
    params = write_params(tmp_path / "params.yaml", **{
        **TINY_CONVERSION, "train_ann.epochs": 2, "train_ann.qcfs_clip_epochs": 1, "train_ann.activation": "relu",
        "train_ann.batch_size": 4, "train_ann.precision": "fp32"})
    run_download(tmp_path / "data")
    data = tmp_path / "data" / "cifar10.pt"
    script = REPO / "stages" / "train_ann.py"
    runs = {}
    for name, launcher in (("one", [sys.executable]), ("two", TORCHRUN)):
        (tmp_path / name).mkdir()
        done = subprocess.run([*launcher, str(script), "--params", str(params), "--data", str(data),
                               "--model", str(tmp_path / name / "ann.pt"), "--curve", str(tmp_path / name / "c.csv"),
                               "--metrics", str(tmp_path / name / "m.json")],
                              cwd=REPO, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        runs[name] = torch.load(tmp_path / name / "ann.pt")["state_dict"]
    for name, tensor in runs["one"].items():
        assert torch.allclose(tensor.float(), runs["two"][name].float(), rtol=1e-4, atol=1e-5), name
    assert int(runs["two"]["features.1.num_batches_tracked"]) == 10
    metrics = json.loads((tmp_path / "two" / "m.json").read_text())
    assert metrics["processes"] == 2
