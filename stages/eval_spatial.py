"""DVC stage `eval_spatial`: accuracy, latency and spike statistics of the directly trained SNN at every T."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from deepsnn.core import cli
from deepsnn.core.data import DATASETS, load_prepared
from deepsnn.evaluation.energy import count_macs
from deepsnn.core.params import load_params
from deepsnn.core.training import pick_device, to_float
from deepsnn.direct.params import DIRECT
from deepsnn.direct.spatial import load_spatial_model
from deepsnn.evaluation.outputs import Evaluation, EvaluationPaths, write_evaluation
from deepsnn.evaluation.simulate import plan_simulation, simulate_test_set
from deepsnn.evaluation.stored import source_deps
from deepsnn.evaluation.timing import hardware

PARAMS = ["T_eval", "eval_spatial"]  # must match dvc.yaml
STAGE = "eval_spatial"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_params_argument(parser)
    parser.add_argument("--data", type=Path, required=True, help="prepared data set (.pt)")
    parser.add_argument("--model", type=Path, required=True, help="checkpoint from train_spatial")
    EvaluationPaths.add_arguments(parser)
    args = parser.parse_args(argv)
    paths = EvaluationPaths.from_args(args)

    params = load_params(args.params, DIRECT)
    cfg, T_eval = params[STAGE], params["T_eval"]
    start = time.perf_counter()
    device = pick_device()
    data = load_prepared(args.data)
    model, model_params = load_spatial_model(args.model, data)
    model.to(device)
    plan = plan_simulation(STAGE, cfg, T_eval, len(data.classes), paths.simulation, source_deps(STAGE),
                           [args.model, args.data], {"batch_size": cfg["batch_size"], "device": device.type})

    def extra() -> dict:
        example = to_float(data.test_images[:1].to(device))
        # the first conv sees analog pixels; the ANN with the same synapses for the energy ratio
        return {"analog_macs": count_macs(model.convs[0], example),
                "ann_macs": count_macs(model.ann_equivalent(), example)}

    sim, reused, latency = simulate_test_set(plan, model.step_outputs, model.spiking_layers, data, to_float, device,
                                             extra)
    trained = model_params["train_spatial"]
    experiment = {"pipeline": "direct", "dataset": trained["dataset"], "architecture": trained["architecture"]}
    title = f"Direct-trained SNN, {trained['architecture']} ({DATASETS[trained['dataset']].torchvision_name})"
    write_evaluation(Evaluation(sim, data.test_labels, T_eval, latency, reused, hardware(device), title, "accuracy",
                                start, experiment), paths)


if __name__ == "__main__":
    cli.run(main)
