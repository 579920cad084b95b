"""The tidy per-T table of an evaluation (accuracy, latency, SynOps, energy) and CSV output."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch

from deepsnn.core.io import atomic_path
from deepsnn.evaluation.stored import Simulation

LOW_T = (1, 2, 4, 8)  # the timesteps every evaluation also reports as flat metrics (accuracy_T1, ...)


def accuracy_curve(predictions: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """[T, N] predictions -> [T] accuracy in percent."""
    return (predictions.long() == labels.view(1, -1)).double().mean(1) * 100.0


def curve_table(sim: Simulation, labels: torch.Tensor) -> pd.DataFrame:
    """Tidy table per T: accuracy (%), latency (wall-clock seconds per sample to reach T in the
    full simulation), SynOps and estimated energy per sample to reach T."""
    stats = sim.stats()
    return pd.DataFrame({
        "T": range(1, sim.T + 1),
        "accuracy": accuracy_curve(sim.predictions, labels).numpy().round(4),
        "latency_s_per_sample": (sim.seconds / sim.num_samples).numpy(),
        "synops_per_sample": stats.synops_per_sample(sim.T).numpy(),
        "energy_uj_per_sample": stats.energy_uj_per_sample(sim.T).numpy(),
    })


def write_csv(table: pd.DataFrame, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")
