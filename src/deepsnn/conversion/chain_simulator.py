"""Fast simulation of a converted, chain-structured SNN (such as the converted VGG-16).

Same arithmetic as SpikingJelly's evaluation loop (reset, then call the network once per
timestep), minus work that loop repeats:
  - with direct (analog) input, everything before the first spiking layer gets the same input
    every step, so it is computed once;
  - IF neurons are stepped with the fused in-place update of `deepsnn.neurons.step` (about 4x
    faster on CPU than the module call), initial potential (one per layer or per channel) included;
  - the loop runs under inference_mode.
In the default (NCHW) layout its outputs are bit-identical to the reference loop; channels_last
is optional (rounding-level differences; no faster on the project CPU). `bench/snn_simulation.py`
measures both against SpikingJelly's loop.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from spikingjelly.activation_based import neuron as sj_neuron
from spikingjelly.activation_based.ann2snn.modules import VoltageScaler
from torch import fx, nn

from deepsnn.core.spiking import SpikingLayer
from deepsnn.evaluation.energy import SpikeCounter, per_sample_totals
from deepsnn.core.neurons import NeuronConfig, step


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


@dataclass
class IFLayer:
    """An IF layer of the chain with the elementwise work around it: the VoltageScaler before it
    (in_scale), the one after it (out_scale) and an average pool after that, each optional."""
    config: NeuronConfig
    initial: float | torch.Tensor  # in thresholds: one number, or one per channel ([C, 1, 1] or [C])
    in_scale: torch.Tensor | None = None
    out_scale: torch.Tensor | None = None
    pool: int | None = None  # kernel (= stride) of a following nn.AvgPool2d

    def initial_state(self, like: torch.Tensor) -> torch.Tensor:
        """A fresh membrane potential shaped like the layer's input current `like`."""
        return torch.empty_like(like).copy_(torch.as_tensor(self.initial, device=like.device))


def _if_layer(node: sj_neuron.IFNode) -> IFLayer:
    if float(node.v_threshold) != 1.0:
        raise ValueError("expected IF neurons with threshold 1 (inputs scaled by the converter)")
    reset = "soft" if node.v_reset is None else "hard"
    if reset == "hard" and float(node.v_reset) != 0.0:
        raise ValueError("hard reset must reset to 0")
    initial = node._memories_rv["v"]  # a per-channel tensor after a correction (deepsnn.conversion.correction)
    return IFLayer(NeuronConfig(kind="if", reset=reset), initial if isinstance(initial, torch.Tensor) else float(initial))


def _simple_pool(module: nn.Module) -> int | None:
    """The kernel of a plain non-overlapping 2-D average pool, else None."""
    if (not isinstance(module, nn.AvgPool2d) or module.padding not in (0, (0, 0)) or module.ceil_mode
            or module.divisor_override is not None):
        return None
    k, stride = module.kernel_size, module.stride
    return k if isinstance(k, int) and stride in (k, None) and module.count_include_pad else None


def if_layer_step(v: torch.Tensor, current: torch.Tensor, in_scale: torch.Tensor | None,
                  out_scale: torch.Tensor | None, pool: int | None, config: NeuronConfig,
                  synapses: torch.Tensor | None) -> tuple[torch.Tensor | None, torch.Tensor]:
    """One step of an IF layer and its scalers and pool, the same ops in the same order as the
    SpikingJelly modules. Returns (each sample's spike and SynOp totals of the step, [2, B] int64,
    if `synapses`, the fan-out of each neuron, is given; the layer's output). Compiled, the totals
    are reductions fused into the same pass as the update."""
    if in_scale is not None:
        current = current * in_scale
    spikes = step(v, current, config)
    out = spikes * out_scale if out_scale is not None else spikes
    if pool is not None:
        out = F.avg_pool2d(out, pool)
    if synapses is None:
        return None, out
    return per_sample_totals(spikes, synapses), out


class ChainSimulator:
    """Simulate a converted chain SNN for T steps: `step_outputs(x, T)` -> [T, B, classes].

    `prefix` holds the layers before the first spiking layer (analog input, computed once);
    `spiking_layers` names each IF layer and the modules its spikes pass through, for counting.
    With `compile`, each IF layer's elementwise work (scale, charge, fire, reset, scale, pool)
    runs as one torch.compile'd kernel instead of six to eight passes over memory; convolutions
    stay as they are. Its outputs matched the eager ones bit for bit wherever we compared them
    (tests, bench), and at least its predictions must match (bench/snn_simulation.py checks)."""

    def __init__(self, snn: fx.GraphModule, channels_last: bool = False, compile: bool = False):
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.layer_step = if_layer_step
        if compile:
            import torch._dynamo as dynamo

            # one compiled variant per combination of static arguments and tensor layout
            dynamo.config.recompile_limit = max(dynamo.config.recompile_limit, 64)
            self.layer_step = torch.compile(if_layer_step, dynamic=True)
        names = {id(m): name for name, m in snn.named_modules()}
        chain = chain_modules(snn)
        first_spiking = next(i for i, m in enumerate(chain) if isinstance(m, sj_neuron.IFNode))
        self.prefix = nn.Sequential(*chain[:first_spiking]).eval()
        self.suffix: list[nn.Module | IFLayer] = []
        self.spiking_layers: list[SpikingLayer] = []
        for module in chain[first_spiking:]:
            module.eval()
            last = self.suffix[-1] if self.suffix else None
            if isinstance(module, sj_neuron.IFNode):
                layer = _if_layer(module)
                if isinstance(last, VoltageScaler):  # fold the scaler in front of it
                    layer.in_scale = self.suffix.pop().scale
                self.suffix.append(layer)
                self.spiking_layers.append(SpikingLayer(names[id(module)], []))
                continue
            self.spiking_layers[-1].downstream.append(module)
            if isinstance(last, IFLayer) and last.out_scale is None and last.pool is None \
                    and isinstance(module, VoltageScaler):
                last.out_scale = module.scale
            elif isinstance(last, IFLayer) and last.pool is None and _simple_pool(module) is not None:
                last.pool = _simple_pool(module)
            else:
                self.suffix.append(module)

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
                if isinstance(layer, IFLayer):
                    if i not in potentials:
                        potentials[i] = layer.initial_state(h)
                    synapses = None if counter is None else counter.fan_out(spiking, tuple(h.shape[1:]), h.device)
                    totals, h = self.layer_step(potentials[i], h, layer.in_scale, layer.out_scale, layer.pool,
                                                layer.config, synapses)
                    if counter is not None:
                        counter.add(spiking, totals)
                    spiking += 1
                else:
                    h = layer(h)
            outputs.append(h)
            if clock is not None:
                clock.tick()
        if counter is not None:
            counter.end_batch()
        return torch.stack(outputs)
