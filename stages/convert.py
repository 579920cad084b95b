"""DVC stage `convert`: build the rate-coded SNN from the ANN and the thresholds file, and correct it for low T."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from deepsnn.conversion.ann.training import normalizer
from deepsnn.conversion.ann.networks import load_trained_ann
from deepsnn.conversion.calibration import read_thresholds
from deepsnn.conversion.chain_simulator import ChainSimulator
from deepsnn.conversion.correction import ann_channel_means, correct_initial_potentials
from deepsnn.conversion.params import CONVERSION
from deepsnn.conversion.snn import SpikingOptions, convert, save_snn
from deepsnn.core import cli
from deepsnn.core.data import load_prepared
from deepsnn.core.io import write_json
from deepsnn.core.params import ParamsError, load_params, select

PARAMS = ["convert"]  # must match dvc.yaml


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_params_argument(parser)
    parser.add_argument("--data", type=Path, required=True, help="prepared data set (.pt): the correction's training images")
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
    thresholds = read_thresholds(args.thresholds)
    images = None
    if cfg["correction"] != "none":
        data = load_prepared(args.data, expected=ann_params["dataset"])
        if cfg["correction_images"] > len(data.train_images):
            raise ParamsError(f"convert.correction_images: {cfg['correction_images']} is more than the "
                              f"{len(data.train_images)} training images of {args.data}; allowed: 1 .. {len(data.train_images)}")
        images = normalizer(ann_params["dataset"])(data.train_images[:cfg["correction_images"]]).contiguous()
    snn = convert(ann, thresholds, options)
    converted = time.perf_counter()
    metrics = {}
    potentials = None
    if images is not None:
        simulator = ChainSimulator(snn)
        potentials, report = correct_initial_potentials(simulator, ann_channel_means(ann, thresholds, images),
                                                        images, cfg["correction_T"])
        for layer, before, after in zip(report.layers, report.error_before, report.error_after):
            print(f"{layer}: rate gap to the ANN over t=1..{cfg['correction_T']} {before:.4f} -> {after:.4f}")
        metrics = {"correction_time_s": round(time.perf_counter() - converted, 1),
                   "rate_gap_before": round(sum(report.error_before) / len(report.layers), 5),
                   "rate_gap_after": round(sum(report.error_after) / len(report.layers), 5)}
    save_snn(snn, ann_params, thresholds, options, select(params, PARAMS), args.snn, potentials)
    spiking = sum(1 for name, _ in snn.named_modules() if name.endswith("if_node"))
    write_json({"convert_time_s": round(time.perf_counter() - start, 1), "spiking_layers": spiking, **metrics},
               args.metrics)
    print(f"converted: {spiking} IF-neuron layers, reset {options.reset}, initial potential {options.initial_potential}, "
          f"correction {cfg['correction']}")


if __name__ == "__main__":
    cli.run(main)
