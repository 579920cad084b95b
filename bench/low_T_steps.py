"""The conversion's low-T steps measured on a trained ANN, without the pipeline's long runs: accuracy
at T = 1, 2, 4, 8 of the SNN as converted, with the correction (convert.correction_T: auto), and with
spike-count fine-tuning after it, on held-out training images and on the test set.

    python bench/low_T_steps.py --model models/conversion-cifar10/ann.pt --data data/cifar10.pt \\
        [--finetune-images 20000] [--finetune-T 1 2] [--lr 1e-4] [--batch-size 64] [--test-images 10000]

The fitting images, the held-out images (the last `--held-out` training images) and the fine-tuning
recipe are convert's; thresholds are the QCFS clips (calibrate.mode: qcfs). Prints the table and times.
"""

from __future__ import annotations

import argparse
import time

import torch

from deepsnn.conversion.ann.networks import load_trained_ann
from deepsnn.conversion.ann.training import ann_accuracy, normalizer
from deepsnn.conversion.calibration import calibrate_thresholds
from deepsnn.conversion.chain_simulator import ChainSimulator
from deepsnn.conversion.correction import CHECKED_T, choose_correction, held_out_accuracy
from deepsnn.conversion.finetune import finetune
from deepsnn.conversion.snn import SpikingOptions, convert
from deepsnn.core.data import DATASETS, load_prepared
from deepsnn.evaluation.timing import hardware


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--held-out", type=int, default=2000)
    parser.add_argument("--correction-images", type=int, default=512)
    parser.add_argument("--finetune-images", type=int, default=20000)
    parser.add_argument("--finetune-T", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--test-images", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    ann, params = load_trained_ann(args.model)
    data = load_prepared(args.data, expected=params["dataset"])
    prepare = normalizer(data.name)
    thresholds = calibrate_thresholds(ann, [], "qcfs")
    simulator = ChainSimulator(convert(ann, thresholds, SpikingOptions()))
    fitting = len(data.train_images) - args.held_out
    held = (data.train_images[fitting:], data.train_labels[fitting:])
    test = (data.test_images[:args.test_images], data.test_labels[:args.test_images])
    print(f"{hardware(torch.device('cpu'))}; ANN {ann_accuracy(ann, *test, prepare, torch.device('cpu')):.2f}% on "
          f"{len(test[1])} test images, {ann_accuracy(ann, *held, prepare, torch.device('cpu')):.2f}% held out")
    rows = {"as converted": (held_out_accuracy(simulator, *held, prepare), held_out_accuracy(simulator, *test, prepare))}
    start = time.perf_counter()
    chosen = choose_correction(ann, thresholds, simulator, prepare(data.train_images[:args.correction_images]), "auto",
                               *held, prepare)
    name = f"corrected (auto: {'none' if chosen.correction_T is None else f'T={chosen.correction_T}'})"
    rows[name] = (held_out_accuracy(simulator, *held, prepare), held_out_accuracy(simulator, *test, prepare))
    print(f"correction: {time.perf_counter() - start:.0f} s")
    start = time.perf_counter()
    report = finetune(simulator, data.train_images[:fitting], data.train_labels[:fitting], prepare, args.finetune_T,
                      args.finetune_images, args.batch_size, args.lr, params["train_ann"]["augment_shift"],
                      DATASETS[data.name].flips, torch.Generator().manual_seed(args.seed))
    print(f"fine-tuning: {report.steps} steps in {time.perf_counter() - start:.0f} s, loss {report.first_loss:.4f} "
          f"-> {report.last_loss:.4f}")
    rows[f"+ fine-tuned at T in {args.finetune_T}"] = (held_out_accuracy(simulator, *held, prepare),
                                                      held_out_accuracy(simulator, *test, prepare))
    print(f"| SNN | {' | '.join(f'held-out T={T}' for T in CHECKED_T)} | {' | '.join(f'test T={T}' for T in CHECKED_T)} |")
    for name, (h, t) in rows.items():
        print(f"| {name} | {' | '.join(f'{h[T]:.2f}' for T in CHECKED_T)} | {' | '.join(f'{t[T]:.2f}' for T in CHECKED_T)} |")


if __name__ == "__main__":
    main()
