"""DVC stage `convert`: build the rate-coded SNN from the ANN and the thresholds file, then the low-T
steps: the initial-potential correction and spike-count fine-tuning (each optional)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from deepsnn.conversion.ann.networks import load_trained_ann
from deepsnn.conversion.ann.training import normalizer
from deepsnn.conversion.calibration import read_thresholds
from deepsnn.conversion.chain_simulator import ChainSimulator
from deepsnn.conversion.correction import choose_correction
from deepsnn.conversion.finetune import finetune
from deepsnn.conversion.params import CONVERSION
from deepsnn.conversion.snn import SpikingOptions, convert, save_snn
from deepsnn.core import cli
from deepsnn.core.data import DATASETS, load_prepared
from deepsnn.core.io import write_json
from deepsnn.core.params import ParamsError, load_params, select
from deepsnn.core.training import pick_device

PARAMS = ["seed", "convert"]  # must match dvc.yaml


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_params_argument(parser)
    parser.add_argument("--data", type=Path, required=True, help="prepared data set (.pt): the low-T steps' training images")
    parser.add_argument("--model", type=Path, required=True, help="ANN checkpoint from train_ann")
    parser.add_argument("--thresholds", type=Path, required=True, help="CSV from calibrate")
    parser.add_argument("--snn", type=Path, required=True, help="SNN checkpoint to write")
    parser.add_argument("--metrics", type=Path, required=True, help="metrics JSON to write")
    args = parser.parse_args(argv)

    params = load_params(args.params, CONVERSION)
    cfg = params["convert"]
    start = time.perf_counter()
    options = SpikingOptions(cfg["reset"], cfg["initial_potential"])
    ann, ann_params = load_trained_ann(args.model)
    data = load_prepared(args.data, expected=ann_params["dataset"])
    fitting = len(data.train_images) - cfg["holdout_images"]  # the first images fit, the last ones choose
    for key in ("correction_images",) * (cfg["correction"] != "none"):
        if cfg[key] > fitting:
            raise ParamsError(f"convert.{key}: {cfg[key]} is more than the {fitting} training images of {args.data} "
                              f"before the {cfg['holdout_images']} held out (convert.holdout_images); allowed: 1 .. {fitting}")
    if fitting < 1:
        raise ParamsError(f"convert.holdout_images: {cfg['holdout_images']} leaves none of the {len(data.train_images)} "
                          f"training images of {args.data} to fit on")
    thresholds = read_thresholds(args.thresholds)
    device = pick_device()
    ann.to(device)
    snn = convert(ann, thresholds, options)
    simulator = ChainSimulator(snn)
    prepare = normalizer(data.name)
    held_out = slice(fitting, None)
    metrics = {}
    potentials = None
    if cfg["correction"] != "none":
        began = time.perf_counter()
        correction = choose_correction(ann, thresholds, simulator, prepare(data.train_images[:cfg["correction_images"]]),
                                       cfg["correction_T"], data.train_images[held_out], data.train_labels[held_out],
                                       prepare)
        potentials = correction.potentials
        print(correction.summary())
        metrics |= {"correction_time_s": round(time.perf_counter() - began, 1), **correction.metrics()}
    if cfg["finetune"] != "none" and cfg["finetune_images"] > 0:
        began = time.perf_counter()
        generator = torch.Generator().manual_seed(params["seed"])
        report = finetune(simulator, data.train_images[:fitting].to(device), data.train_labels[:fitting].to(device),
                          prepare, cfg["finetune_T"], cfg["finetune_images"], cfg["finetune_batch_size"],
                          cfg["finetune_lr"], ann_params["train_ann"]["augment_shift"], DATASETS[data.name].flips,
                          generator)
        print(f"fine-tuned at T in {cfg['finetune_T']}: {report.steps} steps, loss {report.first_loss:.4f} -> "
              f"{report.last_loss:.4f}")
        metrics |= {"finetune_time_s": round(time.perf_counter() - began, 1), "finetune_steps": report.steps,
                    "finetune_first_loss": round(report.first_loss, 5), "finetune_last_loss": round(report.last_loss, 5)}
    save_snn(snn, ann_params, thresholds, options, select(params, PARAMS), args.snn, potentials)
    spiking = sum(1 for name, _ in snn.named_modules() if name.endswith("if_node"))
    write_json({"convert_time_s": round(time.perf_counter() - start, 1), "spiking_layers": spiking, **metrics},
               args.metrics)
    print(f"converted: {spiking} IF-neuron layers, reset {options.reset}, initial potential {options.initial_potential}, "
          f"correction {cfg['correction']}, fine-tuning {cfg['finetune']}")


if __name__ == "__main__":
    cli.run(main)
