"""DVC stage `eval_sweep`: the conversion's accuracy, latency, spikes and energy at T_eval and at every
T, early exit, and the temporal coding, read off the stored simulation (simulate_sweep)."""

from __future__ import annotations

import time
from pathlib import Path

from deepsnn.chip.loihi import ChipLayers, LoihiCosts
from deepsnn.conversion.ann.networks import load_trained_ann
from deepsnn.conversion.ann.training import normalizer
from deepsnn.conversion.chain_simulator import ChainSimulator
from deepsnn.conversion.correction_report import correction_table, low_T_metrics, plot_correction
from deepsnn.conversion.params import CONVERSION
from deepsnn.conversion.snn import load_snn, load_snn_params
from deepsnn.core import cli
from deepsnn.core.data import DATASETS, load_prepared
from deepsnn.core.params import load_params
from deepsnn.core.training import pick_device
from deepsnn.evaluation.params import stage_parser
from deepsnn.evaluation.outputs import Evaluation, EvaluationPaths, load_simulation, write_evaluation
from deepsnn.evaluation.simulation import Simulation
from deepsnn.evaluation.tables import write_csv
from deepsnn.evaluation.timing import hardware, measure_latency

PARAMS = ["T_eval", "eval_sweep"]  # must match dvc.yaml


def main(argv: list[str] | None = None) -> None:
    parser = stage_parser(__doc__.splitlines()[0], "ANN checkpoint from train_ann", snn=True)
    parser.add_argument("--simulation", type=Path, required=True, help="stored simulation from simulate_sweep")
    EvaluationPaths.add_arguments(parser)
    parser.add_argument("--correction-curve", type=Path, required=True,
                        help="CSV to write: per T accuracy of the ANN, the SNN and the SNN without its low-T correction")
    parser.add_argument("--correction-plot", type=Path, required=True, help="PNG to write: the same against T")
    args = parser.parse_args(argv)
    paths = EvaluationPaths.from_args(args)

    params = load_params(args.params, CONVERSION)
    T_eval = params["T_eval"]
    start = time.perf_counter()
    stored = load_simulation(args.simulation, T_eval, "eval_sweep", "simulate_sweep")
    device = pick_device()
    ann, ann_params = load_trained_ann(args.model)
    data = load_prepared(args.data, expected=ann_params["dataset"])
    snn = load_snn(args.snn, ann).to(device)
    simulator = ChainSimulator(snn, compile=stored.settings["compile"])  # as simulate_sweep ran it
    prepare = normalizer(data.name)
    latency = measure_latency(simulator.step_outputs, data.test_images[:stored.settings["batch_size"]], stored.test.T, device,
                              prepare)

    trained = ann_params["train_ann"]
    experiment = {"pipeline": "conversion", "dataset": data.name, "architecture": trained["architecture"]}
    title = f"{trained['architecture']} converted to an SNN ({DATASETS[data.name].torchvision_name})"
    ann_acc = stored.extra["ann_accuracy"]
    correction = load_snn_params(args.snn)["convert"]["correction"]
    low_T = correction_table(stored.test.predictions, stored.extra.get("uncorrected_predictions"), data.test_labels,
                             ann_acc)
    write_csv(low_T, args.correction_curve)
    plot_correction(low_T, args.correction_plot, title, correction)
    costs = LoihiCosts.read()
    chip = ChipLayers.of(simulator.spiking_layers, [tuple(s) for s in stored.test.spikes["shapes"]],
                         extra_neurons=len(data.classes), costs=costs)  # the output layer's accumulators
    coding = stored.extra.get("few_spikes")
    coded = ("few_spikes", Simulation(**coding["simulation"]), coding["T"]) if coding else None
    write_evaluation(Evaluation(stored, data.test_labels, T_eval, params["eval_sweep"], latency, hardware(device),
                                title, "snn_accuracy", start, experiment, chip, costs,
                                metrics={"ann_accuracy": round(ann_acc, 4), **low_T_metrics(low_T)},
                                reference=("ANN", ann_acc), coded=coded), paths)


if __name__ == "__main__":
    cli.run(main)
