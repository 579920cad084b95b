"""The tidy tables of an evaluation (per T, per layer, per early-exit margin) and CSV output."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch

from deepsnn.chip.loihi import ChipLayers, LoihiCosts, analytic_energy_uj
from deepsnn.core.io import atomic_path
from deepsnn.evaluation.early_exit import EarlyExit
from deepsnn.evaluation.energy import SpikeStats
from deepsnn.evaluation.simulation import Simulation, accuracy_curve

LOW_T = (1, 2, 4, 8)  # the timesteps every evaluation also reports as flat metrics (accuracy_T1, ...)


def chip_energy_per_T(stats: SpikeStats, costs: LoihiCosts, chip: ChipLayers, T: int) -> torch.Tensor:
    """[T] the chip estimate per image to reach each t = 1..T (every layer stepping t times)."""
    spikes = stats.spikes[:, :T].cumsum(1).double() / stats.samples
    synops = stats.synops[:, :T].cumsum(1).double() / stats.samples
    return analytic_energy_uj(costs, chip, torch.arange(1, T + 1), spikes, synops)


def curve_table(sim: Simulation, labels: torch.Tensor, latency: torch.Tensor, stats: SpikeStats, costs: LoihiCosts,
                chip: ChipLayers) -> pd.DataFrame:
    """Tidy table per T: accuracy (%), latency (wall-clock seconds per sample to reach T, timed on
    one batch), spikes and SynOps per sample to reach T, and the energy per sample: the 45 nm
    arithmetic estimate and the Loihi chip estimate."""
    return pd.DataFrame({
        "T": range(1, sim.T + 1),
        "accuracy": accuracy_curve(sim.predictions, labels).numpy().round(4),
        "latency_s_per_sample": latency.numpy(),
        "spikes_per_sample": stats.spikes_per_sample(sim.T).numpy(),
        "synops_per_sample": stats.synops_per_sample(sim.T).numpy(),
        "energy_uj_per_sample": stats.energy_uj_per_sample(sim.T).numpy(),
        "chip_energy_uj_per_sample": chip_energy_per_T(stats, costs, chip, sim.T).numpy(),
    })


def chip_energy_at_exits(stats: SpikeStats, costs: LoihiCosts, chip: ChipLayers, result: EarlyExit,
                         T_max: int) -> float:
    """The chip estimate per image of early exit: each image's neurons step to its own exit; its
    spikes and SynOps (counted to its exit over all layers) cost what they cost on average over the
    layers at T_max (messages per spike and synapse energy differ by layer)."""
    spikes = stats.spikes[:, :T_max].sum(1).double()
    synops = stats.synops[:, :T_max].sum(1).double()
    share_spikes = spikes / spikes.sum().clamp(min=1)
    share_synops = synops / synops.sum().clamp(min=1)
    mean_T = result.exits.double().mean()
    return float(analytic_energy_uj(costs, chip, mean_T, share_spikes * result.spikes, share_synops * result.synops))


def early_exit_table(results: list[EarlyExit], stats: SpikeStats, costs: LoihiCosts, chip: ChipLayers,
                     T_max: int) -> pd.DataFrame:
    """One row per margin: accuracy, mean and 95th-percentile timesteps, spikes, SynOps and energy per image."""
    return pd.DataFrame([{"margin": r.margin, "accuracy": round(r.accuracy, 4), "mean_T": r.mean_T, "p95_T": r.p95_T,
                          "spikes_per_sample": r.spikes, "synops_per_sample": r.synops,
                          "energy_uj_per_sample": r.energy_uj,
                          "chip_energy_uj_per_sample": chip_energy_at_exits(stats, costs, chip, r, T_max)}
                         for r in results])


def write_csv(table: pd.DataFrame, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")
