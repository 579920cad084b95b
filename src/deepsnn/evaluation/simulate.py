"""Accuracy against timesteps: one simulation of the test set gives the whole curve.

A simulator is any function `(images, T, clock=None, counter=None) -> per-step outputs [T, B, classes]`;
it ticks `clock` after each finished step. The prediction after t steps is the class with the
largest accumulated output, so one run to T_max yields the prediction of every sample at every t
(kept as a [T_max, N] table, from which any T <= T_max is read off).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from tqdm import tqdm

from deepsnn.core.data import ImageDataset
from deepsnn.core.spiking import SpikingLayer
from deepsnn.evaluation.energy import SpikeCounter
from deepsnn.core.errors import UserError
from deepsnn.evaluation.stored import Simulation, fingerprint, simulate_or_reuse
from deepsnn.evaluation.timing import Clock, measure_latency

Simulator = Callable[..., torch.Tensor]  # (images, T, clock=None, counter=None) -> [T, B, classes]
Prepare = Callable[[torch.Tensor], torch.Tensor]  # uint8 images on the device -> the simulator's input


class SimulationTooLarge(UserError, MemoryError):
    """The simulation asked for would not fit in this machine's memory."""


def predictions_from_steps(step_outputs: torch.Tensor) -> torch.Tensor:
    """[T, B, K] per-step outputs -> [T, B] class with the largest running sum (lowest index on ties)."""
    return step_outputs.cumsum(0).argmax(-1)


@torch.no_grad()
def simulate_dataset(simulator: Simulator, images: torch.Tensor, T: int, batch_size: int,
                     device: torch.device, prepare: Prepare, desc: str = "simulate",
                     counter: SpikeCounter | None = None) -> Simulation:
    """Run `simulator` for T steps over all `images` (uint8, batched, `prepare`d on device),
    counting spikes into `counter` if given."""
    predictions = torch.empty(T, len(images), dtype=torch.uint8)
    seconds = torch.zeros(T, dtype=torch.float64)
    for start in tqdm(range(0, len(images), batch_size), desc=desc, leave=False):
        x = prepare(images[start:start + batch_size].to(device))
        clock = Clock(device)
        steps = simulator(x, T, clock=clock, counter=counter)
        predictions[:, start:start + len(x)] = predictions_from_steps(steps).to(torch.uint8).cpu()
        seconds += torch.tensor(clock, dtype=torch.float64)
    return Simulation(predictions, seconds, batch_size, device.type,
                      spikes=None if counter is None else counter.state())


def available_memory() -> int:
    """Bytes of memory this process can still take (MemAvailable, else all of physical memory)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def simulation_bytes(T: int, samples: int, batch_size: int, classes: int, spiking_layers: int) -> int:
    """The memory a simulation of T steps takes beyond the model and its membrane state, which do not
    grow with T: the [T, N] uint8 prediction table, one batch's [T, B, classes] float32 step outputs
    four times over (the list of steps, their stack, the running sum, its argmax's temporaries) with
    the int64 argmax, and the spike counts ([layers, T] float64, twice). For eval_spatial at
    T=100000 this gives 17.8 GB; the peak measured there was about 17 GB."""
    batch = min(batch_size, samples)
    return T * samples + T * batch * (4 * 4 * classes + 8 + 1) + 4 * 8 * T * spiking_layers


def check_fits(stage: str, T_max: int, samples: int, batch_size: int, classes: int, spiking_layers: int,
               available: int | None = None) -> None:
    """Refuse, before any work, a simulation that would take more than 80% of the available memory."""
    need = simulation_bytes(T_max, samples, batch_size, classes, spiking_layers)
    have = int(0.8 * (available_memory() if available is None else available))
    if need <= have:
        return
    per_step = simulation_bytes(1, samples, batch_size, classes, spiking_layers)
    raise SimulationTooLarge(
        f"{stage}: simulating {samples:,} test images to T={T_max:,} (T_eval, or {stage}.horizon if larger) "
        f"would need about {need / 2**30:.1f} GiB for its predictions and per-step outputs, and this machine "
        f"has {have / 2**30:.1f} GiB to spare (80% of what is available). Set T_eval to at most "
        f"{have // per_step:,} in params.yaml, or lower {stage}.batch_size to shrink the per-step outputs.")


def warn_if_long(stage: str, simulator: Simulator, data: ImageDataset, prepare: Prepare, T_max: int,
                 batch_size: int, device: torch.device, hours: float = 2.0) -> float:
    """Time two steps of the first batch and print a warning when the whole simulation would take
    more than `hours`; returns the estimate in seconds."""
    x = prepare(data.test_images[:batch_size].to(device))
    simulator(x, 1)  # one-off start-up costs (compilation) are not per step
    clock = Clock(device)
    simulator(x, 2, clock=clock)
    batches = -(-len(data.test_images) // batch_size)
    estimate = clock[-1] / 2 * T_max * batches
    if estimate > hours * 3600:
        print(f"WARNING: {stage} will simulate {len(data.test_images):,} test images to T={T_max:,}: about "
              f"{estimate / 3600:.1f} hours on this machine ({clock[-1] / 2:.3g} s per step and batch of "
              f"{batch_size}). Stop it (Ctrl-C) and lower T_eval unless that is what you want.", flush=True)
    return estimate


@dataclass(frozen=True)
class SimulationPlan:
    """What an evaluation stage simulates and what its stored simulation's fingerprint covers."""
    stage: str  # the DVC stage, for messages
    T_eval: int
    horizon: int  # the curve is simulated up to max(horizon, T_eval)
    batch_size: int
    classes: int
    stored: Path  # where the last simulation is kept
    fingerprint: str  # the stage's source deps, model and data files and result-changing params

    @property
    def T_max(self) -> int:
        return max(self.horizon, self.T_eval)


def plan_simulation(stage: str, cfg: dict, T_eval: int, classes: int, stored: Path, code: list[Path],
                    inputs: list[Path], settings: dict) -> SimulationPlan:
    """The plan of `stage` (cfg: its params section): `code` and `inputs` are hashed with `settings`."""
    return SimulationPlan(stage, T_eval, cfg["horizon"], cfg["batch_size"], classes, stored,
                          fingerprint([*code, *inputs], settings))


def simulate_test_set(plan: SimulationPlan, simulator: Simulator, spiking_layers: list[SpikingLayer],
                      data: ImageDataset, prepare: Prepare, device: torch.device,
                      extra: Callable[[], dict]) -> tuple[Simulation, bool, float]:
    """What both evaluation stages do: the test set simulated to T_max with spikes counted (or read
    off the stored simulation while its fingerprint matches), then latency at T_eval measured on the
    first batch. `extra()` adds what the stage wants kept with a new simulation (MACs, ANN accuracy).
    Returns the simulation, whether it was reused, and the latency in seconds per sample."""
    check_fits(plan.stage, plan.T_max, len(data.test_images), plan.batch_size, plan.classes, len(spiking_layers))

    def run() -> Simulation:
        warn_if_long(plan.stage, simulator, data, prepare, plan.T_max, plan.batch_size, device)
        counter = SpikeCounter(spiking_layers, plan.T_max)
        sim = simulate_dataset(simulator, data.test_images, plan.T_max, plan.batch_size, device, prepare,
                               desc=f"{plan.stage} T<={plan.T_max}", counter=counter)
        sim.extra = extra()
        return sim

    sim, reused = simulate_or_reuse(plan.stored, plan.fingerprint, plan.T_max, run)
    latency = measure_latency(simulator, data.test_images[:plan.batch_size], plan.T_eval, device, prepare)
    return sim, reused, latency
