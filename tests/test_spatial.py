"""Direct training: exact forward, live gradients, determinism, fast failure, stage smoke runs."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
from spikingjelly.activation_based import functional

from conftest import TINY_SPATIAL, eval_args, run_direct, run_download, write_params
from deepsnn.core.neurons import NeuronConfig, step
from deepsnn.direct.spatial import SpikingConvNet, architecture_layers, bn_affine, spike_count_loss
from stages import eval_spatial, train_spatial

CONFIGS = [NeuronConfig(kind, reset, v_init=v_init) for kind in ("if", "lif") for reset in ("soft", "hard")
           for v_init in (0.0, 0.5)]


ARCHITECTURES = {"cnn3": (1, 28), "vgg7": (3, 32)}  # (input channels, image size) the tests feed them


def tiny_model(cfg: NeuronConfig = NeuronConfig(), seed: int = 0, population: int = 2,
               architecture: str = "cnn3") -> SpikingConvNet:
    torch.manual_seed(seed)
    in_channels, size = ARCHITECTURES[architecture]
    model = SpikingConvNet(architecture_layers(architecture, 4, 3), in_channels=in_channels, image_size=size,
                           neuron_config=cfg, population=population)
    with torch.no_grad():  # strong enough weights that every layer fires within a few steps
        model.convs[0].weight.mul_(3.0)
        model.fc.weight.mul_(4.0)
        model.fc.bias.uniform_(0.4, 1.6, generator=torch.Generator().manual_seed(seed))
    return model


def images(n: int = 6, seed: int = 1, architecture: str = "cnn3") -> torch.Tensor:
    in_channels, size = ARCHITECTURES[architecture]
    return torch.rand(n, in_channels, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("cfg", CONFIGS, ids=str)
def test_fused_step_equals_spikingjelly_neuron(cfg):
    currents = torch.randn(25, 4, 7, generator=torch.Generator().manual_seed(0)) * 1.5
    reference = cfg.build()
    with torch.no_grad():
        expected = reference.multi_step_forward(currents)
    v = cfg.initial_potential(currents[0])
    got = torch.stack([step(v, c, cfg) for c in currents])
    assert torch.equal(got, expected) and 0 < got.mean() < 1


def reference_counts(model: SpikingConvNet, x: torch.Tensor, T: int) -> torch.Tensor:
    """A plain step-by-step simulation with SpikingJelly's own single-step neurons and
    nn.Sequential-style layers, written out independently of the model's code (eval mode)."""
    functional.reset_net(model)
    maps = [bn_affine(bn, None) for bn in model.bns]
    counts = 0
    for _ in range(T):
        x_t = x
        for conv, (scale, shift), pool, neurons in zip(model.convs, maps, model.pools, model.neurons):
            x_t = neurons.single_step_forward(conv(x_t) * scale + shift)
            x_t = torch.nn.functional.avg_pool2d(x_t, 2) if pool else x_t
        counts = counts + model.neurons[-1].single_step_forward(model.fc(x_t.flatten(1)))
    return counts.view(len(x), 10, model.population).sum(-1)  # each class's population


@pytest.mark.parametrize("architecture", ARCHITECTURES)
@pytest.mark.parametrize("cfg", CONFIGS, ids=str)
def test_spatial_forward_matches_step_by_step_simulation(cfg, architecture):
    model = tiny_model(cfg, architecture=architecture)
    x = images(architecture=architecture)
    model.train()
    model(x, 6)  # one training pass so the BN running statistics are not the defaults
    model.eval()
    with torch.no_grad():
        got = model(x, 12, method="spatial")
        expected = reference_counts(model, x, 12)
    assert torch.equal(got, expected)
    assert got.sum() > 0, "the output layer fired"
    assert model.depth == {"cnn3": 3, "vgg7": 8}[architecture]


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_spatial_and_bptt_forward_agree_in_training_mode(architecture):
    model = tiny_model(architecture=architecture)
    x = images(architecture=architecture)
    model.train()
    spatial = model(x, 7, method="spatial")
    bptt = model(x, 7, method="bptt")
    assert torch.equal(spatial.detach(), bptt.detach())


@pytest.mark.parametrize("architecture", ARCHITECTURES)
@pytest.mark.parametrize("method", ["spatial", "bptt"])
def test_gradients_are_finite_and_nonzero_in_every_layer(method, architecture):
    model = tiny_model(architecture=architecture)
    model.train()
    labels = torch.arange(6) % 10
    loss = spike_count_loss(model(images(architecture=architecture), 5, method=method), labels, 5)
    loss.backward()
    for name, param in model.named_parameters():
        assert param.grad is not None, name
        assert torch.isfinite(param.grad).all(), name
        assert param.grad.abs().sum() > 0, name


def test_losses_prefer_the_right_counts():
    labels = torch.tensor([0, 1])
    right = torch.tensor([[8.0, 0.0], [0.0, 8.0]])
    wrong = right.flip(1)
    for kind in ("count_ce", "count_mse"):
        assert spike_count_loss(right, labels, 8, kind) < spike_count_loss(wrong, labels, 8, kind)
    with pytest.raises(ValueError, match="allowed: count_ce, count_mse"):
        spike_count_loss(right, labels, 8, "hinge")


def test_bad_T_and_method_fail_fast():
    model = tiny_model()
    with pytest.raises(ValueError, match="T must be >= 1"):
        model(images(), 0)
    with pytest.raises(ValueError, match="allowed: spatial, bptt"):
        model(images(), 2, method="rtrl")
    with pytest.raises(ValueError, match="allowed: if, lif"):
        NeuronConfig(kind="hh")


def run_pipeline(tmp_path, params, dataset: str = "mnist") -> dict:
    """download -> train_spatial -> simulate_spatial -> eval_spatial on the tiny mirror (conftest.run_direct)."""
    result = run_direct(tmp_path / "out", params, dataset)
    return {**result, "eval": result["metrics"], "png": (tmp_path / "out" / "eval.png").read_bytes()[:8]}


def test_stages_smoke_run_and_rerun_is_identical(mirror, tmp_path):
    params = write_params(tmp_path / "params.yaml", **TINY_SPATIAL)
    first = run_pipeline(tmp_path / "a", params)
    second = run_pipeline(tmp_path / "b", params)
    assert first["png"] == b"\x89PNG\r\n\x1a\n"
    assert list(first["curve"]["T"]) == [1, 2, 3, 4, 5]  # the simulation's horizon
    assert first["eval"]["T_eval"] == 3 and first["eval"]["simulated_T"] == 5
    assert first["eval"]["accuracy"] == first["curve"]["accuracy"][2]
    assert first["eval"]["test_samples"] == 20
    for key in ("accuracy", "latency_s_per_sample", "latency_batch_size", "device"):
        assert key in first["eval"]
    # same seed, same data: byte-identical data file, checkpoint, simulation, tables and plots (the
    # curve CSV holds the measured latency per T, so it is not compared; its accuracies are, below)
    assert first["md5"] == second["md5"]
    for name, tensor in first["state"].items():
        assert torch.equal(tensor, second["state"][name]), name
    assert first["train"]["train_accuracy"] == second["train"]["train_accuracy"]
    assert list(first["curve"]["accuracy"]) == list(second["curve"]["accuracy"])


@pytest.mark.parametrize("dataset", ["cifar10", "mnist", "fashion_mnist"])
def test_deep_network_runs_through_all_stages(mirror, tmp_path, dataset):
    params = write_params(tmp_path / "params.yaml", **{**TINY_SPATIAL, "train_spatial.architecture": "vgg7"})
    result = run_pipeline(tmp_path / "a", params, dataset)
    assert [k for k in result["state"] if k.endswith(".weight") and k.startswith("convs.")] == [
        f"convs.{i}.weight" for i in range(7)]
    assert result["state"]["convs.0.weight"].shape[1] == (3 if dataset == "cifar10" else 1)
    assert list(result["layers"]["layer"]) == [f"sn{i}" for i in range(1, 9)]
    assert result["eval"]["test_samples"] == {"cifar10": 6, "mnist": 20, "fashion_mnist": 10}[dataset]
    assert {k: result["eval"][k] for k in ("pipeline", "dataset", "architecture")} == {
        "pipeline": "direct", "dataset": dataset, "architecture": "vgg7"}
    assert result["eval"]["accuracy_T2"] == result["curve"]["accuracy"][1]


def test_the_small_network_refuses_cifar10_before_any_work(mirror, tmp_path):
    from deepsnn.core import cli
    params = write_params(tmp_path / "params.yaml", **TINY_SPATIAL)
    run_download(tmp_path / "data")
    argv = ["--params", str(params), "--data", str(tmp_path / "data" / "cifar10.pt"), "--model", str(tmp_path / "s.pt"),
            "--curve", str(tmp_path / "c.csv"), "--metrics", str(tmp_path / "m.json")]
    with pytest.raises(SystemExit, match=r"train_spatial.architecture: cnn3 is a network for 28x28 images and this "
                                         r"experiment's data set cifar10 has 32x32; .*\(for cifar10: vgg7\)"):
        cli.run(lambda: train_spatial.main(argv))
    assert not (tmp_path / "s.pt").exists()


def test_eval_reads_any_T_eval_within_the_horizon_off_the_simulation(mirror, tmp_path):
    first = run_pipeline(tmp_path, write_params(tmp_path / "params.yaml", **TINY_SPATIAL))  # horizon 5, T_eval 3
    out = tmp_path / "out"

    def evaluate(T_eval: int) -> tuple[dict, pd.DataFrame]:
        params = write_params(tmp_path / f"params{T_eval}.yaml", **{**TINY_SPATIAL, "T_eval": T_eval})
        eval_spatial.main(["--params", str(params), "--data", str(out / "mnist.pt"), "--model", str(out / "spatial.pt"),
                           "--simulation", str(out / "sim.pt")] + eval_args(out))
        return json.loads((out / "eval.json").read_text()), pd.read_csv(out / "eval.csv")

    metrics, curve = evaluate(5)
    assert metrics["T_eval"] == 5 and metrics["accuracy"] == curve["accuracy"][4]
    assert list(curve["accuracy"]) == list(first["curve"]["accuracy"])
    assert metrics["synops_per_sample"] == pytest.approx(curve["synops_per_sample"][4], rel=1e-4)


def test_eval_reports_spike_statistics_and_energy(mirror, tmp_path):
    result = run_pipeline(tmp_path, write_params(tmp_path / "params.yaml", **TINY_SPATIAL))
    metrics, layers = result["eval"], result["layers"]
    assert list(layers["layer"]) == ["sn1", "sn2", "sn3"]
    assert layers["neurons"].tolist()[2] == 10 * TINY_SPATIAL.get("train_spatial.output_population", 10)
    assert ((layers["firing_rate"] >= 0) & (layers["firing_rate"] <= 1)).all()
    assert metrics["synops_per_sample"] == pytest.approx(layers["synops_per_sample"].sum(), rel=1e-4)
    assert layers["synops_per_sample"].tolist()[2] == 0  # output spikes are read out, they drive no synapses
    assert 0 < metrics["energy_ratio"] == pytest.approx(
        metrics["energy_uj_per_sample"] / metrics["ann_energy_uj_per_sample"], rel=1e-3)
    assert metrics["chip_energy_uj_per_sample"] == pytest.approx(result["curve"]["chip_energy_uj_per_sample"][2], rel=1e-4)
    assert (tmp_path / "out" / "eval_energy.png").read_bytes()[:4] == b"\x89PNG"
