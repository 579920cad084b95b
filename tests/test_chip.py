"""The SNNs on SANA-FE's Loihi model: a hand-built network's spikes and events worked out by hand,
the mapping of a trained network checked against the project's own simulator, and what does not map."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from conftest import TINY_SPATIAL, run_download, write_params
from deepsnn.chip.loihi import LoihiCosts
from deepsnn.chip.mapping import ChipLayer, ChipMappingError, ChipNetwork, check_cores, probe_synapses
from deepsnn.chip.sanafe_run import ChipRunner
from stages import chip, train_spatial

pytest.importorskip("sanafe")  # pinned in requirements.txt; CI installs it


def hand_built() -> ChipNetwork:
    """Four input neurons with constant currents (dyadic, so no float rounding anywhere), a 1x2 conv
    to two neurons, a dense layer to two outputs; zero initial potentials, soft reset."""
    conv = nn.Conv2d(1, 1, (1, 2), bias=False)
    dense = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([[[[0.5625, 0.8125]]]]))
        dense.weight.copy_(torch.tensor([[1.25, 0.0], [0.5, 0.75]]))
    conv_synapses, conv_bias = probe_synapses(conv, (1, 2, 2), 100, "conv")
    dense_synapses, dense_bias = probe_synapses(lambda s: dense(s.flatten(1)), (1, 2, 1), 100, "dense")
    assert len(conv_synapses[0]) == 4 and len(dense_synapses[0]) == 3  # the zero weight is no synapse
    return ChipNetwork([
        ChipLayer("in", (1, 2, 2), torch.zeros(4), None, None, conv=False),
        ChipLayer("conv", (1, 2, 1), torch.zeros(2), conv_bias, conv_synapses, conv=True),
        ChipLayer("dense", (2,), torch.zeros(2), dense_bias, dense_synapses, conv=False),
    ], first_current=lambda x: x)


def test_a_hand_built_network_gives_the_hand_worked_spikes_and_events():
    # Simulator semantics, T = 4 (V += input; spike and subtract 1 when V >= 1):
    #   inputs 0.625, 0.375, 0.875, 0.125 spike at t = {2,4}, {3}, {2,3,4}, {}
    #   conv row 0 (0.5625 x in0 + 0.8125 x in1): .5625, 1.375 -> spike at t3, .9375     -> 1 spike
    #   conv row 1 (0.5625 x in2 + 0.8125 x in3): .5625, 1.125 -> spike at t3, .6875     -> 1 spike
    #   output a (1.25 x row0) and b (0.5 x row0 + 0.75 x row1): both 1.25 at t3          -> 1 spike each
    # On the chip a spike reaches the next layer a step later: T + depth - 1 = 6 steps, layer k runs
    # 7 - k of the simulator's steps. Inputs over 6 steps: {2,4,5}, {3,6}, {2,3,4,5,6}, {} = 10 spikes;
    # conv rows over 5 steps: row 0 also at t5 (.9375 + .5625), row 1 at t5 (.6875 + .5625) = 4 spikes.
    runner = ChipRunner(hand_built(), LoihiCosts.read())
    result = runner.run(torch.tensor([0.625, 0.375, 0.875, 0.125]), T=4)
    assert result.output.tolist() == [1.0, 1.0]
    assert result.spikes == 10 + 4 + 2
    # SANA-FE updates a neuron once it holds state: the inputs (with their bias) from step 1, 4 x 6;
    # the conv rows from their first input at step 3, 2 x 4; the outputs from step 5, 2 x 2
    assert result.neuron_updates == 4 * 6 + 2 * 4 + 2 * 2
    # synaptic events: each input spike drives one conv synapse, row 0's spikes two, row 1's one
    assert result.synaptic_events == 10 * 1 + 2 * 2 + 2 * 1
    assert result.messages == 10 + 4  # one per spike that has synapses: each layer's targets sit on one core
    # the energy, event by event, with the constants of the architecture file
    c = LoihiCosts.read()
    joules = (8 * 6 * c.access_neuron + 36 * c.update_neuron + 16 * c.spike_out + 14 * c.message_out
              + 10 * c.conv_synapse + 6 * c.dense_synapse)
    assert result.energy_j["total"] == pytest.approx(joules, rel=1e-9)
    again = runner.run(torch.tensor([0.625, 0.375, 0.875, 0.125]), T=4)  # the chip is reset between images
    assert (again.spikes, again.synaptic_events, again.output.tolist()) == (result.spikes, result.synaptic_events,
                                                                            [1.0, 1.0])


def test_a_layer_the_chip_cannot_hold_fails_before_any_simulation():
    costs = LoihiCosts.read()
    with pytest.raises(ChipMappingError, match=r"layer conv2: its 200,000 neurons need 196 cores .* the layers that "
                                               r"fit: conv1 \(1,024 of the network's 201,024 neurons\)"):
        check_cores(["conv1", "conv2"], [1024, 200_000], costs)
    with pytest.raises(ChipMappingError, match=r"layer conv: more than 3 synapses \(chip.max_synapses"):
        probe_synapses(nn.Conv2d(1, 1, (1, 2), bias=False), (1, 2, 2), 3, "conv")


def test_a_trained_direct_snn_on_the_chip_equals_the_simulator(mirror, tmp_path):
    out = tmp_path / "out"
    params = write_params(tmp_path / "params.yaml", **{**TINY_SPATIAL, "chip.images": 2})
    run_download(out)
    train_spatial.main(["--params", str(params), "--data", str(out / "mnist.pt"), "--model", str(out / "snn.pt"),
                        "--curve", str(out / "t.csv"), "--metrics", str(out / "t.json")])
    chip.main(["--params", str(params), "--experiment", "direct-mnist", "--data", str(out / "mnist.pt"),
               "--snn", str(out / "snn.pt"), "--metrics", str(out / "chip.json")])
    metrics = json.loads((out / "chip.json").read_text())
    assert metrics["maps"] is True and metrics["images"] == 2
    assert metrics["predictions_equal"] == 2 and metrics["outputs_equal"] == 2
    assert metrics["chip_steps"] == 3 + 3 - 1  # T_eval 3, three layers
    assert 0.9 < metrics["analytic_over_chip"] < 1.1
    assert metrics["neuron_updates"] == metrics["neurons"] * metrics["chip_steps"]
