"""The params.yaml section of train_spatial (the directly trained SNN); its evaluation's sections are
declared with the evaluation code (deepsnn.evaluation.params)."""

from __future__ import annotations

from typing import Any

from deepsnn.core.data import IMAGE_SHAPES
from deepsnn.core.params import (INITIAL_POTENTIALS, RESETS, Choice, Float, Int, ParamsError, Pipeline, choice,
                                 choice_int)
from deepsnn.direct.spatial import ARCHITECTURES

NEURONS = ("if", "lif")
SURROGATES = ("atan", "sigmoid", "piecewise_quadratic")


def check_relations(params: dict[str, Any]) -> None:
    spatial = params["train_spatial"]
    if spatial["T_train_jitter"] >= spatial["T_train"]:
        raise ParamsError(f"train_spatial.T_train_jitter: {spatial['T_train_jitter']} must be smaller than "
                          f"train_spatial.T_train ({spatial['T_train']}); allowed: 0 .. {spatial['T_train'] - 1}")


def check_dataset(params: dict[str, Any], dataset: str) -> None:
    spatial = params["train_spatial"]
    size = IMAGE_SHAPES[dataset][1]
    if spatial["architecture"] == "cnn3" and size != 28:
        raise ParamsError(f"train_spatial.architecture: cnn3 is a network for 28x28 images and this experiment's "
                          f"data set {dataset} has {size}x{size}; allowed data sets for it: mnist, fashion_mnist "
                          f"(for {dataset}: vgg7)")


TRAIN_SPATIAL = Pipeline("direct", {
    "train_spatial": {
        "architecture": Choice(ARCHITECTURES),  # cnn3: the write-up's 3-layer network | vgg7: 7 conv layers
        "method": choice("spatial", "bptt"),  # spatial: gradients through spike counts, not time
        "neuron": Choice(NEURONS),
        "reset": Choice(RESETS),
        "surrogate": Choice(SURROGATES),
        "loss": choice("count_ce", "count_mse"),
        "initial_potential": Choice(INITIAL_POTENTIALS),
        "tau": Float(min=1.0),  # LIF membrane time constant, in timesteps (ignored for IF)
        "T_train": Int(min=1),  # timesteps simulated per training image (the centre, with jitter)
        "T_train_jitter": Int(min=0),  # each batch draws T in [T_train - jitter, T_train + jitter]
        "augment_shift": Int(min=0, max=8),  # random translation of training images, in pixels
        "channels": Int(min=1),  # width of the first conv layer; later stages have 2x (and 4x) as many
        "conv1_kernel": choice_int(3, 5, 7),  # conv1 kernel size (computed once per image)
        "output_population": Int(min=1),  # output neurons per class; a class's score is their spike count
        "epochs": Int(min=1),
        "batch_size": Int(min=1),
        "lr": Float(min=0.0, min_open=True),  # peak learning rate of the one-cycle schedule
        "weight_decay": Float(min=0.0),
    },
}, check_relations, check_dataset)
