"""DVC stage `convert`: build the rate-coded SNN from the ANN and the thresholds file."""

from __future__ import annotations

import argparse
from pathlib import Path

from deepsnn import cli
from deepsnn.checkpoint import load_checkpoint
from deepsnn.conversion import SpikingOptions, convert, read_thresholds
from deepsnn.io import atomic_save
from deepsnn.params import load_params, select
from deepsnn.vgg import build_vgg

PARAMS = ["convert"]  # must match dvc.yaml


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--model", type=Path, required=True, help="ANN checkpoint from train_ann")
    parser.add_argument("--thresholds", type=Path, required=True, help="CSV from calibrate")
    parser.add_argument("--snn", type=Path, required=True, help="SNN checkpoint to write")
    args = parser.parse_args(argv)

    params = load_params(args.params)
    options = SpikingOptions(**params["convert"])
    checkpoint = load_checkpoint(args.model)
    ann = build_vgg(checkpoint["params"]["train_ann"])
    ann.load_state_dict(checkpoint["state_dict"])
    thresholds = read_thresholds(args.thresholds)
    snn = convert(ann, thresholds, options)
    # everything eval_sweep needs to rebuild the SNN without calibration data
    atomic_save({"state_dict": snn.state_dict(), "ann_params": checkpoint["params"],
                 "thresholds": [t.__dict__ for t in thresholds], "options": options.__dict__,
                 "params": select(params, PARAMS)}, args.snn)
    spiking = sum(1 for name, _ in snn.named_modules() if name.endswith("if_node"))
    print(f"converted: {spiking} IF-neuron layers, reset {options.reset}, initial potential {options.initial_potential}")


if __name__ == "__main__":
    cli.run(main)
