"""DVC stage `convert`: build the rate-coded SNN from the ANN and the thresholds file."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from deepsnn.conversion.calibration import read_thresholds
from deepsnn.conversion.params import CONVERSION
from deepsnn.conversion.snn import SpikingOptions, convert, save_snn
from deepsnn.conversion.ann.vgg import load_trained_vgg
from deepsnn.core import cli
from deepsnn.core.io import write_json
from deepsnn.core.params import load_params, select

PARAMS = ["convert"]  # must match dvc.yaml


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--model", type=Path, required=True, help="ANN checkpoint from train_ann")
    parser.add_argument("--thresholds", type=Path, required=True, help="CSV from calibrate")
    parser.add_argument("--snn", type=Path, required=True, help="SNN checkpoint to write")
    parser.add_argument("--metrics", type=Path, required=True, help="metrics JSON to write")
    args = parser.parse_args(argv)

    params = load_params(args.params, CONVERSION)
    start = time.perf_counter()
    options = SpikingOptions(**params["convert"])
    ann, ann_params = load_trained_vgg(args.model)
    thresholds = read_thresholds(args.thresholds)
    snn = convert(ann, thresholds, options)
    save_snn(snn, ann_params, thresholds, options, select(params, PARAMS), args.snn)
    spiking = sum(1 for name, _ in snn.named_modules() if name.endswith("if_node"))
    write_json({"convert_time_s": round(time.perf_counter() - start, 1), "spiking_layers": spiking}, args.metrics)
    print(f"converted: {spiking} IF-neuron layers, reset {options.reset}, initial potential {options.initial_potential}")


if __name__ == "__main__":
    cli.run(main)
