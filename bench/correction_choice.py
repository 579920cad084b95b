"""Choosing convert.correction_T without the test set: the converted SNN's accuracy at T = 1..8 on
held-out *training* images, uncorrected and corrected with each candidate horizon.

    python bench/correction_choice.py [--model models/ann.pt --thresholds models/thresholds.csv
                                       --data data/cifar10.pt] [--horizons 1 2 4 8] [--images 512] [--held-out 2000]

The correction is fitted on the first `--images` training images (as the convert stage does) and
measured on the last `--held-out` training images, with the ANN's accuracy on them as the reference.
"""

from __future__ import annotations

import argparse
import time

import torch

from deepsnn.conversion.ann.training import normalizer
from deepsnn.conversion.ann.networks import load_trained_ann
from deepsnn.conversion.calibration import read_thresholds
from deepsnn.conversion.chain_simulator import ChainSimulator
from deepsnn.conversion.correction import ann_channel_means, correct_initial_potentials
from deepsnn.conversion.snn import SpikingOptions, convert, set_initial_potentials
from deepsnn.core.data import load_prepared
from deepsnn.core.training import pick_device
from deepsnn.evaluation.simulate import predictions_from_steps
from deepsnn.evaluation.timing import hardware


def accuracies(simulator: ChainSimulator, x: torch.Tensor, labels: torch.Tensor, T: int, batch: int = 250) -> list[float]:
    """Accuracy (%) after t = 1..T steps."""
    correct = torch.zeros(T)
    for start in range(0, len(x), batch):
        predictions = predictions_from_steps(simulator.step_outputs(x[start:start + batch], T))
        correct += (predictions == labels[start:start + batch]).sum(1)
    return (100 * correct / len(x)).tolist()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/ann.pt")
    parser.add_argument("--thresholds", default="models/thresholds.csv")
    parser.add_argument("--data", default="data/cifar10.pt")
    parser.add_argument("--horizons", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--images", type=int, default=512, help="training images the correction is fitted on")
    parser.add_argument("--held-out", type=int, default=2000, help="last training images it is measured on")
    parser.add_argument("--T", type=int, default=8)
    args = parser.parse_args()
    device = pick_device()
    ann, ann_params = load_trained_ann(args.model)
    thresholds = read_thresholds(args.thresholds)
    data = load_prepared(args.data)
    prepare = normalizer(ann_params["train_ann"]["dataset"])
    fit = prepare(data.train_images[:args.images]).contiguous()
    held_out = prepare(data.train_images[-args.held_out:]).contiguous().to(device)
    labels = data.train_labels[-args.held_out:].to(device)
    with torch.no_grad():
        ann_accuracy = (ann.to(device)(held_out).argmax(1) == labels).double().mean().item() * 100
    print(f"{hardware(device)}, torch {torch.__version__}; fitted on training images 0..{args.images - 1}, "
          f"measured on the last {args.held_out}; ANN {ann_accuracy:.2f}%")
    print("correction_T | " + " | ".join(f"T={t}" for t in range(1, args.T + 1)) + " | fit s")
    targets = ann_channel_means(ann.cpu(), thresholds, fit)
    for horizon in [0, *args.horizons]:  # 0: without correction
        snn = convert(ann.cpu(), thresholds, SpikingOptions())
        start = time.perf_counter()
        if horizon:
            set_initial_potentials(snn, correct_initial_potentials(ChainSimulator(snn), targets, fit, horizon)[0])
        seconds = time.perf_counter() - start
        curve = accuracies(ChainSimulator(snn.to(device)), held_out, labels, args.T)
        print(f"{horizon or 'none':>12} | " + " | ".join(f"{a:.2f}" for a in curve) + f" | {seconds:.0f}", flush=True)


if __name__ == "__main__":
    main()
