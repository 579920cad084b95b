"""An SNN as a neuromorphic chip runs it, and its placement on the chip's cores.

A `ChipNetwork` is a chain of neuron layers: the first fed its analog input current as a per-image
bias (direct encoding: the first conv runs off-chip, once per image), each later one connected to
the spikes of the one before by explicit synapses (pools, convs, BatchNorm maps and thresholds
folded into their weights), with a constant bias current. It is built from either pipeline's
simulator by probing the linear map between two spiking layers with one-hot spike maps, so the
chip computes exactly what the simulator computes, up to float rounding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from deepsnn.chip.loihi import LoihiCosts, cores_needed
from deepsnn.core.errors import UserError


class ChipMappingError(UserError, ValueError):
    """An SNN layer the chip model cannot hold (too many neurons or synapses), found before any simulation."""


@dataclass
class ChipLayer:
    name: str
    shape: tuple[int, ...]  # per image
    initial: torch.Tensor  # [n] membrane potential at t=0, in thresholds
    bias: torch.Tensor | None  # [n] current added every step, in thresholds; None: the per-image input
    synapses: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None  # (source, destination, weight) from the layer before
    conv: bool  # whether its incoming synapses are a conv's (Loihi charges conv synapses less)
    spiking: bool = True  # False: the output layer of a conversion SNN, which only sums its input

    @property
    def neurons(self) -> int:
        return int(torch.Size(self.shape).numel())


@dataclass
class ChipNetwork:
    layers: list[ChipLayer]
    first_current: Callable[[torch.Tensor], torch.Tensor]  # prepared images [B, ...] -> first layer's current [B, n]

    @property
    def depth(self) -> int:
        """Layers a spike crosses from the input to the output: one timestep each on the chip."""
        return len(self.layers)

    @property
    def synapse_count(self) -> int:
        return sum(len(layer.synapses[0]) for layer in self.layers if layer.synapses is not None)


@torch.no_grad()
def probe_synapses(f: Callable[[torch.Tensor], torch.Tensor], in_shape: tuple[int, ...], max_synapses: int,
                   name: str, batch: int = 256) -> tuple[tuple[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]:
    """The synapses of the linear map `f` (spikes [B, *in_shape] -> currents [B, ...]) as (source,
    destination, weight) index lists over flattened neurons, and its bias f(0). Refuses, naming
    layer `name`, more than `max_synapses` of them."""
    bias = f(torch.zeros(1, *in_shape)).flatten()
    n_in = int(torch.Size(in_shape).numel())
    sources, targets, weights, total = [], [], [], 0
    for start in range(0, n_in, batch):
        ids = torch.arange(start, min(start + batch, n_in))
        one_hot = torch.zeros(len(ids), n_in)
        one_hot[torch.arange(len(ids)), ids] = 1.0
        out = f(one_hot.view(len(ids), *in_shape)).flatten(1) - bias
        row, col = out.nonzero(as_tuple=True)
        total += len(row)
        if total > max_synapses:
            raise ChipMappingError(f"layer {name}: more than {max_synapses:,} synapses (chip.max_synapses; already "
                                   f"{total:,} from its first {start + len(ids):,} of {n_in:,} inputs), more than "
                                   f"this machine builds for the chip model")
        sources.append(ids[row])
        targets.append(col)
        weights.append(out[row, col])
    return (torch.cat(sources), torch.cat(targets), torch.cat(weights)), bias


def check_pipeline_start(network: ChipNetwork) -> None:
    """On the chip a spike reaches the next layer one step later, so layer k (1-based) sees its first
    input at step k; its initial potential is lowered by (k-1) x bias so that, when it arrives, the
    potential is what it is at t=0 in the simulator. That holds only if the layer does not fire
    before (a negative bias lifts the early potential): refuse a layer where it would."""
    for k, layer in enumerate(network.layers, start=1):
        if layer.bias is None or not layer.spiking or k < 3:
            continue
        early = layer.initial - (k - 2) * layer.bias.clamp(max=0)  # its highest potential before the input
        if bool((early >= 1.0).any()):
            raise ChipMappingError(f"layer {layer.name}: {int((early >= 1.0).sum())} neurons would fire before their "
                                   f"first input reaches them (a bias below {-(1 - float(layer.initial.max())) / (k - 2):.3g} "
                                   f"thresholds at depth {k}), so the chip could not run what the simulator runs")


def check_cores(names: list[str], neurons: list[int], costs: LoihiCosts, cores: int | None = None) -> None:
    """Refuse, before anything is built, layers (`neurons` each) that need more than the chip's cores
    (`costs.cores` unless given), each layer from a fresh core, naming the first layer that does not
    fit and the layers that do."""
    cores = costs.cores if cores is None else cores
    used = 0
    for k, (name, n) in enumerate(zip(names, neurons)):
        needed = cores_needed(n, costs)
        if used + needed > cores:
            fits = ", ".join(names[:k]) or "none"
            raise ChipMappingError(
                f"layer {name}: its {n:,} neurons need {needed} cores of {costs.neurons_per_core:,} neurons and "
                f"{cores - used} of the chip's {cores} are left; the layers that fit: {fits} "
                f"({sum(neurons[:k]):,} of the network's {sum(neurons):,} neurons)")
        used += needed


def place(network: ChipNetwork, costs: LoihiCosts, cores: int) -> list[list[int]]:
    """Each layer's neurons placed in order, `neurons_per_core` to a core, every layer from a fresh core:
    per layer, the core of each of its neurons (index into the chip's cores); check_cores first."""
    check_cores([layer.name for layer in network.layers], [layer.neurons for layer in network.layers], costs, cores)
    placement, next_core = [], 0
    for layer in network.layers:
        placement.append([next_core + i // costs.neurons_per_core for i in range(layer.neurons)])
        next_core += cores_needed(layer.neurons, costs)
    return placement


def _flat_initial(initial: float | torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    value = torch.as_tensor(initial, dtype=torch.float32)
    if value.dim() == 1 and len(shape) == 3:  # one per channel
        value = value.view(-1, 1, 1)
    return value.expand(shape).flatten().clone()


def from_chain(simulator, example: torch.Tensor, max_synapses: int) -> ChipNetwork:
    """The ChipNetwork of a converted SNN (deepsnn.conversion.chain_simulator.ChainSimulator): its IF
    layers, then the output layer as accumulators of the last IF layer's spikes. `example`: one
    prepared image, for the shapes."""
    from deepsnn.conversion.chain_simulator import IFLayer

    blocks: list[tuple[IFLayer | None, list]] = []  # each IF layer (None: the output) and the modules before it
    pending: list = []
    for part in simulator.suffix:
        if isinstance(part, IFLayer):
            blocks.append((part, pending))
            pending = []
        else:
            pending.append(part)
    blocks.append((None, pending))
    first = blocks[0][0]

    def scaled(layer: IFLayer, h: torch.Tensor) -> torch.Tensor:
        return h * layer.in_scale if layer.in_scale is not None else h

    def output_of(layer: IFLayer, spikes: torch.Tensor) -> torch.Tensor:
        h = spikes * layer.out_scale if layer.out_scale is not None else spikes
        return torch.nn.functional.avg_pool2d(h, layer.pool) if layer.pool is not None else h

    def first_current(x: torch.Tensor) -> torch.Tensor:
        h = simulator.prefix(x)
        for m in blocks[0][1]:
            h = m(h)
        return scaled(first, h).flatten(1)

    with torch.no_grad():
        h = simulator.prefix(example[:1])
        for m in blocks[0][1]:
            h = m(h)
    shape = tuple(h.shape[1:])
    layers = [ChipLayer(simulator.spiking_layers[0].name, shape, _flat_initial(first.initial, shape), None, None, False)]
    previous, k = first, 1
    for layer, modules in blocks[1:]:
        def f(s, previous=previous, layer=layer, modules=modules):
            h = output_of(previous, s)
            for m in modules:
                h = m(h)
            return scaled(layer, h) if layer is not None else h
        name = simulator.spiking_layers[k].name if layer is not None else "output"
        synapses, bias = probe_synapses(f, shape, max_synapses, name)
        conv = any(isinstance(m, torch.nn.Conv2d) for m in modules)
        with torch.no_grad():
            out_shape = tuple(f(torch.zeros(1, *shape)).shape[1:])
        initial = _flat_initial(layer.initial, out_shape) if layer is not None else torch.zeros(out_shape).flatten()
        layers.append(ChipLayer(name, out_shape, initial, bias, synapses, conv, spiking=layer is not None))
        previous, shape, k = layer, out_shape, k + 1
    return ChipNetwork(layers, first_current)


def from_spiking_conv_net(model, example: torch.Tensor, max_synapses: int) -> ChipNetwork:
    """The ChipNetwork of a directly trained SNN (deepsnn.direct.spatial.SpikingConvNet, eval mode);
    `example`: one prepared image, for the shapes."""
    maps = model.affine_maps(None, 1)  # evaluation: BatchNorm's running statistics
    v_init = model.neuron_config.v_init
    with torch.no_grad():
        shape = tuple(model.first_current(example[:1]).shape[1:])
    layers = [ChipLayer("sn1", shape, torch.full((int(torch.Size(shape).numel()),), v_init), None, None, False)]
    for layer in range(1, model.depth):
        f = lambda s, layer=layer: model.current(layer, s, maps)
        synapses, bias = probe_synapses(f, shape, max_synapses, f"sn{layer + 1}")
        with torch.no_grad():
            shape = tuple(f(torch.zeros(1, *shape)).shape[1:])
        layers.append(ChipLayer(f"sn{layer + 1}", shape, torch.full((len(bias),), v_init), bias, synapses,
                                conv=layer < len(model.convs)))
    return ChipNetwork(layers, lambda x: model.first_current(x).flatten(1))
