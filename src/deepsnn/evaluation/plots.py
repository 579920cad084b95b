"""PNG figures of an evaluation (no browser or CDN needed to look at them)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from deepsnn.core.io import atomic_path  # noqa: E402


def _save_png(fig, path: str | Path) -> None:
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def plot_accuracy_vs_T(table: pd.DataFrame, path: str | Path, title: str, T_eval: int,
                       reference: tuple[str, float] | None = None, exits: pd.DataFrame | None = None) -> None:
    """PNG of accuracy against T, with the T_eval point marked, an optional reference line and
    early exit's accuracy against its mean timesteps (one point per margin)."""
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    ax.plot(table["T"], table["accuracy"], marker=".", label="SNN, every image to T")
    if exits is not None:
        ax.plot(exits["mean_T"], exits["accuracy"], color="C2", alpha=0.8, label="early exit: mean T per margin")
    at = table.loc[table["T"] == T_eval, "accuracy"]
    if len(at):
        ax.scatter([T_eval], [at.iloc[0]], color="C3", zorder=3, label=f"T_eval={T_eval}: {at.iloc[0]:.2f}%")
    if reference is not None:
        ax.axhline(reference[1], color="gray", linestyle="--", label=f"{reference[0]}: {reference[1]:.2f}%")
    low = max(0.0, min(table["accuracy"].quantile(0.25), reference[1] if reference else 100) - 5)
    ax.set_ylim(low, 100)
    ax.set_xlabel("timesteps T")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    _save_png(fig, path)


@dataclass(frozen=True)
class CodedPoint:
    """Another coding's single answer, drawn beside the rate-coded curves."""
    name: str
    T: int
    accuracy: float
    energy_uj: float  # 45 nm arithmetic estimate
    chip_energy_uj: float  # Loihi estimate


def plot_spikes_and_energy(table: pd.DataFrame, layers: pd.DataFrame, exits: pd.DataFrame, chosen: dict,
                           path: str | Path, title: str, T_eval: int, ann: tuple[float, float] | None = None,
                           coded: CodedPoint | None = None) -> None:
    """PNG: firing rate per spiking layer at T_eval, and accuracy against energy per image of fixed-T
    rate coding (one point per T), early exit (one point per margin, the chosen one marked) and
    another coding, on the 45 nm arithmetic estimate (with the ANN's MACs) and on the Loihi estimate."""
    fig, (rates, arith, chip) = plt.subplots(1, 3, figsize=(16, 4.5), dpi=110)
    rates.barh(layers["layer"], layers["firing_rate"], color="C0")
    rates.invert_yaxis()
    rates.set_xlabel(f"firing rate at T={T_eval} (spikes per neuron per timestep)")
    rates.set_title("Firing rate per layer")
    rates.grid(alpha=0.3, axis="x")
    low = max(0.0, min(table["accuracy"].quantile(0.25), exits["accuracy"].quantile(0.25)) - 5)
    for ax, column, label in ((arith, "energy_uj_per_sample", "45 nm arithmetic estimate"),
                              (chip, "chip_energy_uj_per_sample", "Loihi chip estimate (SANA-FE's costs)")):
        ax.plot(table[column], table["accuracy"], marker=".", label="fixed T = 1, 2, ...")
        at = table.loc[table["T"] == T_eval]
        ax.scatter(at[column], at["accuracy"], color="C3", zorder=3, label=f"fixed T_eval={T_eval}")
        ax.plot(exits[column], exits["accuracy"], color="C2", alpha=0.8, label="early exit, one point per margin")
        key = "early_exit_energy_uj_per_sample" if column == "energy_uj_per_sample" else "early_exit_chip_energy_uj_per_sample"
        ax.scatter([chosen[key]], [chosen["early_exit_accuracy"]], color="C2", marker="D", zorder=4,
                   label=f"early exit, chosen margin: mean T {chosen['early_exit_mean_T']:.2f}")
        if coded is not None:
            x = coded.energy_uj if column == "energy_uj_per_sample" else coded.chip_energy_uj
            ax.scatter([x], [coded.accuracy], color="C4", marker="*", s=120, zorder=4,
                       label=f"{coded.name.replace('_', '-')} coding, T={coded.T}")
        if ann is not None and column == "energy_uj_per_sample":
            ax.scatter([ann[0]], [ann[1]], color="gray", marker="s", zorder=3, label="ANN (MACs x 4.6 pJ)")
        ax.set_xscale("log")
        ax.set_ylim(low, 100)
        ax.set_xlabel(f"energy per image (µJ, {label})")
        ax.set_ylabel("test accuracy (%)")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=7)
    arith.set_title("Accuracy against energy (arithmetic)")
    chip.set_title("Accuracy against energy (chip)")
    fig.suptitle(title)
    _save_png(fig, path)
