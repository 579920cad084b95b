"""ANN-to-SNN conversion: convergence to the ANN, thresholds file, determinism, early failures."""

from __future__ import annotations

import copy

import pandas as pd
import pytest
import torch
from torch import nn

from conftest import TINY_CONVERSION, run_download, write_params
from conftest import run_conversion as run_all_conversion
from deepsnn.conversion.calibration import LayerThreshold, activation_layers, calibrate_thresholds, read_thresholds, write_thresholds
from deepsnn.conversion.snn import SpikingOptions, convert, reference_step_outputs, relu_network
from deepsnn.core.distributed import Processes
from deepsnn.core.errors import ConversionError
from deepsnn.conversion.params import CONVERSION
from deepsnn.core.params import ParamsError, validate_params
from deepsnn.conversion.ann.networks import QCFS, VGG, check_convertible, set_quantize
from stages import calibrate, train_ann

ONE_PROCESS = Processes(rank=0, world_size=1, device=torch.device("cpu"))
WIDTH = 1 / 16  # 4..32 channels: the real VGG-16 topology, small enough for CPU tests


def random_vgg(act: str = "relu", seed: int = 0) -> VGG:
    """A VGG-16 with random weights and non-trivial BatchNorm statistics."""
    torch.manual_seed(seed)
    model = VGG(width=WIDTH, act=act)
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(32, 3, 32, 32))
    return model.eval()


def inputs(seed: int = 1) -> torch.Tensor:
    return torch.randn(16, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def clip_limit(model: VGG) -> VGG:
    """What a QCFS network's SNN converges to as T grows: its clip without the floor."""
    limit = copy.deepcopy(model)
    set_quantize(limit, False)
    return limit


def test_qcfs_quantises_to_its_levels_and_its_clip_warm_up_does_not():
    qcfs = QCFS(levels=4, threshold=2.0)
    x = torch.linspace(-1.0, 3.0, 401)
    quantised = qcfs(x)
    # floor(x L / lambda + 1/2): multiples of lambda/L = 0.5, rounded to nearest, clipped to [0, 2]
    assert sorted(set(quantised.tolist())) == [0.0, 0.5, 1.0, 1.5, 2.0]
    assert qcfs(torch.tensor([0.74, 0.76])).tolist() == [0.5, 1.0]
    model = nn.Sequential(QCFS(4), nn.Linear(3, 3), QCFS(4))
    set_quantize(model, False)
    assert [m.quantize for m in model.modules() if isinstance(m, QCFS)] == [False, False]
    qcfs.quantize = False
    clipped = qcfs(x)
    assert torch.allclose(clipped, x.clamp(0.0, 2.0))
    ceiling_test = torch.tensor([-0.5, 0.3, 1.2, 2.5, 3.0])
    qcfs(ceiling_test).sum().backward()  # the learned ceiling gets a gradient from each input above it
    assert qcfs.threshold.grad.item() == pytest.approx(2.0)


@pytest.mark.parametrize("mode", ["max", "percentile", "qcfs"])
@pytest.mark.parametrize("initial_potential", ["half", "zero"])
def test_snn_rate_output_converges_to_the_ann(mode, initial_potential):
    model = random_vgg("qcfs" if mode == "qcfs" else "relu")
    x = inputs()
    if mode == "qcfs":  # learned clip values, here set to each layer's observed maximum
        observed = calibrate_thresholds(relu_network(model), [x], "max")
        for t, (_, m) in zip(observed, activation_layers(model)):
            m.threshold.data.fill_(t.threshold)
        target = clip_limit(model)(x)
    else:
        target = model(x)
    thresholds = calibrate_thresholds(model, [x], mode, percentile=99.9)
    snn = convert(model, thresholds, SpikingOptions("soft", initial_potential))
    outputs = reference_step_outputs(snn, x, 256)
    error = {T: (outputs[:T].mean(0) - target).abs().mean().item() for T in (8, 256)}
    assert error[256] < 0.2 * error[8], error
    assert error[256] < 0.02 * target.abs().mean().item()


def test_thresholds_file_round_trips(tmp_path):
    thresholds = [LayerThreshold("features.2", 0.1 + 0.2, "max"), LayerThreshold("classifier.2", 3.14159e-5, "p99.99")]
    write_thresholds(thresholds, tmp_path / "t.csv")
    assert read_thresholds(tmp_path / "t.csv") == thresholds
    assert list(pd.read_csv(tmp_path / "t.csv").columns) == ["layer", "threshold", "statistic"]


def test_calibration_statistics_are_what_they_claim():
    model = random_vgg()
    x = inputs()
    seen = {}

    def keep(name):
        def hook(_module, _inputs, output):
            seen[name] = output.flatten()
        return hook

    hooks = [m.register_forward_hook(keep(n)) for n, m in model.named_modules() if isinstance(m, nn.ReLU)]
    model(x)
    for h in hooks:
        h.remove()
    maxima = calibrate_thresholds(model, [x], "max")
    p99 = calibrate_thresholds(model, [x], "percentile", percentile=99.0)
    for t_max, t_p in zip(maxima, p99):
        values = seen[t_max.layer]
        assert t_max.threshold == pytest.approx(values.max().item())
        assert t_p.threshold == pytest.approx(values.kthvalue(round(0.99 * values.numel())).values.item())
        assert t_p.threshold <= t_max.threshold and t_p.statistic == "p99"


def test_bad_conversion_requests_fail_before_any_work():
    model = random_vgg()
    with pytest.raises(ConversionError, match=r"percentile must be in \(0, 100\]"):
        calibrate_thresholds(model, [inputs()], "percentile", percentile=0.0)
    with pytest.raises(ConversionError, match="percentile must be in"):
        calibrate_thresholds(model, [inputs()], "percentile", percentile=100.5)
    with pytest.raises(ConversionError, match="allowed: max, percentile, qcfs"):
        calibrate_thresholds(model, [inputs()], "mean")
    with pytest.raises(ConversionError, match="needs a model trained with the qcfs activation"):
        calibrate_thresholds(model, [inputs()], "qcfs")
    with_maxpool = copy.deepcopy(model)
    with_maxpool.features[3] = nn.MaxPool2d(2)
    with pytest.raises(ConversionError, match=r"layer features.3 is MaxPool2d: max pooling does not convert"):
        check_convertible(with_maxpool)
    with pytest.raises(ConversionError, match="max pooling"):
        convert(with_maxpool, calibrate_thresholds(model, [inputs()], "max"))
    with pytest.raises(ConversionError, match="no entry for activation layer"):
        convert(model, [LayerThreshold("features.2", 1.0, "max")])
    with pytest.raises(ValueError, match="allowed: soft, hard"):
        SpikingOptions(reset="none")


@pytest.mark.parametrize("path, value, expected", [
    ("calibrate.percentile", 0, r"calibrate.percentile: 0.0 is out of range; allowed: numbers in \(0.0, 100.0\]"),
    ("calibrate.percentile", 100.01, r"calibrate.percentile: 100.01 is out of range"),
    ("calibrate.mode", "mean", r"calibrate.mode: 'mean' is not allowed; allowed: qcfs, max, percentile"),
    ("convert.initial_potential", "random", r"allowed: half, zero"),
    ("train_ann.activation", "gelu", r"allowed: qcfs, relu"),
    ("train_ann.qcfs_clip_epochs", -1, r"train_ann.qcfs_clip_epochs: -1 is out of range; allowed: integers in \[0, inf\]"),
    ("train_ann.architecture", "resnet18", r"train_ann.architecture: 'resnet18' is not allowed; allowed: vgg16, cnn3"),
])
def test_bad_conversion_params_are_named(path, value, expected):
    from conftest import committed_params
    params = committed_params()
    section, key = path.split(".")
    params[section][key] = value
    with pytest.raises(ParamsError, match=expected):
        validate_params(params, CONVERSION)


@pytest.mark.parametrize("architecture, dataset, expected", [
    ("cnn3", "cifar10", r"train_ann.architecture: cnn3 is a network for 28x28 images and this experiment's data set "
                        r"cifar10 has 32x32; allowed data sets for it: mnist, fashion_mnist"),
    ("vgg16", "mnist", r"train_ann.architecture: vgg16 is a network for 32x32 images and this experiment's data set "
                       r"mnist has 28x28; allowed data sets for it: cifar10"),
])
def test_a_network_for_other_images_fails_before_any_work(mirror, tmp_path, architecture, dataset, expected):
    from deepsnn.core import cli
    params = write_params(tmp_path / "params.yaml", **{**TINY_CONVERSION, "train_ann.architecture": architecture})
    run_download(tmp_path / "data")
    argv = ["--params", str(params), "--data", str(tmp_path / "data" / f"{dataset}.pt"), "--model",
            str(tmp_path / "ann.pt"), "--curve", str(tmp_path / "c.csv"), "--metrics", str(tmp_path / "m.json")]
    with pytest.raises(SystemExit, match=expected):  # before any training
        cli.run(lambda: train_ann.main(argv))
    assert not (tmp_path / "ann.pt").exists()


@pytest.mark.parametrize("dataset", ["mnist", "fashion_mnist"])
def test_small_cnn_converts_on_the_mnist_family(mirror, tmp_path, dataset):
    params = write_params(tmp_path / "params.yaml", **{**TINY_CONVERSION, "train_ann.architecture": "cnn3",
                                                       "train_ann.width": 0.25})
    result = run_conversion(tmp_path, params, dataset)
    assert {k: result["metrics"][k] for k in ("pipeline", "dataset", "architecture")} == {
        "pipeline": "conversion", "dataset": dataset, "architecture": "cnn3"}
    assert len(result["thresholds"]) == 2 and len(result["layers"]) == 2  # two conv activations, no hidden linear
    assert result["metrics"]["test_samples"] == (20 if dataset == "mnist" else 10)
    assert [result["metrics"][f"snn_accuracy_T{T}"] for T in (1, 2, 4)] == [result["curve"]["accuracy"][T - 1] for T in (1, 2, 4)]


def test_qcfs_clip_epochs_must_leave_quantised_epochs(tmp_path):
    from deepsnn.core.params import load_params
    params = write_params(tmp_path / "params.yaml", **{"train_ann.epochs": 6, "train_ann.qcfs_clip_epochs": 6})
    with pytest.raises(ParamsError, match=r"train_ann.qcfs_clip_epochs: 6 must be smaller than train_ann.epochs "
                                          r"\(6\).*allowed: 0 .. 5"):
        load_params(params, CONVERSION)
    relu = write_params(tmp_path / "relu.yaml", **{"train_ann.activation": "relu", "train_ann.epochs": 6,
                                                    "train_ann.qcfs_clip_epochs": 6})
    assert load_params(relu, CONVERSION)["train_ann"]["qcfs_clip_epochs"] == 6  # ignored without qcfs


def random_cifar(generator: torch.Generator, train: int = 16, test: int = 8):
    """A CIFAR-shaped ImageDataset of random pixels and labels, for training-loop tests."""
    from deepsnn.core.data import ImageDataset
    images = lambda n: torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=generator)
    labels = lambda n: torch.randint(0, 10, (n,), generator=generator)
    return ImageDataset(images(train), labels(train), images(test), labels(test), [str(i) for i in range(10)], "cifar10")


def test_training_clips_first_then_quantises(monkeypatch):
    """qcfs_clip_epochs epochs of clip, then quantised epochs; the trained model stays quantised."""
    from deepsnn.conversion.ann import training as ann_training
    g = torch.Generator().manual_seed(0)
    data = random_cifar(g)
    seen = []
    real = ann_training.set_quantize
    monkeypatch.setattr(ann_training, "set_quantize", lambda m, q: (seen.append(q), real(m, q)))
    cfg = {"dataset": "cifar10", "epochs": 3, "qcfs_clip_epochs": 2, "batch_size": 8, "lr": 0.01, "weight_decay": 0.0,
           "label_smoothing": 0.0, "augment_shift": 4, "precision": "fp32", "compile": False}
    model = random_vgg("qcfs")
    ann_training.train_ann(model, data, cfg, g, ONE_PROCESS, progress=False)
    assert seen == [False, False, True]
    assert all(m.quantize for m in model.modules() if isinstance(m, QCFS))


def test_precision_picks_bf16_autocast_and_keeps_float32_weights():
    from deepsnn.conversion.ann import training as ann_training
    cpu, conv, x = torch.device("cpu"), nn.Conv2d(3, 4, 3), torch.randn(2, 3, 8, 8)
    dtypes = {}
    for precision in ("fp32", "bf16", "auto"):
        with ann_training.autocast(cpu, precision):
            dtypes[precision] = conv(x).dtype
    assert dtypes["fp32"] == torch.float32 and dtypes["bf16"] == torch.bfloat16
    assert dtypes["auto"] == (torch.bfloat16 if ann_training.has_native_bf16(cpu) else torch.float32)
    # a bf16 training run updates float32 master weights, and its eval (float32) runs
    g = torch.Generator().manual_seed(0)
    data = random_cifar(g)
    model = random_vgg("qcfs")
    before = copy.deepcopy(model.state_dict())
    cfg = {"dataset": "cifar10", "epochs": 1, "qcfs_clip_epochs": 0, "batch_size": 8, "lr": 0.01, "weight_decay": 0.0,
           "label_smoothing": 0.0, "augment_shift": 4, "precision": "bf16", "compile": False}
    history = ann_training.train_ann(model, data, cfg, g, ONE_PROCESS, progress=False)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert not torch.equal(before["features.0.weight"], model.state_dict()["features.0.weight"])
    assert torch.isfinite(torch.tensor(history[0]["train_loss"]))


def run_conversion(tmp_path, params, dataset: str = "cifar10") -> dict:
    """Every conversion stage as dvc.yaml runs them (conftest.run_conversion), and the thresholds file."""
    result = run_all_conversion(tmp_path / "out", params, dataset)
    return {**result, "thresholds": read_thresholds(tmp_path / "out" / "thresholds.csv")}


@pytest.mark.parametrize("mode", ["qcfs", "max"])
def test_conversion_stages_smoke_run_and_repeat_exactly(mirror, tmp_path, mode):
    overrides = {**TINY_CONVERSION, "calibrate.mode": mode,
                 "train_ann.activation": "qcfs" if mode == "qcfs" else "relu",
                 "simulate_sweep.temporal_coding": "few_spikes" if mode == "qcfs" else "none"}
    params = write_params(tmp_path / "params.yaml", **overrides)
    first = run_conversion(tmp_path / "a", params)
    second = run_conversion(tmp_path / "b", params)
    assert list(first["curve"]["T"]) == list(range(1, 7))
    assert first["metrics"]["snn_accuracy"] == first["curve"]["accuracy"][3]
    assert len(first["thresholds"]) == 15  # 13 conv + 2 hidden linear activations
    assert all(t.statistic == ("qcfs_lambda" if mode == "qcfs" else "max") for t in first["thresholds"])
    assert list(first["curve"]["accuracy"]) == list(second["curve"]["accuracy"])
    # the same inputs give byte-identical artifacts (DVC hashes bytes): data, ANN, thresholds, SNN, plots
    assert first["md5"] == second["md5"]
    assert first["thresholds"] == second["thresholds"]
    assert first["metrics"]["ann_accuracy"] == second["metrics"]["ann_accuracy"]
    assert len(first["layers"]) == 15 and first["metrics"]["synops_per_sample"] > 0
    assert first["metrics"]["analog_macs_per_sample"] < first["metrics"]["ann_macs_per_sample"]
    assert list(first["layers"]["synops_per_sample"]) == list(second["layers"]["synops_per_sample"])
    assert first["times"]["calibrate"]["calibrate_time_s"] >= 0 and first["times"]["convert"]["convert_time_s"] >= 0
    # the committed params correct the SNN: eval_sweep also simulates it without, up to its horizon
    low_T = first["low_T"]
    assert list(low_T["snn_accuracy"]) == list(first["curve"]["accuracy"])
    assert low_T["uncorrected_accuracy"].notna().sum() == 6  # min(uncorrected_horizon 8, simulated T 6)
    assert first["metrics"]["snn_accuracy_T1"] == low_T["snn_accuracy"][0]
    assert first["metrics"]["uncorrected_loss_T4"] == pytest.approx(low_T["ann_accuracy"][3] - low_T["uncorrected_accuracy"][3])
    assert first["convert"]["rate_gap_after"] <= first["convert"]["rate_gap_before"]


def test_calibrate_stage_refuses_qcfs_mode_for_a_relu_network(mirror, tmp_path):
    params = write_params(tmp_path / "params.yaml", **{**TINY_CONVERSION, "train_ann.activation": "relu"})
    out = tmp_path / "out"
    run_download(out)
    train_ann.main(["--params", str(params), "--data", str(out / "cifar10.pt"), "--model", str(out / "ann.pt"),
                    "--curve", str(out / "c.csv"), "--metrics", str(out / "m.json")])
    with pytest.raises(ParamsError, match="calibrate.mode: 'qcfs' needs train_ann.activation: qcfs"):
        calibrate.main(["--params", str(params), "--data", str(out / "cifar10.pt"), "--model", str(out / "ann.pt"),
                        "--thresholds", str(out / "t.csv"), "--metrics", str(out / "c.json")])
    assert not (out / "t.csv").exists()


@pytest.mark.parametrize("options", [SpikingOptions("soft", "half"), SpikingOptions("hard", "zero")], ids=str)
def test_fast_simulator_matches_the_reference_loop(options):
    from deepsnn.evaluation.energy import SpikeCounter
    from deepsnn.conversion.chain_simulator import ChainSimulator

    model = random_vgg()
    x = inputs()
    snn = convert(model, calibrate_thresholds(model, [x], "max"), options)
    reference = reference_step_outputs(snn, x, 12)
    exact_simulator = ChainSimulator(snn, channels_last=False)
    exact = exact_simulator.step_outputs(x, 12)
    assert torch.equal(exact, reference)  # same ops in the same memory layout: bit-identical
    compiled_simulator = ChainSimulator(snn, compile=True)
    compiled = compiled_simulator.step_outputs(x, 12)
    assert torch.equal(compiled.cumsum(0).argmax(-1), reference.cumsum(0).argmax(-1))
    assert torch.equal(compiled, reference)  # one fused kernel per layer, same arithmetic
    eager_counts, compiled_counts = (SpikeCounter(s.spiking_layers, 12) for s in (exact_simulator, compiled_simulator))
    exact_simulator.step_outputs(x, 12, counter=eager_counts)
    compiled_simulator.step_outputs(x, 12, counter=compiled_counts)
    eager, compiled_state = eager_counts.state(), compiled_counts.state()
    assert eager["spikes"].sum() > 0
    for key in ("spikes", "synops", "sample_spikes", "sample_synops"):
        assert torch.equal(eager[key], compiled_state[key]), key
    relaid = ChainSimulator(snn, channels_last=True).step_outputs(x, 12)
    assert torch.equal(relaid.cumsum(0).argmax(-1), reference.cumsum(0).argmax(-1))
    assert (relaid - reference).abs().max() <= 1e-3 * reference.abs().max()


def test_simulator_rejects_graphs_that_are_not_chains():
    from deepsnn.conversion.chain_simulator import chain_modules

    class Residual(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 3, padding=1)

        def forward(self, x):
            return self.conv(x) + x

    with pytest.raises(ValueError, match="not a chain-structured SNN"):
        chain_modules(torch.fx.symbolic_trace(Residual()))
