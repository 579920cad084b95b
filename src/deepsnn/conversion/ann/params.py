"""The params.yaml section of train_ann (the ANN that gets converted)."""

from __future__ import annotations

from typing import Any

from deepsnn.conversion.ann.networks import ARCHITECTURES
from deepsnn.core.data import IMAGE_SHAPES
from deepsnn.core.params import Bool, Choice, Float, Int, ParamsError, Pipeline, choice


def check_relations(params: dict[str, Any]) -> None:
    ann = params["train_ann"]
    if ann["activation"] == "qcfs" and ann["qcfs_clip_epochs"] >= ann["epochs"]:
        raise ParamsError(f"train_ann.qcfs_clip_epochs: {ann['qcfs_clip_epochs']} must be smaller than "
                          f"train_ann.epochs ({ann['epochs']}), so that the last epochs train the quantised "
                          f"activation the SNN reproduces; allowed: 0 .. {ann['epochs'] - 1}")


def check_dataset(params: dict[str, Any], dataset: str) -> None:
    ann = params["train_ann"]
    size = ARCHITECTURES[ann["architecture"]].image_size
    fitting = [name for name, (_, s) in IMAGE_SHAPES.items() if s == size]
    if IMAGE_SHAPES[dataset][1] != size:
        raise ParamsError(f"train_ann.architecture: {ann['architecture']} is a network for {size}x{size} images "
                          f"and this experiment's data set {dataset} has {IMAGE_SHAPES[dataset][1]}x"
                          f"{IMAGE_SHAPES[dataset][1]}; allowed data sets for it: {', '.join(fitting)}")


TRAIN_ANN = Pipeline("conversion", {"train_ann": {
        "architecture": Choice(tuple(ARCHITECTURES)),  # vgg16 (32x32 images) | cnn3 (28x28: the direct pipeline's shape)
        "activation": choice("qcfs", "relu"),  # qcfs: trainable clip-floor-shift, near-lossless at low T
        "qcfs_levels": Int(min=1),  # L, quantisation levels of qcfs (ignored for relu)
        "qcfs_clip_epochs": Int(min=0),  # first epochs of qcfs train the clip without the floor-shift
        "width": Float(min=0.0, min_open=True),  # multiplies every layer width; 1.0 = VGG-16 / cnn3 at 32, 64
        "epochs": Int(min=1),
        "batch_size": Int(min=1),
        "lr": Float(min=0.0, min_open=True),  # peak learning rate (SGD Nesterov, one-cycle)
        "weight_decay": Float(min=0.0),
        "label_smoothing": Float(min=0.0, max=1.0),
        "augment_shift": Int(min=0),  # random translation of training images by up to this many pixels
        "precision": choice("auto", "fp32", "bf16"),  # auto: bf16 autocast where the hardware has it natively, else fp32
        "compile": Bool(),  # torch.compile the training step (fuses BN + activation; ~40 s to compile)
    }}, check_relations, check_dataset)
