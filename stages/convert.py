"""DVC stage `convert`: build the rate-coded SNN from the ANN and the thresholds file."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from deepsnn import cli
from deepsnn.ann_training import load_trained_vgg
from deepsnn.conversion import SpikingOptions, convert, read_thresholds
from deepsnn.io import atomic_save, write_json
from deepsnn.params import load_params, select

PARAMS = ["convert"]  # must match dvc.yaml


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--model", type=Path, required=True, help="ANN checkpoint from train_ann")
    parser.add_argument("--thresholds", type=Path, required=True, help="CSV from calibrate")
    parser.add_argument("--snn", type=Path, required=True, help="SNN checkpoint to write")
    parser.add_argument("--metrics", type=Path, required=True, help="metrics JSON to write")
    args = parser.parse_args(argv)

    params = load_params(args.params)
    start = time.perf_counter()
    options = SpikingOptions(**params["convert"])
    ann, ann_params = load_trained_vgg(args.model)
    thresholds = read_thresholds(args.thresholds)
    snn = convert(ann, thresholds, options)
    # everything eval_sweep needs to rebuild the SNN without calibration data
    atomic_save({"state_dict": snn.state_dict(), "ann_params": ann_params,
                 "thresholds": [t.__dict__ for t in thresholds], "options": options.__dict__,
                 "params": select(params, PARAMS)}, args.snn)
    spiking = sum(1 for name, _ in snn.named_modules() if name.endswith("if_node"))
    write_json({"convert_time_s": round(time.perf_counter() - start, 1), "spiking_layers": spiking}, args.metrics)
    print(f"converted: {spiking} IF-neuron layers, reset {options.reset}, initial potential {options.initial_potential}")


if __name__ == "__main__":
    cli.run(main)
