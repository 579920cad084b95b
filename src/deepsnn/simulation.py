"""Fast simulation of a converted, chain-structured SNN (such as the converted VGG-16).

Same arithmetic as SpikingJelly's evaluation loop (reset, then call the network once per
timestep), minus work that loop repeats:
  - with direct (analog) input, everything before the first spiking layer gets the same input
    every step, so it is computed once;
  - IF neurons are stepped with the fused in-place update of `deepsnn.neurons.step` (about 4x
    faster on CPU than the module call), initial potential included;
  - the loop runs under inference_mode.
In the default (NCHW) layout its outputs are bit-identical to the reference loop; channels_last
is optional (rounding-level differences; no faster on the project CPU). `bench/snn_simulation.py`
measures both against SpikingJelly's loop.
"""

from __future__ import annotations

import torch
from spikingjelly.activation_based import neuron as sj_neuron
from torch import fx, nn

from deepsnn.energy import SpikeCounter, SpikingLayer
from deepsnn.neurons import NeuronConfig, step


def chain_modules(graph_module: fx.GraphModule) -> list[nn.Module]:
    """The modules of a graph that is a plain chain (input -> m1 -> m2 -> ... -> output)."""
    modules = dict(graph_module.named_modules())
    chain: list[nn.Module] = []
    previous = None
    for node in graph_module.graph.nodes:
        if node.op == "placeholder":
            previous = node
        elif node.op == "call_module" and node.args == (previous,) and not node.kwargs:
            chain.append(modules[node.target])
            previous = node
        elif node.op == "output" and node.args[0] is previous:
            return chain
        else:
            raise ValueError(f"not a chain-structured SNN at node {node.name} ({node.op} {node.target})")
    raise ValueError("graph has no output")


def _if_config(node: sj_neuron.IFNode) -> tuple[NeuronConfig, float]:
    if float(node.v_threshold) != 1.0:
        raise ValueError("expected IF neurons with threshold 1 (inputs scaled by the converter)")
    reset = "soft" if node.v_reset is None else "hard"
    if reset == "hard" and float(node.v_reset) != 0.0:
        raise ValueError("hard reset must reset to 0")
    initial = node._memories_rv["v"]
    return NeuronConfig(kind="if", reset=reset), float(initial)


class ChainSimulator:
    """Simulate a converted chain SNN for T steps: `step_outputs(x, T)` -> [T, B, classes].

    `prefix` holds the layers before the first spiking layer (analog input, computed once);
    `spiking_layers` names each IF layer and the modules its spikes pass through, for counting."""

    def __init__(self, snn: fx.GraphModule, channels_last: bool = False):
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        names = {id(m): name for name, m in snn.named_modules()}
        chain = chain_modules(snn)
        first_spiking = next(i for i, m in enumerate(chain) if isinstance(m, sj_neuron.IFNode))
        self.prefix = nn.Sequential(*chain[:first_spiking]).eval()
        self.suffix: list = []
        self.spiking_layers: list[SpikingLayer] = []
        for module in chain[first_spiking:]:
            if isinstance(module, sj_neuron.IFNode):
                self.suffix.append(_if_config(module))
                self.spiking_layers.append(SpikingLayer(names[id(module)], []))
            else:
                self.suffix.append(module.eval())
                self.spiking_layers[-1].downstream.append(module)

    @torch.inference_mode()
    def step_outputs(self, x: torch.Tensor, T: int, clock: list | None = None,
                     counter: SpikeCounter | None = None) -> torch.Tensor:
        current = self.prefix(x.contiguous(memory_format=self.memory_format))
        potentials: dict[int, torch.Tensor] = {}
        outputs = []
        for _ in range(T):
            h = current
            spiking = 0
            for i, layer in enumerate(self.suffix):
                if isinstance(layer, tuple):
                    cfg, initial = layer
                    if i not in potentials:
                        potentials[i] = torch.full_like(h, initial)
                    h = step(potentials[i], h, cfg)
                    if counter is not None:
                        counter.record(spiking, h)
                    spiking += 1
                else:
                    h = layer(h)
            outputs.append(h)
            if clock is not None:
                clock.tick()
        if counter is not None:
            counter.end_batch()
        return torch.stack(outputs)
