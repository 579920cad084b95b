"""The Loihi chip model of SANA-FE (its bundled `loihi.yaml`, which attributes its figures to Davies
et al., IEEE Micro 2018): per-event energies read from the architecture file, how an SNN's layers
are placed on its cores, and the analytical energy estimate from this project's own counts.

SANA-FE charges, per timestep and neuron mapped to a core, an access and (for a neuron whose state
is live, which with a non-zero initial potential is every neuron) an update; per spike, the spike
out and one message per distinct destination core; per synaptic event (a spike reaching one
synapse), the synapse's energy (Loihi's conv synapse for conv layers, its dense one otherwise).
The estimate multiplies this project's counts by the same constants:

  E = neurons x steps x (E_access + E_update) + spikes x E_spike + messages x E_message
      + SynOps(conv) x E_conv_synapse + SynOps(dense) x E_dense_synapse

It leaves out the network's per-hop energy (a few pJ a hop against 111 pJ a message).
"""

from __future__ import annotations

import importlib.resources
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

import yaml

from deepsnn.core.spiking import SpikingLayer
from deepsnn.evaluation.energy import structural


def architecture_file() -> Path:
    """SANA-FE's Loihi architecture, as the installed `sanafe` package ships it."""
    return Path(str(importlib.resources.files("sanafe.examples") / "loihi.yaml"))


@dataclass(frozen=True)
class LoihiCosts:
    """Energies per event in joules, and the neurons one core holds."""
    access_neuron: float
    update_neuron: float
    spike_out: float
    message_out: float
    dense_synapse: float
    conv_synapse: float
    neurons_per_core: int
    cores: int

    @classmethod
    def read(cls, path: str | Path | None = None) -> LoihiCosts:
        arch = yaml.safe_load(Path(path or architecture_file()).read_text())["architecture"]
        tile = arch["tile"][0]
        core = tile["core"][0]
        soma = next(s["attributes"] for s in core["soma"] if s["attributes"].get("model") == "leaky_integrate_fire")
        synapse = {s["name"]: s["attributes"]["energy_process_spike"] for s in core["synapse"]}
        return cls(soma["energy_access_neuron"], soma["energy_update_neuron"], soma["energy_spike_out"],
                   core["axon_out"][0]["attributes"]["energy_message_out"], synapse["loihi_dense_synapse"],
                   synapse["loihi_conv_synapse"], int(core["attributes"]["max_neurons_supported"]),
                   _count(tile["name"]) * _count(core["name"]))


def _count(name: str) -> int:
    """How many units a SANA-FE name stands for: 'loihi_core[0..3]' -> 4, 'x' -> 1."""
    if "[" not in name:
        return 1
    first, last = name[name.index("[") + 1:name.index("]")].split("..")
    return int(last) - int(first) + 1


def cores_needed(neurons: int, costs: LoihiCosts) -> int:
    return -(-neurons // costs.neurons_per_core)


def is_conv_target(layer: SpikingLayer) -> bool:
    """Whether the spikes of `layer` drive a conv layer (Loihi's conv synapses) rather than a dense one."""
    weights = [m for m in layer.downstream if isinstance(m, (nn.Conv2d, nn.Linear))]
    return bool(weights) and isinstance(weights[0], nn.Conv2d)


def messages_per_spike(layer: SpikingLayer, neuron_shape: tuple[int, ...], costs: LoihiCosts) -> float:
    """The mean number of distinct cores a spike of `layer` is sent to: the next layer's neurons are
    placed in order (PyTorch's flatten order), `neurons_per_core` to a core, from a fresh core."""
    if not layer.downstream:
        return 0.0
    modules = [f for f in map(structural, layer.downstream) if f is not None]
    x = torch.zeros((1, *neuron_shape), requires_grad=True)
    out = x
    for f in modules:
        out = f(out)
    flat = out.flatten(1)
    reached = torch.zeros(neuron_shape)
    for start in range(0, flat.shape[1], costs.neurons_per_core):  # one backward pass per destination core
        (grad,) = torch.autograd.grad(flat[0, start:start + costs.neurons_per_core].sum(), x, retain_graph=True)
        reached += (grad[0] != 0).float()
    return float(reached.mean())


@dataclass(frozen=True)
class ChipLayers:
    """What the estimate needs of an SNN's spiking layers on the chip."""
    neurons: int  # all neurons mapped (spiking layers, and the output accumulators of a conversion SNN)
    messages_per_spike: list[float]  # per spiking layer
    synapse_energy: list[float]  # per spiking layer: joules per synaptic event its spikes cause

    @classmethod
    def of(cls, layers: list[SpikingLayer], shapes: list[tuple[int, ...]], extra_neurons: int,
           costs: LoihiCosts) -> ChipLayers:
        neurons = sum(int(torch.Size(s).numel()) for s in shapes) + extra_neurons
        return cls(neurons, [messages_per_spike(layer, shape, costs) for layer, shape in zip(layers, shapes)],
                   [costs.conv_synapse if is_conv_target(layer) else costs.dense_synapse for layer in layers])


def analytic_energy_uj(costs: LoihiCosts, chip: ChipLayers, steps: torch.Tensor | float, spikes: torch.Tensor,
                       synops: torch.Tensor) -> torch.Tensor:
    """The estimate in microjoules per image, given each spiking layer's spikes and SynOps per image
    ([layers, ...]) and the timesteps the chip runs (broadcast alike)."""
    msgs = torch.tensor(chip.messages_per_spike, dtype=torch.float64).view(-1, *[1] * (spikes.dim() - 1))
    syn = torch.tensor(chip.synapse_energy, dtype=torch.float64).view(-1, *[1] * (spikes.dim() - 1))
    spikes, synops = spikes.double(), synops.double()
    joules = (chip.neurons * torch.as_tensor(steps, dtype=torch.float64) * (costs.access_neuron + costs.update_neuron)
              + (spikes * (costs.spike_out + msgs * costs.message_out)).sum(0) + (synops * syn).sum(0))
    return joules * 1e6
