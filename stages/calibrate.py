"""DVC stage `calibrate`: threshold balancing; writes a per-layer thresholds CSV."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from deepsnn.conversion.ann.training import normalizer
from deepsnn.conversion.calibration import calibrate_thresholds, write_thresholds
from deepsnn.conversion.params import CONVERSION
from deepsnn.conversion.ann.networks import load_trained_ann
from deepsnn.core import cli
from deepsnn.core.data import load_prepared
from deepsnn.core.io import write_json
from deepsnn.core.params import ParamsError, load_params
from deepsnn.core.training import pick_device

PARAMS = ["calibrate"]  # must match dvc.yaml


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_params_argument(parser)
    parser.add_argument("--data", type=Path, required=True, help="prepared data set (.pt)")
    parser.add_argument("--model", type=Path, required=True, help="ANN checkpoint from train_ann")
    parser.add_argument("--thresholds", type=Path, required=True, help="CSV to write")
    parser.add_argument("--metrics", type=Path, required=True, help="metrics JSON to write")
    args = parser.parse_args(argv)

    cfg = load_params(args.params, CONVERSION)["calibrate"]
    start = time.perf_counter()
    model, ann_params = load_trained_ann(args.model)
    if cfg["mode"] == "qcfs" and ann_params["train_ann"]["activation"] != "qcfs":
        raise ParamsError("calibrate.mode: 'qcfs' needs train_ann.activation: qcfs; "
                              "allowed for a relu network: max, percentile")
    device = pick_device()
    model.to(device)
    data = load_prepared(args.data, expected=ann_params["dataset"])
    prepare = normalizer(ann_params["dataset"])
    images = data.train_images[:cfg["images"]]  # fixed, un-augmented training images
    batches = (prepare(images[i:i + cfg["batch_size"]].to(device)) for i in range(0, len(images), cfg["batch_size"]))
    thresholds = calibrate_thresholds(model, batches, cfg["mode"], cfg["percentile"])
    write_thresholds(thresholds, args.thresholds)
    write_json({"calibrate_time_s": round(time.perf_counter() - start, 1), "calibrated_layers": len(thresholds),
                "calibration_images": len(images)}, args.metrics)
    for t in thresholds:
        print(f"{t.layer:>14}  {t.threshold:9.4f}  {t.statistic}")


if __name__ == "__main__":
    cli.run(main)
