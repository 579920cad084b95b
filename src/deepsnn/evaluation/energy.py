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


def _structural(module: nn.Module):
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
        for m in [m for m in map(_structural, downstream) if m is not None]:
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


class SpikeCounter:
    """Adds up spikes and SynOps of each spiking layer at each timestep over many batches.

    `spikes[l, t]` and `synops[l, t]` are totals over all samples seen so far of layer l at
    step t+1 (not cumulative in t); `neurons[l]` is the layer's size per sample. Counts are
    integers (int64 on the device), so they are exact and equal whichever way they were summed."""

    def __init__(self, layers: list[SpikingLayer], T: int):
        self.layers = layers
        self.spikes = torch.zeros(len(layers), T, dtype=torch.float64)
        self.synops = torch.zeros(len(layers), T, dtype=torch.float64)
        self.neurons = [0] * len(layers)
        self._fan_out: list[torch.Tensor | None] = [None] * len(layers)
        self._steps: list[list[torch.Tensor]] = [[] for _ in layers]

    def fan_out(self, layer: int, neuron_shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
        """Synapses driven by each neuron of `layer` (int64, `neuron_shape`), worked out once."""
        if self._fan_out[layer] is None:
            self.neurons[layer] = int(torch.Size(neuron_shape).numel())
            downstream = self.layers[layer].downstream
            synapses = fan_out(downstream, neuron_shape) if downstream else torch.zeros(neuron_shape)
            self._fan_out[layer] = synapses.round().to(device=device, dtype=torch.int64)
        return self._fan_out[layer]

    def add(self, layer: int, totals: torch.Tensor) -> None:
        """[spikes, SynOps] (int64) of `layer` at the next timestep of the current batch."""
        self._steps[layer].append(totals)

    def record(self, layer: int, spikes: torch.Tensor) -> None:
        """The 0/1 (or bool) spikes [B, ...] of `layer` at the next timestep of the current batch."""
        # summed as floats (exact below 2^24 samples a batch), then made integers: a sum with
        # dtype=int64 would first copy the whole spike map to int64, ~18x slower on CPU
        per_neuron = batch_sum(spikes).to(torch.int64)
        synapses = self.fan_out(layer, tuple(per_neuron.shape), per_neuron.device)
        self.add(layer, torch.stack((per_neuron.sum(), (per_neuron * synapses).sum())))

    def end_batch(self) -> None:
        """Fold the current batch's per-step totals in (one device sync per batch)."""
        for layer, steps in enumerate(self._steps):
            if steps:
                spikes, synops = torch.stack(steps).double().cpu().unbind(1)
                self.spikes[layer, :len(steps)] += spikes
                self.synops[layer, :len(steps)] += synops
            steps.clear()

    def state(self) -> dict:
        return {"names": [layer.name for layer in self.layers], "neurons": list(self.neurons),
                "spikes": self.spikes, "synops": self.synops}


@dataclass
class SpikeStats:
    """Totals of one evaluation, enough to report any T up to the simulated one."""
    names: list[str]
    neurons: list[int]  # per sample
    spikes: torch.Tensor  # [layers, T] float64, summed over samples
    synops: torch.Tensor  # [layers, T]
    samples: int
    analog_macs: int  # per sample: layers fed analog values, computed once per image
    ann_macs: int  # per sample: the equivalent ANN

    @classmethod
    def from_state(cls, state: dict, samples: int, analog_macs: int, ann_macs: int) -> SpikeStats:
        """From `SpikeCounter.state()` (live or stored with a simulation)."""
        return cls(state["names"], state["neurons"], state["spikes"], state["synops"], samples, analog_macs, ann_macs)

    def synops_per_sample(self, T: int) -> torch.Tensor:
        """[T] total SynOps per sample to reach each t = 1..T."""
        return self.synops[:, :T].sum(0).cumsum(0) / self.samples

    def energy_uj_per_sample(self, T: int) -> torch.Tensor:
        """[T] estimated SNN energy per sample (microjoules) to reach each t = 1..T."""
        return (self.analog_macs * ENERGY_MAC_PJ + self.synops_per_sample(T) * ENERGY_AC_PJ) * 1e-6

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
        spikes = float(self.spikes[:, :T].sum()) / self.samples
        snn_energy = float(self.energy_uj_per_sample(T)[-1])
        ann_energy = self.ann_macs * ENERGY_MAC_PJ * 1e-6
        return {
            "mean_firing_rate": _significant(spikes / (sum(self.neurons) * T)),
            "spikes_per_sample": _significant(spikes),
            "synops_per_sample": _significant(float(self.synops_per_sample(T)[-1])),
            "analog_macs_per_sample": self.analog_macs,
            "ann_macs_per_sample": self.ann_macs,
            "energy_uj_per_sample": _significant(snn_energy),
            "ann_energy_uj_per_sample": _significant(ann_energy),
            "energy_ratio": _significant(snn_energy / ann_energy),  # SNN / ANN: below 1, the SNN spends less
        }


def _significant(x: float, digits: int = 5) -> float:
    return float(f"{x:.{digits}g}")
