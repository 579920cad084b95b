"""The stored simulation of an evaluation stage, and when it may be reused.

Each evaluation stage keeps its last simulation (the predicted class of every test image at every
timestep, and the spike counts of every layer at every step). A later run with a T_eval within
its horizon reads the curve off it instead of simulating again, but only while its fingerprint
matches: the stage's own inputs as dvc.yaml lists them (its script and package folders, its model
and data files) and the params that change what the simulation produces.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import torch
import yaml

from deepsnn.evaluation.energy import SpikeStats
from deepsnn.core.io import atomic_save

IGNORED = ("__pycache__",)  # what .dvcignore keeps out of DVC's hashes of the same folders
IGNORED_SUFFIXES = (".pyc",)


@dataclass
class Simulation:
    predictions: torch.Tensor  # [T, N] uint8: predicted class after t+1 steps
    seconds: torch.Tensor  # [T] float64: wall-clock to finish step t+1, summed over batches
    batch_size: int
    device: str
    spikes: dict | None = None  # SpikeCounter.state() of the run, if counted
    extra: dict = field(default_factory=dict)  # what else the stage wants kept (e.g. ANN accuracy, MACs)
    fingerprint: str = ""  # what produced it (see `fingerprint`)

    @property
    def num_samples(self) -> int:
        return self.predictions.shape[1]

    @property
    def T(self) -> int:
        return self.predictions.shape[0]

    def truncated(self, T: int) -> Simulation:
        spikes = None if self.spikes is None else {
            **self.spikes, "spikes": self.spikes["spikes"][:, :T], "synops": self.spikes["synops"][:, :T]}
        return replace(self, predictions=self.predictions[:T], seconds=self.seconds[:T], spikes=spikes)

    def stats(self) -> SpikeStats:
        return SpikeStats.from_state(self.spikes, self.num_samples, self.extra["analog_macs"], self.extra["ann_macs"])


def source_deps(stage: str, dvc_yaml: str | Path = "dvc.yaml") -> list[Path]:
    """The deps of `stage` in dvc.yaml that no stage produces: its script and package folders
    (the artifacts among its deps, model and data files, reach the stage as arguments)."""
    dvc_yaml = Path(dvc_yaml)
    stages = yaml.safe_load(dvc_yaml.read_text())["stages"]
    produced = {next(iter(o)) if isinstance(o, dict) else o
                for s in stages.values() for kind in ("outs", "metrics", "plots") for o in s.get(kind, [])}
    return [dvc_yaml.parent / d for d in stages[stage]["deps"] if "${" not in d and d not in produced]


def _files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.is_file() and not set(IGNORED) & set(p.parts)
                  and not p.name.endswith(IGNORED_SUFFIXES))


def fingerprint(paths: list[str | Path], settings: dict) -> str:
    """sha256 over the relative names and bytes of every file in `paths` (files or folders) and the
    `settings`: equal fingerprints mean a stored simulation is what these inputs would give again."""
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    for root in map(Path, paths):
        for path in _files(root):
            digest.update(str(path.relative_to(root) if path != root else path.name).encode())
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()


def save_simulation(sim: Simulation, path: str | Path) -> None:
    atomic_save(asdict(sim), path)


def load_simulation(path: str | Path, key: str, T: int) -> Simulation | None:
    """The simulation stored at `path`, cut to T steps, if it has this fingerprint and at least T
    steps; None otherwise (then the caller simulates again, up to the new T)."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        sim = Simulation(**torch.load(path, map_location="cpu", weights_only=True))
    except Exception:  # unreadable or from an older layout: simulate again
        return None
    if sim.fingerprint != key or sim.T < T:
        return None
    return sim.truncated(T)


def simulate_or_reuse(path: str | Path, key: str, T: int, run: Callable[[], Simulation]) -> tuple[Simulation, bool]:
    """The stored simulation at `path` if it is valid for `key` and T, else `run()` (then stored).
    Returns it and whether it was reused."""
    sim = load_simulation(path, key, T)
    if sim is not None:
        print(f"reusing the stored simulation {path} (same code, model, data and settings; {sim.T} steps)")
        return sim, True
    sim = run()
    sim.fingerprint = key
    save_simulation(sim, path)
    return sim, False
