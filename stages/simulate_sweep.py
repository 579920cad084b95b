"""DVC stage `simulate_sweep`: simulate the converted SNN on the test set and on held-out training
images to the horizon, and store every image's summed output and spike counts at every t."""

from __future__ import annotations

import time
from pathlib import Path

import torch

from deepsnn.conversion.ann.networks import load_trained_ann
from deepsnn.conversion.ann.training import ann_accuracy, normalizer
from deepsnn.conversion.chain_simulator import ChainSimulator
from deepsnn.conversion.few_spikes import FewSpikesSimulator
from deepsnn.conversion.params import CONVERSION
from deepsnn.conversion.snn import load_converted, load_snn, load_snn_params
from deepsnn.core import cli
from deepsnn.core.data import load_prepared
from deepsnn.core.io import write_json
from deepsnn.core.params import ParamsError, load_params
from deepsnn.core.training import pick_device
from deepsnn.evaluation.energy import count_macs
from deepsnn.evaluation.params import held_out_images, stage_parser
from deepsnn.evaluation.simulation import (StoredSimulation, accuracy_curve, check_feasible, seconds_per_step,
                                           simulate_images)

PARAMS = ["simulate_sweep"]  # must match dvc.yaml


def main(argv: list[str] | None = None) -> None:
    parser = stage_parser(__doc__.splitlines()[0], "ANN checkpoint from train_ann", snn=True)
    parser.add_argument("--out", type=Path, required=True, help="simulation to write")
    parser.add_argument("--metrics", type=Path, required=True, help="metrics JSON to write (its time)")
    args = parser.parse_args(argv)
    start = time.perf_counter()

    cfg = load_params(args.params, CONVERSION)["simulate_sweep"]
    device = pick_device()
    ann, ann_params = load_trained_ann(args.model)
    data = load_prepared(args.data, expected=ann_params["dataset"])
    holdout = held_out_images(cfg, "simulate_sweep", len(data.train_images), args.data)
    trained = ann_params["train_ann"]
    if cfg["temporal_coding"] == "few_spikes" and trained["activation"] != "qcfs":
        raise ParamsError("simulate_sweep.temporal_coding: few_spikes codes a QCFS network's levels, and this ANN "
                          f"has train_ann.activation {trained['activation']}; allowed for it: none")
    ann.to(device)
    snn = load_snn(args.snn, ann).to(device)
    simulator = ChainSimulator(snn, compile=cfg["compile"])  # SpikingJelly's loop minus repeated work
    prepare = normalizer(data.name)
    batch = cfg["batch_size"]
    check_feasible("simulate_sweep", cfg["horizon"], len(data.test_images) + cfg["holdout_images"], batch,
                   len(data.classes), len(simulator.spiking_layers),
                   seconds_per_step(simulator.step_outputs, data.test_images[:batch], device, prepare), cfg["max_hours"])

    def simulate(step_outputs, layers, images, T, what):
        return simulate_images(step_outputs, layers, images, T, batch, device, prepare, f"simulate_sweep {what} T<={T}")

    horizon = cfg["horizon"]
    test = simulate(simulator.step_outputs, simulator.spiking_layers, data.test_images, horizon, "test")
    held_out = simulate(simulator.step_outputs, simulator.spiking_layers, data.train_images[holdout], horizon, "held-out")
    example = prepare(data.test_images[:1].to(device))
    extra = {"ann_accuracy": ann_accuracy(ann, data.test_images, data.test_labels, prepare, device),
             "ann_holdout_accuracy": ann_accuracy(ann, data.train_images[holdout], data.train_labels[holdout],
                                                  prepare, device)}
    plain = load_converted(args.snn, ann).to(device)  # as converted: no correction, no fine-tuning
    if load_snn_params(args.snn)["convert"]["correction"] != "none" and cfg["uncorrected_horizon"] > 0:
        uncorrected = ChainSimulator(plain, compile=cfg["compile"])
        extra["uncorrected_predictions"] = simulate(uncorrected.step_outputs, uncorrected.spiking_layers,
                                                    data.test_images, cfg["uncorrected_horizon"],
                                                    "test, uncorrected").predictions.to(torch.uint8)
    if cfg["temporal_coding"] == "few_spikes":
        coded = FewSpikesSimulator(plain, trained["qcfs_levels"])
        sim = simulate(coded.step_outputs, coded.spiking_layers, data.test_images, 1, "test, few-spikes coding")
        extra["few_spikes"] = {"T": coded.T, "window": coded.window, "simulation": sim.__dict__}
    StoredSimulation(test, held_out, data.train_labels[holdout], count_macs(simulator.prefix, example),
                     count_macs(ann, example), {"batch_size": batch, "compile": cfg["compile"], "device": device.type},
                     extra).save(args.out)
    write_json({"simulated_T": horizon, "images": len(data.test_images) + cfg["holdout_images"],
                "simulation_time_s": round(time.perf_counter() - start, 1)}, args.metrics)
    print(f"ANN {extra['ann_accuracy']:.2f}%; SNN {float(accuracy_curve(test.predictions, data.test_labels)[-1]):.2f}% "
          f"at T={horizon}")


if __name__ == "__main__":
    cli.run(main)
