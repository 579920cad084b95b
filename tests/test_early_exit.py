"""Per-image early exit on the summed output's margin, and few-spikes coding of a QCFS network."""

from __future__ import annotations

import torch

from deepsnn.conversion.ann.networks import QCFS
from deepsnn.conversion.calibration import calibrate_thresholds
from deepsnn.conversion.few_spikes import FewSpikesSimulator, digit_weights, few_spikes_layer
from deepsnn.conversion.snn import convert
from deepsnn.evaluation.early_exit import (candidate_margins, choose_margin, early_exit, exit_predictions, exit_steps,
                                           margins)
from test_correction import small_qcfs_vgg


def summed(step_outputs: torch.Tensor) -> torch.Tensor:
    return step_outputs.cumsum(0)


def random_outputs(T: int = 6, N: int = 50, classes: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    steps = torch.rand(T, N, classes, generator=g)
    return summed(steps), torch.randint(0, classes, (N,), generator=g)


def test_an_unreachable_margin_is_the_fixed_T_result():
    outputs, labels = random_outputs()
    result = early_exit(outputs, labels, float("inf"), T_max=5)
    assert result.mean_T == 5.0 and result.p95_T == 5.0 and bool((result.exits == 5).all())
    fixed = outputs[4].argmax(-1).eq(labels).double().mean().item() * 100
    assert result.accuracy == fixed


def test_an_output_decided_at_once_exits_at_t_1():
    # class 2 leads by 3 from the first step on; the exit takes the prediction of that step
    steps = torch.zeros(8, 5, 4)
    steps[:, :, 2] = 3.0
    steps[1:, :, 0] = 10.0  # later steps would change the answer: an exited image never sees them
    result = early_exit(summed(steps), torch.full((5,), 2), margin=3.0, T_max=8)
    assert result.exits.tolist() == [1] * 5 and result.accuracy == 100.0 and result.mean_T == 1.0


def test_exit_steps_are_the_first_t_the_margin_is_reached():
    lead = torch.tensor([[0.0, 1.0, 0.0], [2.0, 1.0, 0.5], [3.0, 3.0, 0.5]])  # [T, N]
    assert exit_steps(lead, 2.0, 3).tolist() == [2, 3, 3]  # image 2 never reaches it: T_max
    assert exit_steps(lead, 2.0, 2).tolist() == [2, 2, 2]
    outputs = torch.tensor([[[1.0, 4.0, 2.0]]])
    assert margins(outputs).item() == 2.0


def test_the_margin_keeps_the_reference_T_answers_within_the_tolerance():
    outputs, _ = random_outputs(T=8, N=400, seed=1)
    reference = outputs[3].argmax(-1)

    def changed(margin: float) -> float:  # percent that exit before T=4 with another answer than T=4's
        exits = exit_steps(margins(outputs), margin, 8)
        return 100 * ((exits < 4) & exit_predictions(outputs, exits).ne(reference)).double().mean().item()

    margin = choose_margin(outputs, T_max=8, reference_T=4, tolerance=0.5)
    assert changed(margin) <= 0.5 < changed(max(m for m in candidate_margins(outputs, 8) if m < margin))
    assert choose_margin(outputs, T_max=8, reference_T=4, tolerance=100.0) == 0.0  # any change will do: t=1


def test_the_margin_needs_no_labels_and_ignores_how_easy_the_images_are():
    # answers that settle at t=3: at t=1 and 2 they differ from the reference T=4 for half the images
    steps = torch.zeros(4, 100, 2)
    steps[:, :, 0] = 1.0
    steps[2:, :50, 1] = 3.0  # images 0..49 switch to class 1 from t=3 on
    outputs = summed(steps)
    margin = choose_margin(outputs, T_max=4, reference_T=4, tolerance=1.0)
    assert exit_steps(margins(outputs), margin, 4)[:50].min() >= 3  # they wait for their final answer


def test_few_spikes_digits_reproduce_the_qcfs_quantiser_exactly():
    for levels in (1, 2, 4, 8, 16):
        assert sum(digit_weights(levels)) == levels
        qcfs = QCFS(levels, threshold=1.0)
        current = torch.linspace(-0.5, 1.5, 2001)  # in clips: below zero to above the clip
        coded, spike_maps = few_spikes_layer(current, levels)
        assert torch.equal(coded, qcfs(current)), levels  # exact: the digits sum to the integer level
        assert all(set(s.unique().tolist()) <= {0.0, 1.0} for s in spike_maps)  # one spike a step at most
    assert digit_weights(4) == [2, 1, 1]


def test_few_spikes_network_computes_its_qcfs_ann():
    ann = small_qcfs_vgg(0)
    snn = convert(ann, calibrate_thresholds(ann, [], "qcfs"))
    coded = FewSpikesSimulator(snn, levels=4)
    x = torch.randn(64, 3, 8, 8, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        expected = ann(x)
    got = coded.outputs(x)
    assert torch.allclose(got, expected, atol=1e-4), (got - expected).abs().max()
    assert coded.T == 3 * len(coded.spiking_layers)  # every layer's window counts in T
