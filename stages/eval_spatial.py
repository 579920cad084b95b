"""DVC stage `eval_spatial`: the directly trained SNN's accuracy, latency, spikes and energy at T_eval
and at every T, and early exit, read off the stored simulation (simulate_spatial)."""

from __future__ import annotations

import time
from pathlib import Path

from deepsnn.chip.loihi import ChipLayers, LoihiCosts
from deepsnn.core import cli
from deepsnn.core.data import DATASETS, load_prepared
from deepsnn.core.params import load_params
from deepsnn.core.training import pick_device, to_float
from deepsnn.direct.spatial import load_spatial_model
from deepsnn.evaluation.direct import DIRECT
from deepsnn.evaluation.params import stage_parser
from deepsnn.evaluation.outputs import Evaluation, EvaluationPaths, load_simulation, write_evaluation
from deepsnn.evaluation.timing import hardware, measure_latency

PARAMS = ["T_eval", "eval_spatial"]  # must match dvc.yaml


def main(argv: list[str] | None = None) -> None:
    parser = stage_parser(__doc__.splitlines()[0], "checkpoint from train_spatial")
    parser.add_argument("--simulation", type=Path, required=True, help="stored simulation from simulate_spatial")
    EvaluationPaths.add_arguments(parser)
    args = parser.parse_args(argv)
    paths = EvaluationPaths.from_args(args)

    params = load_params(args.params, DIRECT)
    T_eval = params["T_eval"]
    start = time.perf_counter()
    stored = load_simulation(args.simulation, T_eval, "eval_spatial", "simulate_spatial")
    device = pick_device()
    data = load_prepared(args.data)
    model, model_params = load_spatial_model(args.model, data)
    model.to(device)
    latency = measure_latency(model.step_outputs, data.test_images[:stored.settings["batch_size"]], stored.test.T, device,
                              to_float)
    trained = model_params["train_spatial"]
    experiment = {"pipeline": "direct", "dataset": data.name, "architecture": trained["architecture"]}
    title = f"Direct-trained SNN, {trained['architecture']} ({DATASETS[data.name].torchvision_name})"
    costs = LoihiCosts.read()
    chip = ChipLayers.of(model.spiking_layers, [tuple(s) for s in stored.test.spikes["shapes"]], extra_neurons=0,
                         costs=costs)
    write_evaluation(Evaluation(stored, data.test_labels, T_eval, params["eval_spatial"], latency, hardware(device),
                                title, "accuracy", start, experiment, chip, costs), paths)


if __name__ == "__main__":
    cli.run(main)
