"""Inputs a new user gets wrong fail before any work, in one clear paragraph that names the file or
key, what it holds, what the stage expects and the command that fixes it, and they write nothing."""

from __future__ import annotations


import pytest
import torch
import torchvision
from torch import nn

from conftest import TINY_CONVERSION, TINY_SPATIAL, REPO, eval_args, run_download, write_params
from deepsnn.conversion.ann.networks import load_trained_ann
from deepsnn.conversion.params import CONVERSION
from deepsnn.core import cli
from deepsnn.core.checkpoint import CheckpointError, save_checkpoint
from deepsnn.core.data import DataError
from deepsnn.core.params import load_params
from deepsnn.direct.spatial import load_spatial_model
from deepsnn.download import fetch
from deepsnn.evaluation.direct import DIRECT
from deepsnn.evaluation.simulation import SimulationError, check_feasible, simulation_bytes
from stages import eval_spatial, experiments, simulate_spatial, train_spatial


def stage_error(main, argv) -> str:
    """The one-line message a stage exits with (as under `dvc repro`)."""
    with pytest.raises(SystemExit) as exit_info:
        cli.run(lambda: main(argv))
    assert isinstance(exit_info.value.code, str), exit_info.value.code
    return exit_info.value.code


@pytest.fixture
def trained(mirror, tmp_path):
    """A tiny direct SNN trained on the test mirror's MNIST; the paths a stage gets."""
    out = tmp_path / "out"
    params = write_params(tmp_path / "params.yaml", **TINY_SPATIAL)
    run_download(out)
    model = out / "snn.pt"
    train_spatial.main(["--params", str(params), "--data", str(out / "mnist.pt"), "--model", str(model),
                        "--curve", str(out / "t.csv"), "--metrics", str(out / "t.json")])
    return {"out": out, "params": params, "model": model, "data": out / "mnist.pt", "tmp": tmp_path}


def simulate_argv(t, params=None, data=None, model=None) -> list[str]:
    return ["--params", str(params or t["params"]), "--data", str(data or t["data"]), "--model", str(model or t["model"]),
            "--out", str(t["out"] / "sim.pt"), "--metrics", str(t["out"] / "sim.json")]


def test_the_other_pipelines_checkpoint_is_named(trained, tmp_path):
    ann_checkpoint = tmp_path / "ann.pt"
    save_checkpoint(nn.Linear(2, 2), {"dataset": "mnist", "train_ann": {}}, ann_checkpoint, written_by="train_ann")
    message = stage_error(simulate_spatial.main, simulate_argv(trained, model=ann_checkpoint))
    assert f"{ann_checkpoint}: a checkpoint of `train_ann`, and this stage reads one of `train_spatial`" in message
    assert "dvc repro train_spatial@<data set>" in message
    with pytest.raises(CheckpointError, match="a checkpoint of `train_spatial`, and this stage reads one of `train_ann`"):
        load_trained_ann(trained["model"])  # what convert, calibrate and simulate_sweep load
    assert not (trained["out"] / "sim.pt").exists()


@pytest.mark.parametrize("damage", ["missing", "truncated"])
def test_a_missing_or_truncated_data_file_is_named(trained, damage):
    data = trained["tmp"] / "broken.pt"
    if damage == "truncated":
        data.write_bytes(trained["data"].read_bytes()[:5000])
    message = stage_error(simulate_spatial.main, simulate_argv(trained, data=data))
    expected = "data file not found" if damage == "missing" else "not a readable data file"
    assert message.startswith(f"error: {data}: {expected}") and "`dvc repro download`" in message
    assert "Traceback" not in message and not (trained["out"] / "sim.pt").exists()


def test_a_model_on_a_data_set_it_was_not_trained_on_is_refused(trained):
    fashion = trained["out"] / "fashion_mnist.pt"
    message = stage_error(simulate_spatial.main, simulate_argv(trained, data=fashion))
    assert f"{trained['model']} was trained on mnist, and the data file given holds fashion_mnist" in message
    assert "data/mnist.pt" in message and not (trained["out"] / "sim.pt").exists()


def test_ctrl_c_says_so_in_one_line_exits_130_and_writes_nothing(trained, monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(simulate_spatial, "simulate_images", interrupted)
    with pytest.raises(SystemExit) as exit_info:
        cli.run(lambda: simulate_spatial.main(simulate_argv(trained)))
    assert exit_info.value.code == 130
    err = capsys.readouterr().err.strip()
    assert err.startswith("interrupted:") and len(err.splitlines()) == 1 and "Traceback" not in err
    assert sorted(p.name for p in trained["out"].glob("sim*")) == []


def test_an_unknown_top_level_key_stops_the_first_stage(tmp_path):
    params = write_params(tmp_path / "params.yaml")
    params.write_text(params.read_text() + "learning_rate: 0.1\n")
    message = stage_error(experiments.main, ["--params", str(params), "--experiments-dir", str(REPO / "experiments"),
                                             "--out", str(tmp_path / "experiments.json")])
    assert "learning_rate" in message and "allowed" in message
    assert not (tmp_path / "experiments.json").exists()


def test_T_eval_beyond_the_horizon_names_both_keys_and_the_command(trained):
    simulate_spatial.main(simulate_argv(trained))  # horizon 5
    beyond = write_params(trained["tmp"] / "beyond.yaml", **{**TINY_SPATIAL, "T_eval": 9})
    message = stage_error(eval_spatial.main, ["--params", str(beyond), "--data", str(trained["data"]), "--model",
                                              str(trained["model"]), "--simulation", str(trained["out"] / "sim.pt")]
                          + eval_args(trained["out"]))
    assert message.startswith("error: T_eval: 9 is beyond the 5 steps that")
    assert "(simulate_spatial.horizon)" in message
    assert "`dvc exp run -S T_eval=9 -S simulate_spatial.horizon=9`" in message
    assert not (trained["out"] / "eval.json").exists()


def test_a_simulation_of_hours_is_refused_with_the_largest_horizon_within_the_bound(trained):
    long = write_params(trained["tmp"] / "long.yaml", **{**TINY_SPATIAL, "simulate_spatial.horizon": 10**9})
    message = stage_error(simulate_spatial.main, simulate_argv(trained, params=long))
    assert "simulating 28 images to T=1,000,000,000 (simulate_spatial.horizon) would" in message
    assert "Set simulate_spatial.horizon to at most" in message
    assert not (trained["out"] / "sim.pt").exists()


def test_a_simulation_beyond_memory_is_refused_naming_the_largest_horizon():
    # 12,000 images (test set + held-out) to T=100,000 with 3 spiking layers: summed outputs and
    # per-sample spike counts at every t, kept and stacked (125 GB), plus one batch's steps (26 GB)
    need = simulation_bytes(100_000, 12_000, 1000, 10, 3)
    assert 1.4e11 < need < 1.6e11
    check_feasible("simulate_spatial", 64, 12_000, 1000, 10, 3, 1e-3, 2.0, available=2**30)  # the default fits
    with pytest.raises(SimulationError, match=r"Set simulate_spatial.horizon to at most [0-9,]+, or lower"):
        check_feasible("simulate_spatial", 100_000, 12_000, 1000, 10, 3, 1e-3, 1e9, available=int(20e9))
    with pytest.raises(SimulationError, match=r"would take about 2\.8 hours .*max_hours = 2\. Set simulate_spatial.horizon to at most 722,"):
        check_feasible("simulate_spatial", 1000, 12_000, 1000, 10, 3, 0.83, 2.0, available=2**40)


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
    assert message.startswith(f"{path}: ") and "`dvc repro train_spatial@<data set>`" in message
    assert "weights_only" not in message and "Traceback" not in message


def test_an_ann_checkpoint_whose_weights_do_not_fit_is_named(tmp_path):
    path = tmp_path / "ann.pt"
    params = load_params(write_params(tmp_path / "p.yaml", **TINY_CONVERSION), CONVERSION)
    torch.save({"state_dict": {"features.0.weight": torch.zeros(1)}, "params": {**params, "dataset": "cifar10"},
                "written_by": "train_ann"}, path)
    with pytest.raises(CheckpointError, match=r"ann.pt: its weights do not fit .* `dvc repro train_ann@<data set>`"):
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


def test_a_failing_data_set_writes_no_data_file(mirror, tmp_path):
    # every set is verified before any is written (under `dvc repro`, DVC has removed the old ones already)
    (mirror["root"] / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz").write_bytes(b"broken")
    out = tmp_path / "data"
    with pytest.raises(DataError, match="t10k-labels"):
        run_download(out, ("cifar10", "mnist"))
    assert not out.exists() or list(out.iterdir()) == []


def test_exponent_floats_are_numbers_as_dvc_reads_them(tmp_path):
    path = write_params(tmp_path / "params.yaml")
    path.write_text(path.read_text().replace("lr: 0.004", "lr: 4e-3").replace("lr: 0.2", "lr: 2E-1"))
    assert "lr: 4e-3" in path.read_text() and "lr: 2E-1" in path.read_text()
    params = load_params(path, CONVERSION, DIRECT)
    assert params["train_spatial"]["lr"] == 0.004 and params["train_ann"]["lr"] == 0.2
    assert params["seed"] == 0 and isinstance(params["seed"], int)  # integers stay integers
