"""The params.yaml sections of the conversion pipeline: train_ann (in ann/params.py), calibrate,
convert, and its evaluation's simulate_sweep and eval_sweep (deepsnn.evaluation.params)."""

from __future__ import annotations

from deepsnn.conversion.ann.params import TRAIN_ANN
from deepsnn.core.params import INITIAL_POTENTIALS, RESETS, Bool, Choice, Either, Float, Int, IntList, Pipeline, choice
from deepsnn.evaluation.params import EVALUATION, simulation_section

CONVERSION = Pipeline("conversion", {
    **TRAIN_ANN.sections,
    "calibrate": {
        "mode": choice("qcfs", "max", "percentile"),  # how each layer's threshold is chosen
        "percentile": Float(min=0.0, max=100.0, min_open=True),  # for mode percentile, in (0, 100]
        "images": Int(min=1),  # training images used for activation statistics
        "batch_size": Int(min=1),
    },
    "convert": {
        "reset": Choice(RESETS),
        "initial_potential": Choice(INITIAL_POTENTIALS),
        "correction": choice("none", "potential"),  # potential: per-channel initial potentials fitted at low T
        "correction_images": Int(min=1),  # training images the correction is fitted on
        "correction_T": Int(min=1),  # it matches the rates of t = 1 .. correction_T to the ANN
    },
    "simulate_sweep": simulation_section(
        compile=Bool(),  # fuse each IF layer's elementwise work with torch.compile (same results)
        uncorrected_horizon=Int(min=0),  # with a correction, the SNN without it is also simulated up to here
        temporal_coding=choice("none", "few_spikes"),  # also simulate the ANN with this coding (deepsnn.conversion.few_spikes)
    ),
    "eval_sweep": EVALUATION,
}, TRAIN_ANN.relations)
