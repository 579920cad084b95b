"""Spike-count fine-tuning of a converted SNN at low T (convert.finetune): nothing changes without
steps, it lowers a small random network's low-T loss against its ANN, it is deterministic, and bad
params fail before any work."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from conftest import TINY_CONVERSION, committed_params, run_conversion, write_params
from deepsnn.conversion.calibration import calibrate_thresholds
from deepsnn.conversion.chain_simulator import ChainSimulator
from deepsnn.conversion.finetune import finetune
from deepsnn.conversion.params import CONVERSION
from deepsnn.conversion.snn import convert
from deepsnn.core.params import ParamsError, validate_params
from test_correction import small_qcfs_vgg


def images(n: int, seed: int) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def prepare(x: torch.Tensor) -> torch.Tensor:
    return (x.float() - 127.5) / 64.0


def network(seed: int = 0):
    ann = small_qcfs_vgg(seed)
    simulator = ChainSimulator(convert(ann, calibrate_thresholds(ann, [], "qcfs")))
    return ann, simulator


@torch.no_grad()
def low_T_loss(ann, simulator, x: torch.Tensor, T: int) -> float:
    """Cross-entropy of the SNN's T-step mean output against the ANN's own predictions."""
    return float(F.cross_entropy(simulator.step_outputs(x, T).mean(0), ann(x).argmax(1)))


def tune(simulator, ann, seen: int, seed: int = 0):
    train = images(512, 1)
    labels = ann(prepare(train)).argmax(1).detach()  # the ANN's answers: the SNN learns to give them at low T
    return finetune(simulator, train, labels, prepare, [1, 2], seen, 32, 3e-3, 0, False,
                    torch.Generator().manual_seed(seed))


def weights(simulator) -> dict[str, torch.Tensor]:
    return {f"{i}.{k}": v.clone() for i, m in enumerate([*simulator.prefix, *simulator.suffix])
            if isinstance(m, torch.nn.Module) for k, v in m.state_dict().items()}


def test_no_steps_leave_the_snn_unchanged():
    ann, simulator = network()
    before = weights(simulator)
    report = tune(simulator, ann, seen=0)
    assert report.steps == 0
    after = weights(simulator)
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)


def test_it_lowers_the_low_T_loss_of_a_small_random_network():
    ann, simulator = network()
    unseen = prepare(images(256, 2))
    before = {T: low_T_loss(ann, simulator, unseen, T) for T in (1, 2)}
    report = tune(simulator, ann, seen=2048)
    after = {T: low_T_loss(ann, simulator, unseen, T) for T in (1, 2)}
    assert report.steps == 64 and report.last_loss < report.first_loss
    for T in (1, 2):
        assert after[T] < 0.8 * before[T], (before, after)


def test_it_is_deterministic():
    runs = []
    for _ in range(2):
        ann, simulator = network()
        tune(simulator, ann, seen=256)
        runs.append(weights(simulator))
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])
    ann, simulator = network()
    tune(simulator, ann, seen=256, seed=1)  # another seed shuffles and draws T otherwise
    assert not all(torch.equal(runs[0][k], v) for k, v in weights(simulator).items())


@pytest.mark.parametrize("key, value, expected", [
    ("finetune", "stdb", r"convert.finetune: 'stdb' is not allowed; allowed: none, spike_count"),
    ("finetune_T", [0, 2], r"convert.finetune_T"),
    ("finetune_T", [], r"convert.finetune_T"),
    ("finetune_images", -1, r"convert.finetune_images: -1 is out of range"),
    ("finetune_lr", 0, r"convert.finetune_lr: 0"),
])
def test_bad_params_fail_before_any_work(key, value, expected):
    params = committed_params()
    params["convert"][key] = value
    with pytest.raises(ParamsError, match=expected):
        validate_params(params, CONVERSION)


def test_the_stage_with_none_or_no_images_stores_the_snn_as_converted(mirror, tmp_path):
    runs = {}
    for name, overrides in (("none", {"convert.finetune": "none"}), ("zero", {"convert.finetune_images": 0}),
                            ("tuned", {"convert.finetune_images": 16})):
        params = write_params(tmp_path / f"{name}.yaml", **{**TINY_CONVERSION, **overrides})
        result = run_conversion(tmp_path / name, params)
        runs[name] = (torch.load(tmp_path / name / "snn.pt")["state_dict"], result["convert"])
    none, zero, tuned = (runs[n][0] for n in ("none", "zero", "tuned"))
    assert all(torch.equal(none[k], zero[k]) for k in none)
    assert not all(torch.equal(none[k], tuned[k]) for k in none)  # the stage does fine-tune with images
    assert "finetune_steps" not in runs["none"][1] and runs["tuned"][1]["finetune_steps"] == 2  # 16 images, batch 8
