"""Accuracy against timesteps: one simulation gives the whole curve.

A simulator is any function `(images, T, clock) -> per-step outputs [T, B, classes]`; it appends
the wall-clock time of each finished step to `clock`. The prediction after t steps is the
class with the largest accumulated output, so one run to T_max yields the prediction of every
sample at every t (kept as a [T_max, N] table, from which any T <= T_max is read off).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from tqdm import tqdm  # noqa: E402

from deepsnn.io import atomic_path, write_json  # noqa: E402

Simulator = Callable[[torch.Tensor, int, list], torch.Tensor]


@dataclass
class Simulation:
    predictions: torch.Tensor  # [T, N] uint8: predicted class after t+1 steps
    seconds: torch.Tensor  # [T] float64: wall-clock to finish step t+1, summed over batches
    batch_size: int
    device: str

    @property
    def num_samples(self) -> int:
        return self.predictions.shape[1]


class Clock(list):
    """Cumulative step times of one batch: call tick() after each step."""

    def __init__(self, device: torch.device):
        super().__init__()
        self.device = device
        self.start = time.perf_counter()

    def tick(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.append(time.perf_counter() - self.start)


def hardware(device: torch.device) -> str:
    """What a timing was measured on, e.g. "cpu: AMD EPYC, 2 threads" or "cuda: NVIDIA H200"."""
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"cpu: {model}, {torch.get_num_threads()} threads"


def predictions_from_steps(step_outputs: torch.Tensor) -> torch.Tensor:
    """[T, B, K] per-step outputs -> [T, B] class with the largest running sum (lowest index on ties)."""
    return step_outputs.cumsum(0).argmax(-1)


@torch.no_grad()
def simulate_dataset(simulator: Simulator, images: torch.Tensor, T: int, batch_size: int,
                     device: torch.device, prepare: Callable[[torch.Tensor], torch.Tensor],
                     desc: str = "simulate") -> Simulation:
    """Run `simulator` for T steps over all `images` (uint8, batched, `prepare`d on device)."""
    predictions = torch.empty(T, len(images), dtype=torch.uint8)
    seconds = torch.zeros(T, dtype=torch.float64)
    for start in tqdm(range(0, len(images), batch_size), desc=desc, leave=False):
        x = prepare(images[start:start + batch_size].to(device))
        clock = Clock(device)
        steps = simulator(x, T, clock)
        predictions[:, start:start + len(x)] = predictions_from_steps(steps).to(torch.uint8).cpu()
        seconds += torch.tensor(clock, dtype=torch.float64)
    return Simulation(predictions, seconds, batch_size, device.type)


def accuracy_curve(predictions: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """[T, N] predictions -> [T] accuracy in percent."""
    return (predictions.long() == labels.view(1, -1)).double().mean(1) * 100.0


def curve_table(sim: Simulation, labels: torch.Tensor) -> pd.DataFrame:
    """Tidy table: T, accuracy (%), latency (wall-clock seconds per sample to reach T)."""
    return pd.DataFrame({
        "T": range(1, sim.predictions.shape[0] + 1),
        "accuracy": accuracy_curve(sim.predictions, labels).numpy().round(4),
        "latency_s_per_sample": (sim.seconds / sim.num_samples).numpy(),
    })


def write_curve_csv(table: pd.DataFrame, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")


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
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def add_output_args(parser) -> None:
    """The three outputs every evaluation stage writes."""
    parser.add_argument("--metrics", type=Path, required=True, help="metrics JSON to write")
    parser.add_argument("--curve", type=Path, required=True, help="CSV to write: T, accuracy, latency")
    parser.add_argument("--plot", type=Path, required=True, help="PNG to write: accuracy vs T")


def write_evaluation(sim: Simulation, labels: torch.Tensor, T_eval: int, args, title: str, accuracy_key: str,
                     started: float, device: torch.device, extra: dict | None = None,
                     reference: tuple[str, float] | None = None) -> float:
    """Write the curve CSV, the PNG and the flat metrics JSON of one evaluation; returns the
    accuracy at T_eval. Metric keys do not depend on T, so `dvc metrics diff` lines up."""
    table = curve_table(sim, labels)
    at_T_eval = table.iloc[T_eval - 1]
    write_curve_csv(table, args.curve)
    plot_accuracy_vs_T(table, args.plot, title, T_eval, reference=reference)
    write_json({
        **(extra or {}),
        accuracy_key: round(float(at_T_eval["accuracy"]), 4),
        "T_eval": T_eval,
        "latency_s_per_sample": float(f"{at_T_eval['latency_s_per_sample']:.4g}"),
        "latency_batch_size": sim.batch_size,
        "device": sim.device,
        "hardware": hardware(device),
        "test_samples": sim.num_samples,
        "eval_time_s": round(time.perf_counter() - started, 1),
    }, args.metrics)
    print(f"{accuracy_key} {at_T_eval['accuracy']:.2f}% at T_eval={T_eval}; "
          f"{at_T_eval['latency_s_per_sample'] * 1e3:.3f} ms/sample on {sim.device}")
    return float(at_T_eval["accuracy"])
