"""The low-T correction of converted SNNs (per-channel initial potentials): it leaves a matching SNN
as it is, lowers the rate gap to the ANN on unseen images, is deterministic, and fails early on bad input."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from conftest import TINY_CONVERSION, run_download, write_params
from deepsnn.conversion.ann.networks import QCFS, VGG
from deepsnn.conversion.calibration import activation_layers, calibrate_thresholds
from deepsnn.conversion.chain_simulator import ChainSimulator
from deepsnn.conversion.correction import ann_channel_means, correct_initial_potentials, rate_gaps
from deepsnn.conversion.snn import convert, reference_step_outputs, relu_network, set_initial_potentials
from deepsnn.core.params import ParamsError
from stages import calibrate, convert as convert_stage, train_ann


def exact_network() -> nn.Sequential:
    """Conv -> QCFS -> Linear -> QCFS -> Linear whose activations are exactly 0 or the clip value on
    0/1 images: each neuron's input is 0 or its threshold at every step, so its SNN fires exactly as
    the ANN asks (always or never) from t=1 on."""
    model = nn.Sequential(nn.Conv2d(1, 2, 1), QCFS(4, 1.0), nn.Flatten(), nn.Linear(2 * 4 * 4, 3), QCFS(4, 1.0),
                          nn.Linear(3, 2))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([1.0, -1.0]).view(2, 1, 1, 1))  # x and 1 - x
        model[0].bias.copy_(torch.tensor([0.0, 1.0]))
        model[3].weight.zero_()
        model[3].weight[0, 0] = model[3].weight[1, 17] = model[3].weight[2, 5] = 1.0  # each copies one pixel
        model[3].bias.zero_()
    return model.eval()


def small_qcfs_vgg(seed: int) -> VGG:
    """A 3-conv VGG with QCFS, random weights, BatchNorm statistics of random images, and clip values
    at each layer's 99th percentile (so that layers clip, as trained ones do)."""
    torch.manual_seed(seed)
    model = VGG(config=[64, 64, "A", 128, "A"], width=1 / 8, act="qcfs", image_size=8)
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(64, 3, 8, 8))
    model.eval()
    x = torch.randn(256, 3, 8, 8, generator=torch.Generator().manual_seed(seed))
    for t, (_, m) in zip(calibrate_thresholds(relu_network(model), [x], "percentile", percentile=99.0),
                         activation_layers(model)):
        m.threshold.data.fill_(t.threshold)
    return model


def corrected(model: nn.Module, x: torch.Tensor, T: int = 4):
    thresholds = calibrate_thresholds(model, [], "qcfs")
    snn = convert(model, thresholds)
    simulator = ChainSimulator(snn)
    potentials, report = correct_initial_potentials(simulator, ann_channel_means(model, thresholds, x), x, T)
    return snn, simulator, potentials, report


def test_an_snn_that_matches_its_ann_is_left_as_it_is():
    model = exact_network()
    x = torch.randint(0, 2, (32, 1, 4, 4), generator=torch.Generator().manual_seed(0)).float()
    snn, simulator, potentials, report = corrected(model, x)
    assert report.error_before == [0.0, 0.0]  # the rates already match the ANN at every t
    assert len(potentials) == 2
    assert all(torch.equal(p, torch.full_like(p, 0.5)) for p in potentials.values())  # half threshold, as before
    plain = ChainSimulator(convert(model, calibrate_thresholds(model, [], "qcfs")))
    assert torch.equal(simulator.step_outputs(x, 6), plain.step_outputs(x, 6))
    assert torch.allclose(simulator.step_outputs(x, 6).mean(0), model(x))  # and it is the ANN at every T


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_correction_lowers_the_rate_gap_on_unseen_images(seed):
    model = small_qcfs_vgg(seed)
    g = torch.Generator().manual_seed(100 + seed)
    fit_images, unseen = torch.randn(256, 3, 8, 8, generator=g), torch.randn(256, 3, 8, 8, generator=g)
    thresholds = calibrate_thresholds(model, [], "qcfs")
    _, simulator, potentials, report = corrected(model, fit_images)
    assert sum(report.error_after) < 0.85 * sum(report.error_before)  # on the images it was fitted on (0.63-0.72 here)
    assert any(not torch.equal(p, torch.full_like(p, 0.5)) for p in potentials.values())
    targets = ann_channel_means(model, thresholds, unseen)
    plain = ChainSimulator(convert(model, thresholds))
    before, after = rate_gaps(plain, targets, unseen, 4), rate_gaps(simulator, targets, unseen, 4)
    assert sum(after) < 0.85 * sum(before), (before, after)  # 0.62-0.71 for seeds 0-2
    # at T=1 the SNN's outputs are least biased against the ANN's: each class's mean over the images
    ann = model(unseen)
    bias = {name: (s.step_outputs(unseen, 1)[0] - ann).mean(0).abs().mean().item()
            for name, s in (("plain", plain), ("corrected", simulator))}
    assert bias["corrected"] < 0.6 * bias["plain"], bias  # 0.36-0.44 for seeds 0-2


def test_correction_is_deterministic_and_the_reference_loop_agrees():
    model = small_qcfs_vgg(0)
    x = torch.randn(128, 3, 8, 8, generator=torch.Generator().manual_seed(7))
    snn, simulator, first, _ = corrected(copy.deepcopy(model), x)
    _, _, second, _ = corrected(copy.deepcopy(model), x)
    assert first.keys() == second.keys()
    assert all(torch.equal(first[name], second[name]) for name in first)
    # SpikingJelly's own loop with the per-channel potentials set on its IF nodes gives the same outputs
    set_initial_potentials(snn, first)
    assert torch.equal(reference_step_outputs(snn, x[:16], 5), simulator.step_outputs(x[:16], 5))
    some = first[next(iter(first))]
    with pytest.raises(ValueError, match="features.0 is Conv2d, not an IF node"):
        set_initial_potentials(snn, {"features.0": some})
    with pytest.raises(ValueError, match="the SNN has no layer features.99"):
        set_initial_potentials(snn, {"features.99.if_node": some})


def test_bad_correction_params_fail_before_any_work(mirror, tmp_path):
    from conftest import committed_params
    from deepsnn.conversion.params import CONVERSION
    from deepsnn.core.params import validate_params
    for key, value, message in (("correction", "cos", r"convert.correction: 'cos' is not allowed; allowed: none, potential"),
                                ("correction_T", 0, r"convert.correction_T: 0 is not allowed; allowed: integers in \[1, inf\] or auto"),
                                ("correction_images", 0, r"convert.correction_images: 0 is out of range")):
        params = committed_params()
        params["convert"][key] = value
        with pytest.raises(ParamsError, match=message):
            validate_params(params, CONVERSION)
    params = write_params(tmp_path / "params.yaml", **{**TINY_CONVERSION, "convert.correction_images": 10 ** 6})
    out = tmp_path / "out"
    p = ["--params", str(params)]
    run_download(out)
    data, ann, th = str(out / "cifar10.pt"), str(out / "ann.pt"), str(out / "t.csv")
    train_ann.main(p + ["--data", data, "--model", ann, "--curve", str(out / "c.csv"), "--metrics", str(out / "m.json")])
    calibrate.main(p + ["--data", data, "--model", ann, "--thresholds", th, "--metrics", str(out / "k.json")])
    with pytest.raises(ParamsError, match=r"convert.correction_images: 1000000 is more than the \d+ training images"):
        convert_stage.main(p + ["--data", data, "--model", ann, "--thresholds", th, "--snn", str(out / "snn.pt"),
                                "--metrics", str(out / "convert.json")])
    assert not (out / "snn.pt").exists()


@pytest.mark.parametrize("seed", [0, 1])
def test_auto_keeps_a_correction_only_where_no_checked_T_is_worse_on_held_out_images(seed):
    from deepsnn.conversion.correction import CANDIDATE_T, CHECKED_T, choose_correction

    model = small_qcfs_vgg(seed)
    thresholds = calibrate_thresholds(model, [], "qcfs")
    simulator = ChainSimulator(convert(model, thresholds))
    prepare = lambda u: (u.float() - 127.5) / 64.0
    held = torch.randint(0, 256, (128, 3, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed + 7))
    labels = model(prepare(held)).argmax(1)
    fit = torch.randn(128, 3, 8, 8, generator=torch.Generator().manual_seed(seed + 3))
    chosen = choose_correction(model, thresholds, simulator, fit, "auto", held, labels, prepare)
    accuracy = chosen.held_out
    assert set(accuracy) == {"none", *(f"T={T}" for T in CANDIDATE_T)}
    safe = [T for T in CANDIDATE_T if all(accuracy[f"T={T}"][t] >= accuracy["none"][t] for t in CHECKED_T)]
    if chosen.correction_T is None:
        assert safe == [] and chosen.potentials is None
    else:
        assert chosen.correction_T in safe
        assert all(accuracy[f"T={chosen.correction_T}"][t] >= accuracy["none"][t] for t in CHECKED_T)
        # the simulator is left with the kept potentials
        from deepsnn.conversion.chain_simulator import IFLayer
        layers = [layer for layer in simulator.suffix if isinstance(layer, IFLayer)]
        assert all(torch.equal(layer.initial, chosen.potentials[s.name])
                   for layer, s in zip(layers, simulator.spiking_layers))
