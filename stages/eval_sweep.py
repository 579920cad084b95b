"""DVC stage `eval_sweep`: ANN accuracy, and SNN accuracy, latency and spike statistics at every T up to the horizon."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from deepsnn.conversion.ann.training import ann_accuracy, normalizer
from deepsnn.conversion.chain_simulator import ChainSimulator
from deepsnn.conversion.params import CONVERSION
from deepsnn.conversion.correction_report import correction_table, low_T_metrics, plot_correction
from deepsnn.conversion.snn import load_snn, load_snn_params
from deepsnn.conversion.ann.networks import load_trained_ann
from deepsnn.core import cli
from deepsnn.core.data import DATASETS, load_prepared
from deepsnn.evaluation.energy import count_macs
from deepsnn.core.params import load_params
from deepsnn.core.training import pick_device
from deepsnn.evaluation.outputs import Evaluation, EvaluationPaths, write_evaluation
from deepsnn.evaluation.simulate import plan_simulation, simulate_dataset, simulate_test_set
from deepsnn.evaluation.stored import source_deps
from deepsnn.evaluation.tables import write_csv
from deepsnn.evaluation.timing import hardware

PARAMS = ["T_eval", "eval_sweep"]  # must match dvc.yaml
STAGE = "eval_sweep"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_params_argument(parser)
    parser.add_argument("--data", type=Path, required=True, help="prepared data set (.pt)")
    parser.add_argument("--model", type=Path, required=True, help="ANN checkpoint from train_ann")
    parser.add_argument("--snn", type=Path, required=True, help="SNN checkpoint from convert")
    EvaluationPaths.add_arguments(parser)
    parser.add_argument("--correction-curve", type=Path, required=True,
                        help="CSV to write: per T accuracy of the ANN, the SNN and the SNN without its correction")
    parser.add_argument("--correction-plot", type=Path, required=True, help="PNG to write: the same against T")
    args = parser.parse_args(argv)
    paths = EvaluationPaths.from_args(args)

    params = load_params(args.params, CONVERSION)
    cfg, T_eval = params[STAGE], params["T_eval"]
    start = time.perf_counter()
    device = pick_device()
    ann, ann_params = load_trained_ann(args.model)
    snn = load_snn(args.snn, ann)
    correction = load_snn_params(args.snn)["convert"]["correction"]
    data = load_prepared(args.data)
    ann.to(device)
    snn.to(device)
    # what changes the simulation: the code, model and data, and these settings (not the horizon or T_eval:
    # a longer stored simulation answers for any shorter T)
    plan = plan_simulation(STAGE, cfg, T_eval, len(data.classes), paths.simulation, source_deps(STAGE),
                           [args.model, args.snn, args.data],
                           {"batch_size": cfg["batch_size"], "compile": cfg["compile"], "device": device.type,
                            "uncorrected_horizon": cfg["uncorrected_horizon"]})
    simulator = ChainSimulator(snn, compile=cfg["compile"])  # SpikingJelly's loop minus repeated work
    prepare = normalizer(ann_params["train_ann"]["dataset"])

    def extra() -> dict:
        example = prepare(data.test_images[:1].to(device))
        kept = {"ann_accuracy": ann_accuracy(ann, data.test_images, data.test_labels, prepare, device),
                "analog_macs": count_macs(simulator.prefix, example), "ann_macs": count_macs(ann, example)}
        if correction != "none" and cfg["uncorrected_horizon"] > 0:  # the same SNN without its correction
            uncorrected = ChainSimulator(load_snn(args.snn, ann, corrected=False).to(device), compile=cfg["compile"])
            kept["uncorrected_predictions"] = simulate_dataset(
                uncorrected.step_outputs, data.test_images, cfg["uncorrected_horizon"], cfg["batch_size"], device,
                prepare, desc=f"{STAGE} without correction T<={cfg['uncorrected_horizon']}").predictions
        return kept

    sim, reused, latency = simulate_test_set(plan, simulator.step_outputs, simulator.spiking_layers, data, prepare,
                                             device, extra)
    ann_acc = sim.extra["ann_accuracy"]
    trained = ann_params["train_ann"]
    experiment = {"pipeline": "conversion", "dataset": trained["dataset"], "architecture": trained["architecture"]}
    title = f"{trained['architecture']} converted to an SNN ({DATASETS[trained['dataset']].torchvision_name})"
    low_T = correction_table(sim.predictions, sim.extra.get("uncorrected_predictions"), data.test_labels, ann_acc)
    write_csv(low_T, args.correction_curve)
    plot_correction(low_T, args.correction_plot, title, correction)
    write_evaluation(Evaluation(sim, data.test_labels, T_eval, latency, reused, hardware(device), title,
                                "snn_accuracy", start, experiment, metrics={"ann_accuracy": round(ann_acc, 4), **low_T_metrics(low_T)},
                                reference=("ANN", ann_acc)), paths)


if __name__ == "__main__":
    cli.run(main)
