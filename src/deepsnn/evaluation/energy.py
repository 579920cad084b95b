"""Spike statistics and energy accounting, counted during the evaluation simulation.

Per spiking layer and timestep the simulator hands its 0/1 spike map to a `SpikeCounter`,
which adds up spikes and synaptic operations (SynOps): every spike costs one accumulate per
synapse it drives, i.e. the fan-out of its source neuron into the next weight layer, counted
exactly (a conv's zero padding means border neurons drive fewer synapses; an average pool
between the spike and the weights passes each spike to one pooled input). The fan-out of
every neuron is worked out once per layer from the downstream modules, so counting costs one
fused reduction per layer and step (inside the compiled IF kernel when there is one).

Layers that see analog values (the first conv: direct encoding) are computed once per image by
the simulators here and count as multiply-accumulates (MACs), as do all layers of the ANN
that the SNN is compared with.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from deepsnn.core.spiking import SpikingLayer

# Energy per operation, 45 nm CMOS, 32-bit float (M. Horowitz, "Computing's energy problem
# (and what we can do about it)", ISSCC 2014): a multiply-accumulate (4.6 pJ = 3.7 mult +
# 0.9 add) for ANN layers and analog inputs, an accumulate (0.9 pJ) per SNN synaptic operation.
ENERGY_MAC_PJ = 4.6
ENERGY_AC_PJ = 0.9


def structural(module: nn.Module):
    """The same connectivity with every weight 1 and no bias (pools sum instead of average),
    so that d(sum of outputs)/d(input) counts each input's synapses. None: passes values on."""
    if isinstance(module, nn.Conv2d):
        ones = torch.ones(module.weight.shape, device=module.weight.device)
        return lambda x: F.conv2d(x, ones, None, module.stride, module.padding, module.dilation, module.groups)
    if isinstance(module, nn.Linear):
        ones = torch.ones(module.weight.shape, device=module.weight.device)
        return lambda x: F.linear(x, ones)
    if isinstance(module, nn.AvgPool2d):
        k = module.kernel_size if isinstance(module.kernel_size, tuple) else (module.kernel_size,) * 2
        return lambda x: F.avg_pool2d(x, module.kernel_size, module.stride, module.padding) * (k[0] * k[1])
    if isinstance(module, nn.Flatten):
        return lambda x: x.flatten(module.start_dim, module.end_dim)
    if isinstance(module, (nn.Identity, nn.Dropout)) or type(module).__name__ == "VoltageScaler":
        return None
    raise ValueError(f"cannot count synapses through {type(module).__name__}")


def fan_out(downstream: list[nn.Module], neuron_shape: tuple[int, ...]) -> torch.Tensor:
    """Synapses driven by each neuron of a layer shaped `neuron_shape` (one sample) whose spikes
    pass through `downstream` (pools, flatten, scalers) into the next weight layer, which must be
    among them. Returns a float tensor of `neuron_shape`."""
    weight_layers = [m for m in downstream if isinstance(m, (nn.Conv2d, nn.Linear))]
    if not weight_layers:
        raise ValueError("no weight layer downstream: the spikes drive no synapses")
    weight = weight_layers[0].weight
    with torch.inference_mode(False), torch.enable_grad():  # simulators run under inference mode
        x = torch.zeros((1, *neuron_shape), device=weight.device, dtype=weight.dtype, requires_grad=True)
        out = x
        for m in [m for m in map(structural, downstream) if m is not None]:
            out = m(out)
        (grad,) = torch.autograd.grad(out.sum(), x)
    return grad[0].detach()


def count_macs(model: nn.Module, example: torch.Tensor) -> int:
    """Multiply-accumulates of the conv and linear layers of `model` for one sample."""
    total = 0

    def hook(module: nn.Module, inputs, output) -> None:
        nonlocal total
        per_output = module.weight[0].numel()  # (in_channels / groups) x kernel area, or in_features
        total += per_output * output[0].numel()

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        with torch.no_grad():
            model(example[:1])
    finally:
        for h in handles:
            h.remove()
    return total


def batch_sum(x: torch.Tensor) -> torch.Tensor:
    """x.sum(0), walking x in its memory order: summing a channels_last spike map over the
    batch directly is ~40x slower on CPU (the conv before it may hand it over in that layout)."""
    inner = sorted(range(1, x.dim()), key=x.stride, reverse=True)  # per-sample dims, outermost first
    return x.permute(0, *inner).sum(0).permute(*[inner.index(d) for d in range(1, x.dim())])


def per_sample_totals(spikes: torch.Tensor, synapses: torch.Tensor) -> torch.Tensor:
    """[2, B] int64: each sample's spikes and SynOps (spikes x fan-out `synapses`) in one step of a
    layer. Integer arithmetic, so exact; reduced over each sample's neurons in any memory order."""
    fired = spikes.to(torch.int32)
    dims = tuple(range(1, spikes.dim()))
    return torch.stack((fired.sum(dims), (fired * synapses).sum(dims)))


class SpikeCounter:
    """Adds up spikes and SynOps of each spiking layer at each timestep, per sample.

    After `end_batch` of every batch, `state()` holds the totals over samples of layer l at step
    t+1 (`spikes[l, t]`, `synops[l, t]`, not cumulative in t), each sample's totals over all layers
    at step t+1 (`sample_spikes[t, n]`, `sample_synops[t, n]`: what early exit counts up to each
    sample's own exit) and each layer's size per sample (`neurons[l]`). Counts are integers, so
    they are exact and equal whichever way they were summed."""

    def __init__(self, layers: list[SpikingLayer], T: int):
        self.layers = layers
        self.T = T
        self.neurons = [0] * len(layers)
        self.shapes: list[tuple[int, ...]] = [()] * len(layers)  # per sample
        self._fan_out: list[torch.Tensor | None] = [None] * len(layers)
        self._steps: list[list[torch.Tensor]] = [[] for _ in layers]
        self._layer_totals = torch.zeros(len(layers), T, 2, dtype=torch.int64)
        self._samples: list[torch.Tensor] = []  # per batch: [T, 2, B]

    def fan_out(self, layer: int, neuron_shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
        """Synapses driven by each neuron of `layer` (int32, `neuron_shape`), worked out once."""
        if self._fan_out[layer] is None:
            self.neurons[layer] = int(torch.Size(neuron_shape).numel())
            self.shapes[layer] = tuple(neuron_shape)
            downstream = self.layers[layer].downstream
            synapses = fan_out(downstream, neuron_shape) if downstream else torch.zeros(neuron_shape)
            self._fan_out[layer] = synapses.round().to(device=device, dtype=torch.int32)
        return self._fan_out[layer]

    def add(self, layer: int, totals: torch.Tensor) -> None:
        """[2, B] int64 (spikes, SynOps per sample) of `layer` at the next timestep of the current batch."""
        self._steps[layer].append(totals)

    def record(self, layer: int, spikes: torch.Tensor) -> None:
        """The 0/1 (or bool) spikes [B, ...] of `layer` at the next timestep of the current batch."""
        self.add(layer, per_sample_totals(spikes, self.fan_out(layer, tuple(spikes.shape[1:]), spikes.device)))

    def end_batch(self) -> None:
        """Fold the current batch's per-step totals in (one device sync per batch)."""
        steps = torch.stack([torch.stack(s) for s in self._steps]).cpu()  # [layers, T, 2, B]
        if steps.shape[1] != self.T:
            raise ValueError(f"the batch ran {steps.shape[1]} steps and the counter counts {self.T}")
        self._layer_totals += steps.sum(-1)
        self._samples.append(steps.sum(0))
        for s in self._steps:
            s.clear()

    def state(self) -> dict:
        samples = torch.cat(self._samples, dim=-1)  # [T, 2, N]
        return {"names": [layer.name for layer in self.layers], "neurons": list(self.neurons),
                "shapes": [list(shape) for shape in self.shapes],
                "spikes": self._layer_totals[..., 0], "synops": self._layer_totals[..., 1],
                "sample_spikes": samples[:, 0].to(torch.int32), "sample_synops": samples[:, 1]}


@dataclass
class SpikeStats:
    """The spike counts of one simulation (`SpikeCounter.state()`), enough to report any T up to the
    simulated one, or each sample's own T (early exit)."""
    names: list[str]
    neurons: list[int]  # per sample
    spikes: torch.Tensor  # [layers, T] int64, summed over samples
    synops: torch.Tensor  # [layers, T]
    sample_spikes: torch.Tensor  # [T, N] int32, summed over layers
    sample_synops: torch.Tensor  # [T, N] int64
    analog_macs: int  # per sample: layers fed analog values, computed once per image
    ann_macs: int  # per sample: the equivalent ANN

    @classmethod
    def from_state(cls, state: dict, analog_macs: int, ann_macs: int) -> SpikeStats:
        """From `SpikeCounter.state()` (live or stored with a simulation)."""
        return cls(state["names"], state["neurons"], state["spikes"], state["synops"], state["sample_spikes"],
                   state["sample_synops"], analog_macs, ann_macs)

    @property
    def samples(self) -> int:
        return self.sample_spikes.shape[1]

    def synops_per_sample(self, T: int) -> torch.Tensor:
        """[T] total SynOps per sample to reach each t = 1..T."""
        return self.synops[:, :T].sum(0).cumsum(0).double() / self.samples

    def spikes_per_sample(self, T: int) -> torch.Tensor:
        """[T] total spikes per sample to reach each t = 1..T."""
        return self.spikes[:, :T].sum(0).cumsum(0).double() / self.samples

    def energy_uj_per_sample(self, T: int) -> torch.Tensor:
        """[T] estimated SNN energy per sample (microjoules, 45 nm arithmetic) to reach each t = 1..T."""
        return arithmetic_energy_uj(self.analog_macs, self.synops_per_sample(T))

    def until(self, exits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Each sample's spikes and SynOps [N] (float64) up to its own last step `exits[n]` (1-based):
        nothing after a sample's exit is counted."""
        steps = torch.arange(1, self.sample_spikes.shape[0] + 1).view(-1, 1)
        kept = steps <= exits.view(1, -1)
        return ((self.sample_spikes * kept).sum(0).double(), (self.sample_synops * kept).sum(0).double())

    def layer_table(self, T: int) -> list[dict]:
        """Per spiking layer at T: firing rate (spikes per neuron per timestep), spikes and SynOps per sample."""
        rows = []
        for i, name in enumerate(self.names):
            spikes = float(self.spikes[i, :T].sum()) / self.samples
            rows.append({"layer": name, "neurons": self.neurons[i],
                         "firing_rate": spikes / (self.neurons[i] * T),
                         "spikes_per_sample": spikes,
                         "synops_per_sample": float(self.synops[i, :T].sum()) / self.samples})
        return rows

    def metrics(self, T: int) -> dict:
        """Flat metrics at T (keys do not depend on T)."""
        spikes = float(self.spikes_per_sample(T)[-1])
        snn_energy = float(self.energy_uj_per_sample(T)[-1])
        ann_energy = self.ann_macs * ENERGY_MAC_PJ * 1e-6
        return {
            "mean_firing_rate": significant(spikes / (sum(self.neurons) * T)),
            "spikes_per_sample": significant(spikes),
            "synops_per_sample": significant(float(self.synops_per_sample(T)[-1])),
            "analog_macs_per_sample": self.analog_macs,
            "ann_macs_per_sample": self.ann_macs,
            "energy_uj_per_sample": significant(snn_energy),
            "ann_energy_uj_per_sample": significant(ann_energy),
            "energy_ratio": significant(snn_energy / ann_energy),  # SNN / ANN: below 1, the SNN spends less
        }


def arithmetic_energy_uj(analog_macs: float, synops: torch.Tensor | float) -> torch.Tensor | float:
    """The 45 nm arithmetic estimate (microjoules): analog MACs x 4.6 pJ + SynOps x 0.9 pJ."""
    return (analog_macs * ENERGY_MAC_PJ + synops * ENERGY_AC_PJ) * 1e-6


def significant(x: float, digits: int = 5) -> float:
    return float(f"{x:.{digits}g}")
