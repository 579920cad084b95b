"""Spike statistics and energy: SynOps by hand, against SpikingJelly's counter, zero input, linearity in T."""

from __future__ import annotations

import pytest
import torch
from spikingjelly.activation_based.op_counter import DispatchCounterMode, SynOpCounter
from torch import nn

from deepsnn.conversion.calibration import calibrate_thresholds
from deepsnn.conversion.snn import SpikingOptions, convert
from deepsnn.evaluation.energy import (ENERGY_AC_PJ, ENERGY_MAC_PJ, SpikeCounter, SpikeStats, SpikingLayer, count_macs,
                            fan_out)
from deepsnn.core.neurons import NeuronConfig, step
from deepsnn.conversion.chain_simulator import ChainSimulator
from deepsnn.conversion.ann.networks import VGG


def synops_of_one_step(downstream: list[nn.Module], spikes: torch.Tensor) -> float:
    counter = SpikeCounter([SpikingLayer("layer", downstream)], T=1)
    counter.record(0, spikes)
    counter.end_batch()
    return float(counter.state()["synops"][0, 0])


def spike_map(shape: tuple[int, ...], positions: list[tuple[int, ...]]) -> torch.Tensor:
    spikes = torch.zeros(shape)
    for p in positions:
        spikes[p] = 1.0
    return spikes


def test_conv_synops_equal_the_count_by_hand():
    conv = nn.Conv2d(1, 2, 3, padding=1)
    # On a 4x4 map a 3x3 kernel with zero padding reaches 4 outputs from a corner, 6 from an
    # edge and 9 from the interior, each in 2 output channels: 8 + 12 + 18 synapses.
    spikes = spike_map((1, 1, 4, 4), [(0, 0, 0, 0), (0, 0, 0, 1), (0, 0, 1, 1)])
    assert synops_of_one_step([conv], spikes) == 8 + 12 + 18
    assert fan_out([conv], (1, 4, 4))[0].tolist() == [[8, 12, 12, 8], [12, 18, 18, 12], [12, 18, 18, 12],
                                                      [8, 12, 12, 8]]
    # a second sample in the batch adds its own spikes: one more interior spike
    batch = torch.cat([spikes, spike_map((1, 1, 4, 4), [(0, 0, 2, 2)])])
    assert synops_of_one_step([conv], batch) == 38 + 18


def test_linear_and_pooled_conv_synops_equal_the_count_by_hand():
    linear = nn.Linear(6, 5)
    assert synops_of_one_step([linear], spike_map((1, 6), [(0, 0), (0, 2), (0, 5)])) == 3 * 5
    # spike -> 2x2 average pool -> 3x3 conv (pad 1) on the pooled 2x2 map: every one of the
    # 4 output positions sees each pooled input, in 3 output channels: 12 synapses per spike
    pooled_conv = [nn.AvgPool2d(2), nn.Conv2d(1, 3, 3, padding=1)]
    spikes = spike_map((1, 1, 4, 4), [(0, 0, 0, 0), (0, 0, 3, 3)])
    assert synops_of_one_step(pooled_conv, spikes) == 2 * 12
    # spike -> pool -> flatten -> linear: one pooled input, 7 synapses
    pooled_linear = [nn.AvgPool2d(2), nn.Flatten(), nn.Linear(2 * 2 * 2, 7)]
    assert synops_of_one_step(pooled_linear, spike_map((1, 2, 4, 4), [(0, 1, 2, 3)])) == 7


@pytest.mark.parametrize("layer", [nn.Conv2d(3, 5, 3, padding=1), nn.Conv2d(2, 4, 3, stride=2),
                                   nn.Conv2d(4, 4, 3, padding=1, groups=2), nn.Linear(20, 9)], ids=repr)
def test_synops_match_spikingjellys_op_counter(layer):
    shape = (6, 20) if isinstance(layer, nn.Linear) else (6, layer.in_channels, 7, 7)
    spikes = (torch.rand(shape, generator=torch.Generator().manual_seed(0)) < 0.3).float()
    reference = SynOpCounter()
    with DispatchCounterMode([reference]):
        layer(spikes)
    assert spikes.sum() > 0
    assert synops_of_one_step([layer], spikes) == reference.get_total()


def test_zero_spikes_give_zero_synops():
    assert synops_of_one_step([nn.Conv2d(2, 3, 3, padding=1)], torch.zeros(4, 2, 5, 5)) == 0


def test_synops_grow_linearly_in_T_for_a_constant_rate():
    conv = nn.Conv2d(2, 3, 3, padding=1)
    T, current = 12, torch.full((4, 2, 5, 5), 1.0)  # an IF neuron fed its threshold fires every step
    v = NeuronConfig().initial_potential(current)
    counter = SpikeCounter([SpikingLayer("if", [conv])], T)
    for _ in range(T):
        counter.record(0, step(v, current, NeuronConfig()))
    counter.end_batch()
    stats = SpikeStats.from_state(counter.state(), analog_macs=0, ann_macs=1)
    per_step = float(fan_out([conv], (2, 5, 5)).sum())
    assert stats.synops_per_sample(T).tolist() == [per_step * t for t in range(1, T + 1)]
    assert stats.layer_table(T)[0]["firing_rate"] == 1.0


def test_zero_image_through_a_bias_free_converted_vgg_gives_zero_spikes_and_synops():
    torch.manual_seed(0)
    model = VGG(width=1 / 16).eval()
    for m in model.modules():
        if isinstance(m, nn.Linear):
            nn.init.zeros_(m.bias)
    calibration = torch.randn(8, 3, 32, 32)
    simulator = ChainSimulator(convert(model, calibrate_thresholds(model, [calibration], "max"), SpikingOptions()))
    counter = SpikeCounter(simulator.spiking_layers, T=6)
    simulator.step_outputs(torch.zeros(2, 3, 32, 32), 6, counter=counter)
    state = counter.state()
    assert state["synops"].sum() == 0 and state["spikes"].sum() == 0
    assert len(simulator.spiking_layers) == 15 and all(n > 0 for n in counter.neurons)
    # the same network on real input does spike, and each image's counts add up to the layers' totals
    simulator.step_outputs(calibration[:2], 6, counter=counter)
    state = counter.state()
    assert state["synops"].sum() > 0 and state["sample_synops"].shape == (6, 4)
    assert state["sample_synops"][:, :2].sum() == 0
    assert state["sample_synops"].sum() == state["synops"].sum() and state["sample_spikes"].sum() == state["spikes"].sum()


def test_macs_and_energy():
    conv, linear = nn.Conv2d(3, 4, 3, padding=1), nn.Linear(10, 7)
    assert count_macs(conv, torch.zeros(2, 3, 5, 5)) == 4 * 5 * 5 * 3 * 9
    assert count_macs(nn.Sequential(nn.Flatten(), linear), torch.zeros(2, 10)) == 70
    counter = SpikeCounter([SpikingLayer("l", [linear])], T=2)
    for _ in range(2):
        counter.record(0, torch.ones(1, 10))
    counter.end_batch()
    stats = SpikeStats.from_state(counter.state(), analog_macs=100, ann_macs=1000)
    m = stats.metrics(T=2)
    assert m["synops_per_sample"] == 2 * 10 * 7
    assert m["energy_uj_per_sample"] == pytest.approx((100 * ENERGY_MAC_PJ + 140 * ENERGY_AC_PJ) * 1e-6, abs=1e-4)
    assert m["ann_energy_uj_per_sample"] == pytest.approx(1000 * ENERGY_MAC_PJ * 1e-6, abs=1e-4)
    assert m["mean_firing_rate"] == 1.0


def test_spike_counts_do_not_depend_on_the_memory_layout():
    spikes = (torch.rand(6, 3, 5, 7, generator=torch.Generator().manual_seed(0)) < 0.3).float()
    conv = nn.Conv2d(3, 4, 3, padding=1)
    counts = []
    for tensor in (spikes, spikes.contiguous(memory_format=torch.channels_last)):
        counter = SpikeCounter([SpikingLayer("l", [conv])], T=1)
        counter.record(0, tensor)
        counter.end_batch()
        state = counter.state()
        counts.append((state["spikes"].item(), state["synops"].item(), state["sample_synops"].tolist()))
    assert counts[0] == counts[1] and counts[0][0] == spikes.sum().item()


def test_spikes_after_an_images_exit_are_not_counted():
    linear = nn.Linear(3, 2)
    counter = SpikeCounter([SpikingLayer("l", [linear])], T=3)
    # image 0 fires one neuron every step, image 1 all three neurons every step
    for _ in range(3):
        counter.record(0, torch.tensor([[1.0, 0.0, 0.0], [1.0, 1.0, 1.0]]))
    counter.end_batch()
    stats = SpikeStats.from_state(counter.state(), analog_macs=0, ann_macs=1)
    spikes, synops = stats.until(torch.tensor([1, 2]))  # image 0 exits after step 1, image 1 after step 2
    assert spikes.tolist() == [1, 6] and synops.tolist() == [2, 12]
    spikes, synops = stats.until(torch.tensor([3, 3]))
    assert spikes.tolist() == [3, 9] and synops.sum() == stats.synops.sum()
