"""DVC stage `simulate_spatial`: simulate the directly trained SNN on the test set and on held-out
training images to the horizon, and store every image's summed output and spike counts at every t."""

from __future__ import annotations

import time
from pathlib import Path

from deepsnn.core import cli
from deepsnn.core.data import load_prepared
from deepsnn.core.io import write_json
from deepsnn.core.params import load_params
from deepsnn.core.training import pick_device, to_float
from deepsnn.direct.spatial import load_spatial_model
from deepsnn.evaluation.direct import DIRECT
from deepsnn.evaluation.energy import count_macs
from deepsnn.evaluation.params import held_out_images, stage_parser
from deepsnn.evaluation.simulation import (StoredSimulation, accuracy_curve, check_feasible, seconds_per_step,
                                           simulate_images)

PARAMS = ["simulate_spatial"]  # must match dvc.yaml


def main(argv: list[str] | None = None) -> None:
    parser = stage_parser(__doc__.splitlines()[0], "checkpoint from train_spatial")
    parser.add_argument("--out", type=Path, required=True, help="simulation to write")
    parser.add_argument("--metrics", type=Path, required=True, help="metrics JSON to write (its time)")
    args = parser.parse_args(argv)
    start = time.perf_counter()

    cfg = load_params(args.params, DIRECT)["simulate_spatial"]
    device = pick_device()
    data = load_prepared(args.data)
    model, _ = load_spatial_model(args.model, data)  # refuses a data set it was not trained on
    model.to(device)
    holdout = held_out_images(cfg, "simulate_spatial", len(data.train_images), args.data)
    batch, horizon = cfg["batch_size"], cfg["horizon"]
    check_feasible("simulate_spatial", horizon, len(data.test_images) + cfg["holdout_images"], batch,
                   len(data.classes), model.depth,
                   seconds_per_step(model.step_outputs, data.test_images[:batch], device, to_float), cfg["max_hours"])

    def simulate(images, what):
        return simulate_images(model.step_outputs, model.spiking_layers, images, horizon, batch, device, to_float,
                               f"simulate_spatial {what} T<={horizon}")

    test = simulate(data.test_images, "test")
    held_out = simulate(data.train_images[holdout], "held-out")
    example = to_float(data.test_images[:1].to(device))
    # the first conv sees analog pixels; the ANN with the same synapses for the energy ratio
    StoredSimulation(test, held_out, data.train_labels[holdout], count_macs(model.convs[0], example),
                     count_macs(model.ann_equivalent(), example), {"batch_size": batch, "device": device.type}
                     ).save(args.out)
    write_json({"simulated_T": horizon, "images": len(data.test_images) + cfg["holdout_images"],
                "simulation_time_s": round(time.perf_counter() - start, 1)}, args.metrics)
    print(f"SNN {float(accuracy_curve(test.predictions, data.test_labels)[-1]):.2f}% at T={horizon}")


if __name__ == "__main__":
    cli.run(main)
