"""DVC stage `train_ann`: train VGG-16 (Conv-BN-activation-AvgPool) on CIFAR-10 for conversion."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd

from deepsnn.core import cli
from deepsnn.core.checkpoint import save_checkpoint
from deepsnn.core.data import load_prepared
from deepsnn.core.io import atomic_path, write_json
from deepsnn.conversion.ann.params import TRAIN_ANN
from deepsnn.core.params import load_params, select
from deepsnn.conversion.ann.training import ann_accuracy, train_ann
from deepsnn.core.training import pick_device, seed_everything
from deepsnn.conversion.ann.vgg import build_vgg

PARAMS = ["seed", "train_ann"]  # must match dvc.yaml


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--data", type=Path, required=True, help="prepared data set (.pt)")
    parser.add_argument("--model", type=Path, required=True, help="checkpoint to write")
    parser.add_argument("--curve", type=Path, required=True, help="per-epoch CSV to write")
    parser.add_argument("--metrics", type=Path, required=True, help="metrics JSON to write")
    args = parser.parse_args(argv)

    params = load_params(args.params, TRAIN_ANN)
    cfg = params["train_ann"]
    device = pick_device()
    data = load_prepared(args.data)
    generator = seed_everything(params["seed"])  # before the model: it draws the initial weights
    model = build_vgg(cfg)
    start = time.perf_counter()
    history = train_ann(model, data, cfg, generator, device)
    train_time = time.perf_counter() - start
    test_accuracy = ann_accuracy(model, data.test_images, data.test_labels, device)
    print(f"ANN test accuracy {test_accuracy:.2f}% (full test set)")

    save_checkpoint(model, select(params, PARAMS), args.model)
    with atomic_path(args.curve) as tmp:
        pd.DataFrame(history).round(4).to_csv(tmp, index=False)
    write_json({"ann_test_accuracy": round(test_accuracy, 4),
                "train_accuracy": round(history[-1]["train_accuracy"], 4),
                "train_time_s": round(train_time, 1), "device": device.type}, args.metrics)


if __name__ == "__main__":
    cli.run(main)
