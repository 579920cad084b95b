"""Running a ChipNetwork on SANA-FE's Loihi model (PyPI `sanafe`), image by image.

SANA-FE's neuron (model leaky_integrate_fire) with no leak, soft reset and a threshold is this
project's IF neuron, with three differences handled here:
  - it truncates the potential to 1/64 before each step and fires on V > threshold (strict): every
    threshold, potential, bias and weight is scaled by SCALE = 2**16 (exact in floating point), which
    makes the truncation smaller than float32's own rounding;
  - a spike reaches the next layer one step later: layer k sees its first input at step k, so the chip
    runs T + depth - 1 steps for T of the simulator, each layer's initial potential lowered by (k - 1) x
    its bias (deepsnn.chip.mapping.check_pipeline_start), and the output is read after the last step;
  - the output layer of a conversion SNN only sums its input (it never fires; reset none); its bias
    is added T times when read, as the simulator does.
The bundled architecture is used without its 1024 `input` units per core, which no layer here uses
(they cost no energy; building the chip with them takes seconds more per network).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from deepsnn.chip.loihi import LoihiCosts, architecture_file
from deepsnn.chip.mapping import ChipNetwork, check_pipeline_start, place

SCALE = 2.0 ** 16
NEVER = 1e30  # the threshold of a layer that only sums its input


def trimmed_architecture(path: Path | None = None) -> str:
    """The architecture file's text without its `input` soma units."""
    text = Path(path or architecture_file()).read_text()
    start = text.index("            - name: loihi_inputs[")
    end = text.index("          dendrite:", start)
    return text[:start] + text[end:]


@dataclass
class ChipResult:
    """One image on the chip."""
    output: torch.Tensor  # [classes]: spike counts (direct) or summed output (conversion) over the T steps
    energy_j: dict[str, float]  # total, synapse, dendrite, soma, network
    sim_time_s: float  # the chip's own time for the run
    synaptic_events: int
    neuron_updates: int
    spikes: int  # neurons fired, all layers
    messages: int


class ChipRunner:
    """A ChipNetwork loaded onto SANA-FE's Loihi chip, to run image after image."""

    def __init__(self, network: ChipNetwork, costs: LoihiCosts, population: int = 1):
        import sanafe

        check_pipeline_start(network)
        self.network, self.population = network, population
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
            f.write(trimmed_architecture())
        self.arch = sanafe.load_arch(f.name)
        Path(f.name).unlink()
        cores = self.arch.cores()
        placement = place(network, costs, len(cores))
        net = sanafe.Network()
        self.groups = []
        for k, layer in enumerate(network.layers):
            attributes = {"threshold": SCALE if layer.spiking else NEVER, "reset_mode": "soft" if layer.spiking else "none",
                          "leak_decay": 1.0}
            group = net.create_neuron_group(layer.name, layer.neurons, model_attributes=attributes)
            for i, core in enumerate(placement[k]):
                group.neurons[i].map_to_core(cores[core])
                if layer.conv:
                    group.neurons[i].set_attributes(default_synapse_hw_name="loihi_conv_synapse")
            if k == len(network.layers) - 1:
                for n in group.neurons:
                    n.set_attributes(log_spikes=layer.spiking, log_potential=not layer.spiking)
            if layer.synapses is not None:
                source, target, weight = layer.synapses
                self.groups[-1].connect_neurons_sparse(group, {"weight": (weight.double() * SCALE).tolist()},
                                                       list(zip(source.tolist(), target.tolist())))
            self.groups.append(group)
        self.chip = sanafe.SpikingChip(self.arch)
        self.chip.load(net)
        self.fresh = True

    def run(self, first_current: torch.Tensor, T: int) -> ChipResult:
        """One image whose first layer's input current is `first_current` [n] (thresholds), for the
        simulator's T steps (T + depth - 1 on the chip)."""
        if not self.fresh:
            self.chip.reset()  # potentials and queues cleared; biases and thresholds kept
        self.fresh = False
        mapped = self.chip.mapped_neuron_groups
        for k, layer in enumerate(self.network.layers):
            bias = first_current if layer.bias is None else (layer.bias if layer.spiking else torch.zeros_like(layer.bias))
            initial = layer.initial - k * bias if layer.spiking else layer.initial
            for neuron, b, v in zip(mapped[layer.name], (bias.double() * SCALE).tolist(),
                                    (initial.double() * SCALE).tolist()):
                neuron.set_attributes(model_attributes={"bias": b, "potential": v})
        steps = T + self.network.depth - 1
        result = self.chip.sim(steps, spike_trace=True, potential_trace=True, processing_threads=1)
        last = self.network.layers[-1]
        if last.spiking:
            counts = torch.zeros(last.neurons)
            for step in result["spike_trace"]:
                for address in step:
                    if address.group_name == last.name:
                        counts[address.neuron_offset] += 1
            output = counts.view(-1, self.population).sum(1)
        else:
            output = torch.tensor(result["potential_trace"][-1], dtype=torch.float64) / SCALE + T * last.bias.double()
        return ChipResult(output, dict(result["energy"]), float(result["sim_time"]), int(result["spikes"]),
                          int(result["neurons_updated"]), int(result["neurons_fired"]), int(result["packets_sent"]))
