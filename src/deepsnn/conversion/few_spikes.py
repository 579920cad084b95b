"""Few-spikes coding of a converted QCFS network (Stöckl & Maass, Nature Machine Intelligence 2021):
each neuron emits the binary digits of its ANN's quantised activation, one digit a timestep.

A QCFS activation with L levels takes L + 1 values, q/L of its clip for q = 0..L (q = floor(a L + 1/2)
clamped, a the input in clips). The few-spikes neuron of a layer owns a window of K timesteps, where
K is the number of `digit_weights(L)`, w_1 >= ... >= w_K (integers summing to L, each the ceiling of
half of what is left: L = 4 gives 2, 1, 1). The neuron model differs from rate coding's IF neuron in
three ways:

  - it integrates its whole input first (all steps of the layer before, and a rounding offset of
    half a level), so its potential is v = a L + 1/2, in levels;
  - in step k of its window its threshold is w_k (not the same every step), and a spike subtracts
    w_k (soft reset by the step's weight);
  - a spike in step k carries the weight w_k / L of the clip: the next layer's synapses scale it
    by that step's weight (a shift for powers of two), one accumulate per synapse as for any spike.

Greedy digits reproduce the quantiser exactly: the spikes of a window sum to clamp(floor(v), 0, L)
levels, each level at most one spike a step, so the network computes the QCFS ANN's function with
at most K spikes per neuron, most neurons silent. The cost is latency: every layer waits for the one
before, so one image takes K x (spiking layers) timesteps, all counted in T (45 for VGG-16 at
L = 4); layers can work on successive images at the same time (pipelining), which this does not
count as a gain.
"""

from __future__ import annotations

import torch
from torch import fx

from deepsnn.conversion.chain_simulator import ChainSimulator, IFLayer
from deepsnn.evaluation.energy import SpikeCounter, per_sample_totals


def digit_weights(levels: int) -> list[int]:
    """The weights of a window's steps, in levels: each the ceiling of half of what is still to code."""
    weights, left = [], levels
    while left > 0:
        weights.append(-(-left // 2))
        left -= weights[-1]
    return weights


def few_spikes_layer(current: torch.Tensor, levels: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """One layer's window: the input `current` (in thresholds, i.e. clips) integrated, then a spike map
    per step. Returns (the layer's output in clips: sum of spikes x weight / L; the spike maps)."""
    v = current * levels + 0.5  # in levels, with the rounding offset of QCFS's floor(x + 1/2)
    out = torch.zeros_like(v)
    spike_maps = []
    for w in digit_weights(levels):
        spikes = (v >= w).to(v.dtype)
        v = v - spikes * w
        out = out + spikes * w
        spike_maps.append(spikes)
    return out / levels, spike_maps


class FewSpikesSimulator:
    """The converted SNN (before any correction or fine-tuning: the ANN's own weights and clips) run
    with few-spikes neurons. `outputs(x, counter)` -> the output layer's value [B, classes]; the
    counter gets each spiking layer's spikes summed over its window (one counter 'step' a layer)."""

    def __init__(self, snn: fx.GraphModule, levels: int):
        self.chain = ChainSimulator(snn)
        self.levels = levels
        self.spiking_layers = self.chain.spiking_layers
        self.window = len(digit_weights(levels))
        self.T = self.window * len(self.spiking_layers)  # every layer's window, one after the other

    @torch.inference_mode()
    def outputs(self, x: torch.Tensor, counter: SpikeCounter | None = None) -> torch.Tensor:
        h = self.chain.prefix(x)
        k = 0
        for layer in self.chain.suffix:
            if not isinstance(layer, IFLayer):
                h = layer(h)
                continue
            current = h * layer.in_scale if layer.in_scale is not None else h
            h, spike_maps = few_spikes_layer(current, self.levels)
            if counter is not None:
                synapses = counter.fan_out(k, tuple(current.shape[1:]), current.device)
                counter.add(k, sum(per_sample_totals(s, synapses) for s in spike_maps))
            if layer.out_scale is not None:
                h = h * layer.out_scale
            if layer.pool is not None:
                h = torch.nn.functional.avg_pool2d(h, layer.pool)
            k += 1
        if counter is not None:
            counter.end_batch()
        return h

    def step_outputs(self, x: torch.Tensor, T: int = 1, clock: list | None = None,
                     counter: SpikeCounter | None = None) -> torch.Tensor:
        """As a one-'step' simulator (its answer after all windows), for `simulate_images`."""
        out = self.outputs(x, counter).unsqueeze(0)
        if clock is not None:
            clock.tick()
        return out
