"""What an evaluation stage writes: per-T and per-layer CSVs, two PNGs and flat metrics JSON.

Metric keys do not depend on T_eval, so `dvc metrics diff` lines up across revisions.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field, fields
from pathlib import Path

import pandas as pd
import torch

from deepsnn.core.io import write_json
from deepsnn.evaluation.plots import plot_accuracy_vs_T, plot_spikes_and_energy
from deepsnn.evaluation.stored import Simulation
from deepsnn.evaluation.tables import LOW_T, curve_table, write_csv

HELP = {
    "simulation": "stored simulation (per-sample predictions at every t): reused while still valid",
    "metrics": "metrics JSON to write",
    "curve": "CSV to write: per T accuracy, latency, energy",
    "layers": "CSV to write: spike statistics per layer",
    "plot": "PNG to write: accuracy vs T",
    "energy_plot": "PNG to write: firing rates, accuracy vs energy",
}


@dataclass(frozen=True)
class EvaluationPaths:
    """The files every evaluation stage reads back (`simulation`) and writes."""
    simulation: Path
    metrics: Path
    curve: Path
    layers: Path
    plot: Path
    energy_plot: Path

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        for f in fields(EvaluationPaths):
            parser.add_argument(f"--{f.name.replace('_', '-')}", type=Path, required=True, help=HELP[f.name])

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> EvaluationPaths:
        return cls(**{f.name: getattr(args, f.name) for f in fields(cls)})


@dataclass
class Evaluation:
    """One evaluation's result: everything its outputs are written from."""
    simulation: Simulation
    labels: torch.Tensor  # test labels, [N]
    T_eval: int
    latency: float  # seconds per sample to simulate T_eval steps of one batch
    reused: bool  # whether the simulation was read off the stored one
    hardware: str  # what the latency was measured on
    title: str  # for the figures
    accuracy_key: str  # metric name of the SNN accuracy at T_eval
    started: float  # time.perf_counter() when the stage started
    experiment: dict[str, str]  # pipeline (conversion | direct), dataset, architecture: first in the JSON
    metrics: dict = field(default_factory=dict)  # the stage's own metrics, first in the JSON
    reference: tuple[str, float] | None = None  # (name, accuracy) of a line to draw, e.g. the ANN


def write_evaluation(result: Evaluation, paths: EvaluationPaths) -> float:
    """Write the curve and layer CSVs, the PNGs and the flat metrics JSON; returns the accuracy at T_eval."""
    sim, T_eval = result.simulation, result.T_eval
    table = curve_table(sim, result.labels)
    stats = sim.stats()
    layers = pd.DataFrame(stats.layer_table(T_eval))
    at_T_eval = table.iloc[T_eval - 1]
    energy = stats.metrics(T_eval)
    write_csv(table, paths.curve)
    write_csv(layers, paths.layers)
    plot_accuracy_vs_T(table, paths.plot, result.title, T_eval, reference=result.reference)
    ann_point = (energy["ann_energy_uj_per_sample"], result.reference[1]) if result.reference else None
    plot_spikes_and_energy(table, layers, paths.energy_plot, result.title, T_eval, ann=ann_point)
    write_json({
        **result.experiment,
        **result.metrics,
        result.accuracy_key: round(float(at_T_eval["accuracy"]), 4),
        "T_eval": T_eval,
        **{f"{result.accuracy_key}_T{T}": round(float(table.iloc[T - 1]["accuracy"]), 4)
           for T in LOW_T if T <= len(table)},
        "latency_s_per_sample": float(f"{result.latency:.4g}"),
        "latency_batch_size": min(sim.batch_size, sim.num_samples),
        "device": sim.device,
        "hardware": result.hardware,
        "test_samples": sim.num_samples,
        **energy,
        "simulated_T": sim.T,
        "simulation_time_s": round(float(sim.seconds[-1]), 1),
        "simulation_reused": result.reused,
        "eval_time_s": round(time.perf_counter() - result.started, 1),
    }, paths.metrics)
    print(f"{result.accuracy_key} {at_T_eval['accuracy']:.2f}% at T_eval={T_eval}; {result.latency * 1e3:.3f} "
          f"ms/sample on {sim.device}; {energy['energy_uj_per_sample']:.3g} µJ/sample "
          f"({energy['energy_ratio']:.3g} of the ANN's)")
    return float(at_T_eval["accuracy"])
