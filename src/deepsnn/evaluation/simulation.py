"""Accuracy against timesteps: one simulation of a set of images gives the whole curve.

A simulator is any function `(images, T, clock=None, counter=None) -> per-step outputs [T, B, classes]`;
it ticks `clock` after each finished step and hands each spiking layer's spikes to `counter`. The
prediction after t steps is the class with the largest output summed over steps 1..t, so one run
to T_max yields every sample's prediction at every t. A `Simulation` keeps those summed outputs
([T, N, classes]: early exit reads margins off them) and the spike counts, nothing that depends on
the clock, so the same inputs give the same bytes; the simulation stages store it, and the
evaluation stages read any T up to T_max off it (and time one batch themselves).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch

from deepsnn.core.errors import UserError
from deepsnn.core.io import atomic_save
from deepsnn.core.progress import progress
from deepsnn.core.spiking import SpikingLayer
from deepsnn.evaluation.energy import SpikeCounter, SpikeStats
from deepsnn.evaluation.timing import Clock

Simulator = Callable[..., torch.Tensor]  # (images, T, clock=None, counter=None) -> [T, B, classes]
Prepare = Callable[[torch.Tensor], torch.Tensor]  # uint8 images on the device -> the simulator's input


class SimulationError(UserError, RuntimeError):
    """A simulation asked for that would not fit or would take too long, or a stored one that cannot be read."""


@dataclass
class Simulation:
    """One simulation of N images to T steps."""
    outputs: torch.Tensor  # [T, N, classes] float32: each image's output summed over steps 1..t
    spikes: dict  # SpikeCounter.state()

    @property
    def T(self) -> int:
        return self.outputs.shape[0]

    @property
    def num_samples(self) -> int:
        return self.outputs.shape[1]

    @property
    def predictions(self) -> torch.Tensor:
        """[T, N]: the class with the largest summed output after each t (lowest index on ties)."""
        return self.outputs.argmax(-1)

    def stats(self, analog_macs: int, ann_macs: int) -> SpikeStats:
        return SpikeStats.from_state(self.spikes, analog_macs, ann_macs)


def accuracy_curve(predictions: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """[T, N] predictions -> [T] accuracy in percent."""
    return (predictions.long() == labels.view(1, -1)).double().mean(1) * 100.0


@torch.no_grad()
def simulate_images(simulator: Simulator, spiking_layers: list[SpikingLayer], images: torch.Tensor, T: int,
                    batch_size: int, device: torch.device, prepare: Prepare, desc: str) -> Simulation:
    """Run `simulator` for T steps over all `images` (uint8, in batches, `prepare`d on the device),
    counting every spiking layer's spikes."""
    outputs = torch.empty(T, len(images), 0)
    counter = SpikeCounter(spiking_layers, T)
    batches = range(0, len(images), batch_size)
    for start in progress(batches, desc, total=len(batches)):
        x = prepare(images[start:start + batch_size].to(device))
        summed = simulator(x, T, counter=counter).float().cumsum(0).cpu()
        if outputs.shape[2] == 0:
            outputs = torch.empty(T, len(images), summed.shape[2])
        outputs[:, start:start + len(x)] = summed
    return Simulation(outputs, counter.state())


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
    grow with T: the [T, N, classes] float32 summed outputs and [T, N] per-sample spike counts (int32 +
    int64) twice over (kept, and stacked when stored), one batch's [T, B, classes] step outputs four
    times over (the list of steps, their stack, the running sum, its copy) and its per-step counts
    ([layers, T, 2, B] int64, twice)."""
    batch = min(batch_size, samples)
    return 2 * T * samples * (4 * classes + 12) + T * batch * (4 * 4 * classes + 2 * 16 * spiking_layers)


def check_feasible(stage: str, T: int, samples: int, batch_size: int, classes: int, spiking_layers: int,
                   seconds_per_step: float, max_hours: float, available: int | None = None) -> None:
    """Refuse, before any work, a simulation to T steps that would take more than 80% of the available
    memory, or longer than `max_hours` (from the time of one step of one batch), naming the largest T
    within each bound."""
    have = int(0.8 * (available_memory() if available is None else available))
    need = simulation_bytes(T, samples, batch_size, classes, spiking_layers)
    if need > have:
        largest = have // simulation_bytes(1, samples, batch_size, classes, spiking_layers)
        raise SimulationError(
            f"{stage}: simulating {samples:,} images to T={T:,} ({stage}.horizon) would need about "
            f"{need / 2**30:.1f} GiB for its outputs and spike counts, and this machine has {have / 2**30:.1f} GiB "
            f"to spare (80% of what is available). Set {stage}.horizon to at most {largest:,}, or lower "
            f"{stage}.batch_size to shrink the per-step outputs.")
    batches = -(-samples // batch_size)
    hours = seconds_per_step * T * batches / 3600
    if hours > max_hours:
        largest = int(max_hours * 3600 / (seconds_per_step * batches))
        raise SimulationError(
            f"{stage}: simulating {samples:,} images to T={T:,} ({stage}.horizon) would take about {hours:.1f} hours "
            f"on this machine ({seconds_per_step:.3g} s per step of a batch of {batch_size}), more than "
            f"{stage}.max_hours = {max_hours:g}. Set {stage}.horizon to at most {largest:,}, or raise "
            f"{stage}.max_hours if that is what you want.")


def seconds_per_step(simulator: Simulator, images: torch.Tensor, device: torch.device, prepare: Prepare) -> float:
    """Wall-clock of one step of one batch of `images` (after an untimed step: compilation is not per step)."""
    x = prepare(images.to(device))
    simulator(x, 1)
    clock = Clock(device)
    simulator(x, 2, clock=clock)
    return clock[-1] / 2


@dataclass
class StoredSimulation:
    """What a simulation stage writes: the test set's and the held-out training images' simulations
    and what else the evaluation needs (MAC counts, the ANN's accuracy, other codings...)."""
    test: Simulation
    holdout: Simulation
    holdout_labels: torch.Tensor  # [N_holdout]: the labels of the held-out training images
    analog_macs: int  # per image: the layer fed analog pixels, computed once per image
    ann_macs: int  # per image: the same network run as an ANN
    settings: dict  # what it was simulated with (batch size, device, compile, ...)
    extra: dict = field(default_factory=dict)  # what else a pipeline keeps (e.g. the ANN's accuracy)

    def save(self, path: str | Path) -> None:
        state = asdict(self)
        atomic_save(state, path)

    @classmethod
    def load(cls, path: str | Path, written_by: str) -> StoredSimulation:
        path = Path(path)
        redo = (f"It is written by the DVC stage `{written_by}`: run `dvc repro {written_by}@<data set>`, or "
                f"`dvc checkout {path}` to restore the committed run's copy.")
        if not path.is_file():
            raise SimulationError(f"{path}: simulation not found. {redo}")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            return cls(test=Simulation(**state.pop("test")), holdout=Simulation(**state.pop("holdout")), **state)
        except Exception as err:
            raise SimulationError(f"{path}: not a readable simulation ({type(err).__name__}); it is truncated, "
                                  f"corrupted or from another version of the code. {redo}") from None
