"""PNG figures of an evaluation (no browser or CDN needed to look at them)."""

from __future__ import annotations

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
                       reference: tuple[str, float] | None = None) -> None:
    """PNG of accuracy against T, with the T_eval point marked and an optional reference line."""
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    ax.plot(table["T"], table["accuracy"], marker=".", label="SNN")
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


def plot_spikes_and_energy(table: pd.DataFrame, layers: pd.DataFrame, path: str | Path, title: str,
                           T_eval: int, ann: tuple[float, float] | None = None) -> None:
    """PNG: firing rate per spiking layer at T_eval, and accuracy against energy per sample over T
    (with the ANN's point, (energy, accuracy), if given)."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4), dpi=120)
    left.barh(layers["layer"], layers["firing_rate"], color="C0")
    left.invert_yaxis()
    left.set_xlabel(f"firing rate at T={T_eval} (spikes per neuron per timestep)")
    left.set_title("Firing rate per layer")
    left.grid(alpha=0.3, axis="x")
    right.plot(table["energy_uj_per_sample"], table["accuracy"], marker=".", label="SNN, T = 1, 2, ...")
    at = table.loc[table["T"] == T_eval]
    if len(at):
        right.scatter(at["energy_uj_per_sample"], at["accuracy"], color="C3", zorder=3, label=f"T_eval={T_eval}")
    if ann is not None:
        right.scatter([ann[0]], [ann[1]], color="gray", marker="s", zorder=3, label="ANN")
    right.set_xscale("log")
    right.set_ylim(max(0.0, table["accuracy"].quantile(0.25) - 5), 100)
    right.set_xlabel("estimated energy per sample (µJ, 45 nm)")
    right.set_ylabel("test accuracy (%)")
    right.set_title("Accuracy against energy")
    right.grid(alpha=0.3)
    right.legend(loc="lower right")
    fig.suptitle(title)
    _save_png(fig, path)
