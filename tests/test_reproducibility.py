"""Reproducible by construction: stored simulations are fingerprinted by the stage's own inputs,
and inputs a new user gets wrong fail before any work with one clear paragraph, writing nothing."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
import torchvision

from conftest import REPO, TINY_CONVERSION, TINY_SPATIAL, eval_args, run_download, write_params
from deepsnn.conversion.ann.networks import load_trained_ann
from deepsnn.conversion.params import CONVERSION
from deepsnn.core import cli
from deepsnn.core.checkpoint import CheckpointError
from deepsnn.core.data import DataError
from deepsnn.download import fetch
from deepsnn.core.params import load_params
from deepsnn.direct.spatial import load_spatial_model
from deepsnn.evaluation.simulate import SimulationTooLarge, check_fits, simulation_bytes
from deepsnn.evaluation.stored import fingerprint, source_deps
from stages import download, eval_spatial, train_spatial


def test_source_deps_are_the_stage_code_dvc_tracks():
    deps = [p.relative_to(REPO).as_posix() for p in source_deps("eval_spatial", REPO / "dvc.yaml")]
    assert deps == ["stages/eval_spatial.py", "src/deepsnn/__init__.py", "src/deepsnn/core", "src/deepsnn/direct",
                    "src/deepsnn/evaluation"]  # not the data and model files: they come as arguments


def test_fingerprint_follows_the_files_and_settings_it_covers(tmp_path):
    code = tmp_path / "pkg"
    (code / "__pycache__").mkdir(parents=True)
    (code / "model.py").write_text("x = 1\n")
    data = tmp_path / "data.pt"
    data.write_bytes(b"abc")
    base = fingerprint([code, data], {"batch_size": 8})
    (tmp_path / "unrelated.py").write_text("y = 2\n")
    (code / "__pycache__" / "model.cpython-311.pyc").write_bytes(b"bytecode")  # DVC ignores it too
    assert fingerprint([code, data], {"batch_size": 8}) == base
    assert fingerprint([code, data], {"batch_size": 16}) != base
    (code / "model.py").write_text("x = 2\n")
    assert fingerprint([code, data], {"batch_size": 8}) != base
    (code / "model.py").write_text("x = 1\n")
    (code / "new.py").write_text("")
    assert fingerprint([code, data], {"batch_size": 8}) != base  # a new module in a covered folder


def test_stored_simulation_is_reused_unless_a_dep_of_the_stage_changes(mirror, tmp_path, monkeypatch):
    """eval_spatial in a copy of the repository: editing conversion code (not a dep) keeps its stored
    simulation; editing direct-training code (a dep) or a result-changing param simulates again."""
    repo = tmp_path / "repo"
    for name in ("stages", "src"):
        shutil.copytree(REPO / name, repo / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    shutil.copy(REPO / "dvc.yaml", repo / "dvc.yaml")
    monkeypatch.chdir(repo)  # the stage reads its deps from ./dvc.yaml, as under `dvc repro`
    out = tmp_path / "out"
    params = write_params(tmp_path / "params.yaml", **TINY_SPATIAL)
    run_download(out)
    common = ["--params", str(params), "--data", str(out / "mnist.pt"), "--model", str(out / "spatial.pt")]
    train_spatial.main(common + ["--curve", str(out / "t.csv"), "--metrics", str(out / "t.json")])

    def reused(params_path=params) -> bool:
        eval_spatial.main(["--params", str(params_path), *common[2:]] + eval_args(out))
        return json.loads((out / "eval.json").read_text())["simulation_reused"]

    def append(path, text: str) -> None:
        with open(repo / path, "a") as f:
            f.write(text)

    assert reused() is False
    assert reused() is True
    append("src/deepsnn/conversion/snn.py", "# an unrelated edit\n")
    (repo / "README.md").write_text("unrelated\n")
    assert reused() is True
    append("src/deepsnn/direct/spatial.py", "# an edit to code the stage runs\n")
    assert reused() is False
    append("stages/eval_spatial.py", "# the stage script itself\n")
    assert reused() is False
    assert reused(write_params(tmp_path / "batch.yaml", **{**TINY_SPATIAL, "eval_spatial.batch_size": 5})) is False
    assert reused(write_params(tmp_path / "T.yaml", **{**TINY_SPATIAL, "eval_spatial.batch_size": 5,
                                                     "T_eval": 4})) is True  # T_eval within the horizon


def test_a_T_eval_too_large_for_memory_is_refused_before_any_work(mirror, tmp_path, monkeypatch):
    out = tmp_path / "out"
    params = write_params(tmp_path / "params.yaml", **TINY_SPATIAL)
    run_download(out)
    common = ["--data", str(out / "mnist.pt"), "--model", str(out / "spatial.pt")]
    train_spatial.main(["--params", str(params), *common, "--curve", str(out / "t.csv"), "--metrics", str(out / "t.json")])
    monkeypatch.setattr("deepsnn.evaluation.simulate.available_memory", lambda: 2**30)  # a 1 GiB machine
    huge = write_params(tmp_path / "huge.yaml", **{**TINY_SPATIAL, "T_eval": 10_000_000})
    with pytest.raises(SystemExit) as exit_info:
        cli.run(lambda: eval_spatial.main(["--params", str(huge), *common] + eval_args(out)))
    message = exit_info.value.code
    assert message.startswith("error: eval_spatial: simulating 20 test images to T=10,000,000")
    assert "Set T_eval to at most" in message and "GiB" in message
    assert not (out / "eval.json").exists() and not (out / "eval_simulation.pt").exists()


def test_memory_estimate_is_what_the_issue_measured():
    # eval_spatial at T=100000: 1 GB of stored predictions, 4 GB per copy of one batch's step outputs,
    # about 17 GB peak as measured (issue 13)
    need = simulation_bytes(100_000, 10_000, 1000, 10, 3)
    assert 1.6e10 < need < 1.9e10
    check_fits("eval_spatial", 64, 10_000, 1000, 10, 3, available=2**30)  # today's horizon fits in 1 GiB
    with pytest.raises(SimulationTooLarge, match="T_eval to at most"):
        check_fits("eval_spatial", 100_000, 10_000, 1000, 10, 3, available=int(20e9))  # 20 GB free


@pytest.mark.parametrize("damage", ["missing", "truncated", "garbage", "other_object"])
def test_bad_checkpoints_name_the_file_and_the_stage_that_writes_it(tmp_path, damage):
    path = tmp_path / "spatial.pt"
    if damage != "missing":
        torch.save({"state_dict": {"w": torch.zeros(1000)}, "params": {}}, path)
        if damage == "truncated":
            path.write_bytes(path.read_bytes()[:200])
        elif damage == "garbage":
            path.write_bytes(b"\x00not a checkpoint" * 10)
        else:
            torch.save([1, 2, 3], path)
    with pytest.raises(CheckpointError) as err:
        load_spatial_model(path, None)
    message = str(err.value)
    assert message.startswith(f"{path}: ") and "`dvc repro train_spatial`" in message
    assert "weights_only" not in message and "Traceback" not in message


def test_an_ann_checkpoint_whose_weights_do_not_fit_is_named(tmp_path):
    path = tmp_path / "ann.pt"
    params = load_params(write_params(tmp_path / "p.yaml", **TINY_CONVERSION), CONVERSION)
    torch.save({"state_dict": {"features.0.weight": torch.zeros(1)}, "params": params}, path)
    with pytest.raises(CheckpointError, match=r"ann.pt: its weights do not fit .* `dvc repro train_ann`"):
        load_trained_ann(path)


def test_a_mirror_folder_that_does_not_exist_is_named(mirror, tmp_path, monkeypatch):
    missing = tmp_path / "no-such-mirror"
    monkeypatch.setenv("DEEPSNN_DATA_MIRROR", f"{missing}:{mirror['root']}")
    with pytest.raises(DataError, match=f"DEEPSNN_DATA_MIRROR: the folder {missing} does not exist"):
        fetch("mnist", tmp_path / "cache")


def test_an_empty_mirror_names_each_folder_searched_and_leaves_no_download_folder(tmp_path, monkeypatch):
    empty, other = tmp_path / "empty", tmp_path / "other"
    empty.mkdir()
    other.mkdir()
    monkeypatch.setenv("DEEPSNN_DATA_MIRROR", f"{empty}:{other}")

    class Offline:
        def __init__(self, *args, **kwargs):
            raise OSError("network unreachable")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", Offline)
    cache = tmp_path / "data" / "downloads"
    with pytest.raises(DataError) as err:
        fetch("cifar10", cache)
    message = str(err.value)
    assert "DEEPSNN_DATA_MIRROR is set" in message and "is not set" not in message
    assert f"{empty} has no cifar-10-batches-py/" in message and f"{other} has no cifar-10-batches-py/" in message
    assert not cache.exists()


def test_a_failure_on_the_second_data_set_leaves_the_first_as_it_was(mirror, tmp_path):
    out = tmp_path / "out"
    params = write_params(tmp_path / "params.yaml")
    run_download(out)
    before = {p.name: p.read_bytes() for p in out.glob("*.pt")}
    assert sorted(before) == ["cifar10.pt", "mnist.pt"]
    (mirror["root"] / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz").write_bytes(b"broken")  # mnist comes second
    for p in out.glob("*.pt"):
        p.write_bytes(b"old")
    with pytest.raises(DataError, match="t10k-labels"):
        run_download(out)
    assert {p.name: p.read_bytes() for p in out.glob("*.pt")} == {"cifar10.pt": b"old", "mnist.pt": b"old"}


def test_exponent_floats_are_numbers_as_dvc_reads_them(tmp_path):
    path = write_params(tmp_path / "params.yaml")
    path.write_text(path.read_text().replace("lr: 0.004", "lr: 4e-3").replace("lr: 0.2", "lr: 2E-1"))
    assert "lr: 4e-3" in path.read_text() and "lr: 2E-1" in path.read_text()
    from deepsnn.direct.params import DIRECT
    params = load_params(path, CONVERSION, DIRECT)
    assert params["train_spatial"]["lr"] == 0.004 and params["train_ann"]["lr"] == 0.2
    assert params["seed"] == 0 and isinstance(params["seed"], int)  # integers stay integers
