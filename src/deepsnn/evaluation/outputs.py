"""What an evaluation stage writes from a stored simulation: per-T, per-layer and early-exit CSVs,
two PNGs and flat metrics JSON. Metric keys do not depend on T_eval, so `dvc metrics diff` lines
up across revisions."""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field, fields
from pathlib import Path

import pandas as pd
import torch

from deepsnn.chip.loihi import ChipLayers, LoihiCosts, analytic_energy_uj
from deepsnn.core.errors import UserError
from deepsnn.core.io import write_json
from deepsnn.evaluation.early_exit import choose_margin, early_exit, sweep
from deepsnn.evaluation.energy import significant
from deepsnn.evaluation.plots import CodedPoint, plot_accuracy_vs_T, plot_spikes_and_energy
from deepsnn.evaluation.simulation import Simulation, StoredSimulation, accuracy_curve
from deepsnn.evaluation.tables import LOW_T, chip_energy_at_exits, curve_table, early_exit_table, write_csv

HELP = {
    "metrics": "metrics JSON to write",
    "curve": "CSV to write: per T accuracy, latency, spikes, SynOps, energy",
    "layers": "CSV to write: spike statistics per layer at T_eval",
    "early_exit": "CSV to write: per early-exit margin accuracy, timesteps and energy",
    "plot": "PNG to write: accuracy against T",
    "energy_plot": "PNG to write: firing rates, accuracy against energy",
}


@dataclass(frozen=True)
class EvaluationPaths:
    """The files every evaluation stage writes."""
    metrics: Path
    curve: Path
    layers: Path
    early_exit: Path
    plot: Path
    energy_plot: Path

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        for f in fields(EvaluationPaths):
            parser.add_argument(f"--{f.name.replace('_', '-')}", type=Path, required=True, help=HELP[f.name])

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> EvaluationPaths:
        return cls(**{f.name: getattr(args, f.name) for f in fields(cls)})


def load_simulation(path: Path, T_eval: int, stage: str, simulated_by: str) -> StoredSimulation:
    """The simulation `simulated_by` stored at `path`, which must reach T_eval (check_horizon)."""
    stored = StoredSimulation.load(path, simulated_by)
    check_horizon(T_eval, stored, stage, simulated_by, path)
    return stored


def check_horizon(T_eval: int, stored: StoredSimulation, stage: str, simulated_by: str, path: Path) -> None:
    """T_eval must be within the stored simulation: name both keys and the command that raises the horizon."""
    if T_eval > stored.test.T:
        raise UserError(f"T_eval: {T_eval} is beyond the {stored.test.T} steps that {path} was simulated to "
                        f"({simulated_by}.horizon); {stage} reads T_eval off that simulation. Raise the horizon with "
                        f"it: `dvc exp run -S T_eval={T_eval} -S {simulated_by}.horizon={T_eval}` (an experiment "
                        f"whose file sets its own horizon: -S experiments/<file>.yaml:{simulated_by}.horizon={T_eval})")


@dataclass
class Evaluation:
    """One evaluation's result: everything its outputs are written from."""
    stored: StoredSimulation
    labels: torch.Tensor  # test labels, [N]
    T_eval: int
    cfg: dict  # the eval stage's params section (early exit)
    latency: torch.Tensor  # [T] seconds per sample to reach each t, timed on one batch
    hardware: str  # what the latency was measured on
    title: str  # for the figures
    accuracy_key: str  # metric name of the SNN accuracy at T_eval
    started: float  # time.perf_counter() when the stage started
    experiment: dict[str, str]  # pipeline (conversion | direct), dataset, architecture: first in the JSON
    chip: ChipLayers
    costs: LoihiCosts
    metrics: dict = field(default_factory=dict)  # the stage's own metrics, first in the JSON
    reference: tuple[str, float] | None = None  # (name, accuracy) of a line to draw, e.g. the ANN
    coded: tuple[str, Simulation, int] | None = None  # (name, simulation, its T): another coding's one answer


def write_evaluation(result: Evaluation, paths: EvaluationPaths) -> float:
    """Write the CSVs, the PNGs and the flat metrics JSON; returns the accuracy at T_eval."""
    stored, T_eval, cfg = result.stored, result.T_eval, result.cfg
    test = stored.test
    stats = test.stats(stored.analog_macs, stored.ann_macs)
    table = curve_table(test, result.labels, result.latency, stats, result.costs, result.chip)
    at_T_eval = table.iloc[T_eval - 1]
    layers = pd.DataFrame(stats.layer_table(T_eval))
    energy = stats.metrics(T_eval)

    margin = cfg["early_exit_margin"]
    if margin == "auto":
        margin = choose_margin(stored.holdout.outputs, T_eval, cfg["early_exit_reference_T"], cfg["early_exit_tolerance"])
    exit_curve = early_exit_table(sweep(test.outputs, result.labels, T_eval, stats), stats, result.costs, result.chip,
                                  T_eval)
    chosen = early_exit(test.outputs, result.labels, margin, T_eval, stats)
    held_out = early_exit(stored.holdout.outputs, stored.holdout_labels, margin, T_eval)
    chosen_chip = chip_energy_at_exits(stats, result.costs, result.chip, chosen, T_eval)
    exits = {"early_exit_margin": significant(margin),
             "early_exit_accuracy": round(chosen.accuracy, 4), "early_exit_mean_T": round(chosen.mean_T, 4),
             "early_exit_p95_T": round(chosen.p95_T, 4), "early_exit_spikes_per_sample": significant(chosen.spikes),
             "early_exit_synops_per_sample": significant(chosen.synops),
             "early_exit_energy_uj_per_sample": significant(chosen.energy_uj),
             "early_exit_chip_energy_uj_per_sample": significant(chosen_chip),
             "early_exit_holdout_accuracy": round(held_out.accuracy, 4),
             "early_exit_holdout_mean_T": round(held_out.mean_T, 4)}
    # what early exit is set against: every image at the fixed T its margin is chosen to keep
    reference_T = min(cfg["early_exit_reference_T"], len(table))
    at_reference = table.iloc[reference_T - 1]
    exits |= {"fixed_T": reference_T, "fixed_T_accuracy": round(float(at_reference["accuracy"]), 4),
              **{f"fixed_T_{k}": significant(float(at_reference[k]))
                 for k in ("spikes_per_sample", "synops_per_sample", "energy_uj_per_sample", "chip_energy_uj_per_sample")}}

    coded_metrics, coded_point = {}, None
    if result.coded is not None:
        name, sim, T = result.coded
        coded_stats = sim.stats(stored.analog_macs, stored.ann_macs)
        accuracy = float(accuracy_curve(sim.predictions, result.labels)[-1])
        synops = float(coded_stats.synops_per_sample(1)[-1])
        layer_spikes = coded_stats.spikes[:, :1].double() / coded_stats.samples
        layer_synops = coded_stats.synops[:, :1].double() / coded_stats.samples
        chip_energy = float(analytic_energy_uj(result.costs, result.chip, T, layer_spikes, layer_synops)[0])
        coded_metrics = {f"{name}_accuracy": round(accuracy, 4), f"{name}_T": T,
                         f"{name}_spikes_per_sample": significant(float(coded_stats.spikes_per_sample(1)[-1])),
                         f"{name}_synops_per_sample": significant(synops),
                         f"{name}_energy_uj_per_sample": significant(float(coded_stats.energy_uj_per_sample(1)[-1])),
                         f"{name}_chip_energy_uj_per_sample": significant(chip_energy)}
        coded_point = CodedPoint(name, T, accuracy, coded_metrics[f"{name}_energy_uj_per_sample"], chip_energy)

    write_csv(table, paths.curve)
    write_csv(layers, paths.layers)
    write_csv(exit_curve, paths.early_exit)
    plot_accuracy_vs_T(table, paths.plot, result.title, T_eval, reference=result.reference, exits=exit_curve)
    ann_energy = energy["ann_energy_uj_per_sample"]
    plot_spikes_and_energy(table, layers, exit_curve, exits, paths.energy_plot, result.title, T_eval,
                           ann=(ann_energy, result.reference[1]) if result.reference else None, coded=coded_point)
    write_json({
        **result.experiment,
        **result.metrics,
        result.accuracy_key: round(float(at_T_eval["accuracy"]), 4),
        "T_eval": T_eval,
        **{f"{result.accuracy_key}_T{T}": round(float(table.iloc[T - 1]["accuracy"]), 4)
           for T in LOW_T if T <= len(table)},
        "latency_s_per_sample": float(f"{float(at_T_eval['latency_s_per_sample']):.4g}"),
        "latency_batch_size": min(stored.settings["batch_size"], test.num_samples),
        "device": stored.settings["device"],
        "hardware": result.hardware,
        "test_samples": test.num_samples,
        **energy,
        "chip_energy_uj_per_sample": significant(float(at_T_eval["chip_energy_uj_per_sample"])),
        **exits,
        **coded_metrics,
        "simulated_T": test.T,
        "eval_time_s": round(time.perf_counter() - result.started, 1),
    }, paths.metrics)
    print(f"{result.accuracy_key} {at_T_eval['accuracy']:.2f}% at T_eval={T_eval}; "
          f"{float(at_T_eval['latency_s_per_sample']) * 1e3:.3f} ms/sample; "
          f"{energy['energy_uj_per_sample']:.3g} µJ/sample ({energy['energy_ratio']:.3g} of the ANN's); early exit "
          f"{chosen.accuracy:.2f}% at a mean T of {chosen.mean_T:.2f} (margin {margin:.4g})")
    return float(at_T_eval["accuracy"])
