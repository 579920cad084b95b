"""What eval_sweep shows of the low-T correction: accuracy at every T of the ANN, of the corrected
SNN and of the same SNN without its correction (where both were simulated), as a CSV and a PNG."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from deepsnn.core.io import atomic_path  # noqa: E402
from deepsnn.evaluation.simulation import accuracy_curve  # noqa: E402
from deepsnn.evaluation.tables import LOW_T  # noqa: E402


def correction_table(snn: torch.Tensor, uncorrected: torch.Tensor | None, labels: torch.Tensor,
                     ann_accuracy: float) -> pd.DataFrame:
    """Per T up to the SNN's simulation: ANN accuracy, the SNN's, and the uncorrected SNN's where it
    was simulated (empty beyond its horizon, or everywhere without a correction). Predictions are [T, N]."""
    accuracy = accuracy_curve(snn, labels).numpy().round(4)
    plain = torch.full((snn.shape[0],), float("nan"), dtype=torch.float64)
    if uncorrected is not None:
        T = min(len(uncorrected), len(plain))
        plain[:T] = accuracy_curve(uncorrected[:T], labels)
    return pd.DataFrame({"T": range(1, len(accuracy) + 1), "ann_accuracy": round(ann_accuracy, 4),
                         "snn_accuracy": accuracy, "uncorrected_accuracy": plain.numpy().round(4)})


def low_T_metrics(table: pd.DataFrame) -> dict[str, float]:
    """Flat metrics: each SNN's accuracy and loss against the ANN at T = 1, 2, 4, 8 (where simulated)."""
    metrics = {}
    for T in LOW_T:
        if T > len(table):
            continue
        row = table.iloc[T - 1]
        for name in ("snn", "uncorrected"):
            if not pd.isna(row[f"{name}_accuracy"]):
                metrics[f"{name}_accuracy_T{T}"] = float(row[f"{name}_accuracy"])
                metrics[f"{name}_loss_T{T}"] = round(float(row["ann_accuracy"] - row[f"{name}_accuracy"]), 4)
    return metrics


def plot_correction(table: pd.DataFrame, path: str | Path, title: str, correction: str) -> None:
    """PNG: accuracy against T (log scale) of the ANN (line), the SNN, and the SNN without its correction."""
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    ax.axhline(table["ann_accuracy"].iloc[0], color="gray", linestyle="--",
               label=f"ANN: {table['ann_accuracy'].iloc[0]:.2f}%")
    ax.plot(table["T"], table["snn_accuracy"], marker=".", label=f"SNN, correction: {correction}")
    plain = table.dropna(subset=["uncorrected_accuracy"])
    if len(plain):
        ax.plot(plain["T"], plain["uncorrected_accuracy"], marker=".", color="C1", label="SNN without correction")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("timesteps T")
    ax.set_ylabel("test accuracy (%)")
    low = min(table["snn_accuracy"].min(), plain["uncorrected_accuracy"].min() if len(plain) else 100)
    ax.set_ylim(max(0.0, low - 2), 100)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
