"""Direct training: exact forward, live gradients, determinism, fast failure, stage smoke runs."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
from spikingjelly.activation_based import functional

from conftest import TINY_SPATIAL, eval_args, md5, run_download, write_params
from deepsnn.core.neurons import NeuronConfig, step
from deepsnn.direct.spatial import SpikingConvNet, architecture_layers, bn_affine, spike_count_loss
from stages import download, eval_spatial, train_spatial

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
    """download -> train_spatial -> eval_spatial on the tiny mirror; returns the outputs."""
    out = tmp_path / "out"
    run_download(out)
    common = ["--params", str(params), "--data", str(out / f"{dataset}.pt"), "--model", str(out / "spatial.pt")]
    train_spatial.main(common + ["--curve", str(out / "train.csv"), "--metrics", str(out / "train.json")])
    eval_spatial.main(common + eval_args(out))
    return {"train": json.loads((out / "train.json").read_text()), "eval": json.loads((out / "eval.json").read_text()),
            "curve": pd.read_csv(out / "eval.csv"), "state": torch.load(out / "spatial.pt")["state_dict"],
            "png": (out / "eval.png").read_bytes()[:8],
            "md5": {path.name: md5(path) for path in (out / f"{dataset}.pt", out / "spatial.pt", out / "eval.csv",
                                                      out / "eval_layers.csv", out / "eval.png", out / "eval_energy.png")}}


def test_stages_smoke_run_and_rerun_is_identical(mirror, tmp_path):
    params = write_params(tmp_path / "params.yaml", **TINY_SPATIAL)
    first = run_pipeline(tmp_path / "a", params)
    second = run_pipeline(tmp_path / "b", params)
    assert first["png"] == b"\x89PNG\r\n\x1a\n"
    assert list(first["curve"]["T"]) == [1, 2, 3, 4, 5]  # max(horizon=5, T_eval=3)
    assert first["eval"]["T_eval"] == 3
    assert first["eval"]["accuracy"] == first["curve"]["accuracy"][2]
    assert first["eval"]["test_samples"] == 20
    for key in ("accuracy", "latency_s_per_sample", "latency_batch_size", "device"):
        assert key in first["eval"]
    # same seed, same data: byte-identical data file, checkpoint, tables and plots (timings may differ,
    # so the per-T latency column is not compared; the curve CSV holds it, hence the accuracies below)
    assert {k: v for k, v in first["md5"].items() if k != "eval.csv"} == {
        k: v for k, v in second["md5"].items() if k != "eval.csv"}
    for name, tensor in first["state"].items():
        assert torch.equal(tensor, second["state"][name]), name
    assert first["train"]["train_accuracy"] == second["train"]["train_accuracy"]
    assert list(first["curve"]["accuracy"]) == list(second["curve"]["accuracy"])


def test_eval_horizon_extends_to_T_eval(mirror, tmp_path):
    params = write_params(tmp_path / "params.yaml", **{**TINY_SPATIAL, "T_eval": 9})
    result = run_pipeline(tmp_path / "a", params)
    assert len(result["curve"]) == 9 and result["eval"]["T_eval"] == 9


@pytest.mark.parametrize("dataset", ["cifar10", "mnist", "fashion_mnist"])
def test_deep_network_runs_through_both_stages(mirror, tmp_path, dataset):
    params = write_params(tmp_path / "params.yaml", **{**TINY_SPATIAL, "train_spatial.architecture": "vgg7",
                                                       "train_spatial.dataset": dataset})
    result = run_pipeline(tmp_path / "a", params, dataset)
    assert [k for k in result["state"] if k.endswith(".weight") and k.startswith("convs.")] == [
        f"convs.{i}.weight" for i in range(7)]
    assert result["state"]["convs.0.weight"].shape[1] == (3 if dataset == "cifar10" else 1)
    layers = pd.read_csv(tmp_path / "a" / "out" / "eval_layers.csv")
    assert list(layers["layer"]) == [f"sn{i}" for i in range(1, 9)]
    assert result["eval"]["test_samples"] == {"cifar10": 6, "mnist": 20, "fashion_mnist": 10}[dataset]
    assert {k: result["eval"][k] for k in ("pipeline", "dataset", "architecture")} == {
        "pipeline": "direct", "dataset": dataset, "architecture": "vgg7"}
    assert result["eval"]["accuracy_T2"] == result["curve"]["accuracy"][1]


def test_the_small_network_refuses_cifar10_before_any_work(mirror, tmp_path):
    from deepsnn.core import cli
    params = write_params(tmp_path / "params.yaml", **{**TINY_SPATIAL, "train_spatial.dataset": "cifar10"})
    argv = ["--params", str(params), "--data", str(tmp_path / "missing.pt"), "--model", str(tmp_path / "s.pt"),
            "--curve", str(tmp_path / "c.csv"), "--metrics", str(tmp_path / "m.json")]
    with pytest.raises(SystemExit, match=r"train_spatial.architecture: cnn3 is a network for 28x28 images and "
                                         r"train_spatial.dataset cifar10 has 32x32; .*\(for cifar10: vgg7\)"):
        cli.run(lambda: train_spatial.main(argv))
    assert list(tmp_path.glob("*.pt")) == []


def test_other_mnist_family_sets_work_unchanged(mirror, tmp_path):
    params = write_params(tmp_path / "params.yaml", **{**TINY_SPATIAL, "train_spatial.dataset": "fashion_mnist"})
    out = tmp_path / "out"
    run_download(out)
    assert (out / "fashion_mnist.pt").exists() and not (out / "mnist.pt").exists()
    common = ["--params", str(params), "--data", str(out / "fashion_mnist.pt"), "--model", str(out / "m.pt")]
    train_spatial.main(common + ["--curve", str(out / "t.csv"), "--metrics", str(out / "t.json")])
    eval_spatial.main(common + eval_args(out, "e"))
    assert json.loads((out / "e.json").read_text())["test_samples"] == 10


def test_eval_reads_T_eval_off_the_stored_simulation_and_extends_it_beyond(mirror, tmp_path):
    first = run_pipeline(tmp_path, write_params(tmp_path / "params.yaml", **TINY_SPATIAL))  # horizon 5, T_eval 3
    out = tmp_path / "out"
    assert first["eval"]["simulation_reused"] is False

    def evaluate(T_eval: int) -> tuple[dict, pd.DataFrame]:
        params = write_params(tmp_path / f"params{T_eval}.yaml", **{**TINY_SPATIAL, "T_eval": T_eval})
        eval_spatial.main(["--params", str(params), "--data", str(out / "mnist.pt"), "--model", str(out / "spatial.pt")]
                          + eval_args(out))
        return json.loads((out / "eval.json").read_text()), pd.read_csv(out / "eval.csv")

    metrics, curve = evaluate(4)  # within the horizon: nothing simulated again
    assert metrics["simulation_reused"] is True and metrics["T_eval"] == 4
    assert list(curve["accuracy"]) == list(first["curve"]["accuracy"])
    assert metrics["accuracy"] == curve["accuracy"][3]
    assert metrics["synops_per_sample"] == pytest.approx(curve["synops_per_sample"][3], rel=1e-4)

    metrics, curve = evaluate(7)  # beyond it: simulated again, to 7 steps; the first 5 agree
    assert metrics["simulation_reused"] is False and len(curve) == 7
    assert list(curve["accuracy"][:5]) == list(first["curve"]["accuracy"])
    assert list(curve["synops_per_sample"][:5]) == list(first["curve"]["synops_per_sample"])
    assert evaluate(6)[0]["simulation_reused"] is True

    torch.save({**torch.load(out / "spatial.pt"), "note": "another model"}, out / "spatial.pt")
    assert evaluate(6)[0]["simulation_reused"] is False  # the model file changed


def test_eval_reports_spike_statistics_and_energy(mirror, tmp_path):
    result = run_pipeline(tmp_path, write_params(tmp_path / "params.yaml", **TINY_SPATIAL))
    metrics, layers = result["eval"], pd.read_csv(tmp_path / "out" / "eval_layers.csv")
    assert list(layers["layer"]) == ["sn1", "sn2", "sn3"]
    assert layers["neurons"].tolist()[2] == 10 * TINY_SPATIAL.get("train_spatial.output_population", 10)
    assert ((layers["firing_rate"] >= 0) & (layers["firing_rate"] <= 1)).all()
    assert metrics["synops_per_sample"] == pytest.approx(layers["synops_per_sample"].sum(), rel=1e-4)
    assert layers["synops_per_sample"].tolist()[2] == 0  # output spikes are read out, they drive no synapses
    assert 0 < metrics["energy_ratio"] == pytest.approx(
        metrics["energy_uj_per_sample"] / metrics["ann_energy_uj_per_sample"], rel=1e-3)
    assert (tmp_path / "out" / "eval_energy.png").read_bytes()[:4] == b"\x89PNG"
