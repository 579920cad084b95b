"""Route (a) of issue 26 on a trained QCFS ANN, outside DVC: set every QCFS layer to `--levels`
quantisation levels (QCFS's analysis: with L = T the expected conversion error is zero), re-train
briefly (train_ann's SGD and loss at a constant learning rate, its augmentation, learned clips
kept), then convert (no fine-tuning) and print the ANN's accuracy and the SNN's at T = 1, 2, 4, 8
on the first `--test-images` test images, as converted and with convert's correction
(correction_T: auto, chosen on the last `--held-out` training images).

    python bench/qcfs_levels.py --model models/conversion-cifar10/ann.pt --data data/cifar10.pt \\
        --levels 2 [--images 25600] [--lr 0.01] [--test-images 2000] [--correction-images 512]

Re-training uses the training images before the last `--held-out`, as convert's fitting does.
"""

from __future__ import annotations

import argparse
import time

import torch

from deepsnn.conversion.ann.networks import QCFS, load_trained_ann
from deepsnn.conversion.ann.training import ann_accuracy, normalizer, optimizer_and_loss
from deepsnn.conversion.calibration import calibrate_thresholds
from deepsnn.conversion.chain_simulator import ChainSimulator
from deepsnn.conversion.correction import choose_correction, held_out_accuracy
from deepsnn.conversion.snn import SpikingOptions, convert
from deepsnn.core.data import DATASETS, load_prepared
from deepsnn.core.training import augment, batch_indices


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--levels", type=int, required=True)
    parser.add_argument("--images", type=int, default=25600, help="training images seen while re-training")
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--held-out", type=int, default=2000)
    parser.add_argument("--test-images", type=int, default=2000)
    parser.add_argument("--correction-images", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    ann, params = load_trained_ann(args.model)
    data = load_prepared(args.data, expected=params["dataset"])
    prepare, cpu = normalizer(data.name), torch.device("cpu")
    test = (data.test_images[:args.test_images], data.test_labels[:args.test_images])
    trained_levels = params["train_ann"]["qcfs_levels"]
    print(f"ANN L={trained_levels}: {ann_accuracy(ann, *test, prepare, cpu):.2f}% on {len(test[1])} test images")
    for module in ann.modules():
        if isinstance(module, QCFS):
            module.levels = args.levels
    print(f"ANN L={args.levels} before re-training: {ann_accuracy(ann, *test, prepare, cpu):.2f}%")
    optimizer, criterion = optimizer_and_loss(ann, {**params["train_ann"], "lr": args.lr})
    fitting = len(data.train_images) - args.held_out
    generator, seen, start = torch.Generator().manual_seed(args.seed), 0, time.perf_counter()
    ann.train()
    for idx in batch_indices(fitting, args.batch_size, generator):
        if seen >= args.images:
            break
        x = prepare(augment(data.train_images[idx], params["train_ann"]["augment_shift"], DATASETS[data.name].flips,
                            generator))
        loss = criterion(ann(x), data.train_labels[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        seen += len(idx)
    ann.eval()
    print(f"re-trained on {seen} images in {time.perf_counter() - start:.0f} s")
    print(f"ANN L={args.levels}: {ann_accuracy(ann, *test, prepare, cpu):.2f}%")
    thresholds = calibrate_thresholds(ann, [], "qcfs")
    snn = ChainSimulator(convert(ann, thresholds, SpikingOptions()))

    def snn_accuracy() -> str:
        return " / ".join(f"T={T} {a:.2f}" for T, a in held_out_accuracy(snn, *test, prepare).items())

    print(f"SNN as converted: {snn_accuracy()}")
    chosen = choose_correction(ann, thresholds, snn, prepare(data.train_images[:args.correction_images]), "auto",
                               data.train_images[fitting:], data.train_labels[fitting:], prepare)
    name = "none" if chosen.correction_T is None else f"T={chosen.correction_T}"
    print(f"SNN corrected (auto: {name}): {snn_accuracy()}")


if __name__ == "__main__":
    main()
