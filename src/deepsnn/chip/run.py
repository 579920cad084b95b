"""One SNN on SANA-FE's Loihi model beside the project's own simulator, on the same images.

The chip pipelines the layers (a spike reaches the next layer one step later), so it runs T + depth - 1
steps for the simulator's T, and layer k (1-based) runs T + depth - k of the simulator's steps. The
analytical estimate of that schedule comes from the simulator's own counts, run to T + depth - 1 steps;
the estimate eval_* reports for every T is the same formula with T steps (no pipeline fill).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from deepsnn.chip.loihi import ChipLayers, LoihiCosts, analytic_energy_uj
from deepsnn.chip.mapping import ChipNetwork
from deepsnn.evaluation.simulation import Simulation


@dataclass(frozen=True)
class Schedule:
    T: int
    depth: int  # chip layers: the spiking layers, and a conversion SNN's output accumulators

    @property
    def steps(self) -> int:
        return self.T + self.depth - 1

    def layer_steps(self, layer: int) -> int:
        """Simulator steps that spiking layer `layer` (0-based) runs on the chip."""
        return self.steps - layer


def scheduled_counts(simulation: Simulation, schedule: Schedule) -> tuple[torch.Tensor, torch.Tensor]:
    """Per spiking layer, its spikes and SynOps per image on the chip's schedule ([layers] float64),
    from a simulation of `schedule.steps` steps."""
    if simulation.T != schedule.steps:
        raise ValueError(f"the simulation ran {simulation.T} steps and the chip runs {schedule.steps}")
    state, images = simulation.spikes, simulation.num_samples
    spikes = torch.stack([state["spikes"][l, :schedule.layer_steps(l)].sum() for l in range(len(state["names"]))])
    synops = torch.stack([state["synops"][l, :schedule.layer_steps(l)].sum() for l in range(len(state["names"]))])
    return spikes.double() / images, synops.double() / images


def run_images(network: ChipNetwork, costs: LoihiCosts, currents: torch.Tensor, T: int, population: int = 1) -> dict:
    """Run each image (its first layer's current, [N, n]) through SANA-FE: outputs [N, classes] and
    per-image means of energy (J), chip time (s) and event counts, and the seconds building took."""
    from deepsnn.chip.sanafe_run import ChipRunner

    start = time.perf_counter()
    runner = ChipRunner(network, costs, population)
    built = time.perf_counter() - start
    results = [runner.run(current, T) for current in currents]
    mean = lambda values: sum(values) / len(values)
    return {"outputs": torch.stack([r.output.double() for r in results]),
            "energy_j": {k: mean([r.energy_j[k] for r in results]) for k in results[0].energy_j},
            "sim_time_s": mean([r.sim_time_s for r in results]),
            "synaptic_events": mean([r.synaptic_events for r in results]),
            "neuron_updates": mean([r.neuron_updates for r in results]),
            "spikes": mean([r.spikes for r in results]), "messages": mean([r.messages for r in results]),
            "build_s": built, "run_s": time.perf_counter() - start - built}


def analytic_uj(costs: LoihiCosts, chip: ChipLayers, simulation: Simulation, schedule: Schedule) -> float:
    spikes, synops = scheduled_counts(simulation, schedule)
    return float(analytic_energy_uj(costs, chip, schedule.steps, spikes, synops))
