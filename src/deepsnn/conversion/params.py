"""The params.yaml sections of the conversion pipeline: train_ann (in ann/params.py), calibrate,
convert, and its evaluation's simulate_sweep and eval_sweep (deepsnn.evaluation.params)."""

from __future__ import annotations

from deepsnn.conversion.ann.params import TRAIN_ANN
from deepsnn.core.params import (INITIAL_POTENTIALS, RESETS, Bool, Choice, Either, Float, Int, IntList, ParamsError,
                                 Pipeline, choice)
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
        "holdout_images": Int(min=1),  # the last training images: low-T choices are made on them, nothing is fitted on them
        "correction": choice("none", "potential"),  # potential: per-channel initial potentials fitted at low T
        "correction_images": Int(min=1),  # training images the correction is fitted on
        # it matches the rates of t = 1 .. correction_T to the ANN; auto: the best of 1, 2, 4 and none on held-out images
        "correction_T": Either((Int(min=1), choice("auto"))),
        "finetune": choice("none", "spike_count"),  # spike_count: train the SNN's weights at low T (deepsnn.conversion.finetune)
        "finetune_images": Int(min=0),  # training images fine-tuning steps through (0: none)
        "finetune_T": IntList(min=1),  # each batch runs one of these T
        "finetune_batch_size": Int(min=1),
        "finetune_lr": Float(min=0.0, min_open=True),  # Adam, decaying linearly to 0
    },
    "simulate_sweep": simulation_section(
        compile=Bool(),  # fuse each IF layer's elementwise work with torch.compile (same results)
        uncorrected_horizon=Int(min=0),  # with a correction, the SNN without it is also simulated up to here
        temporal_coding=choice("none", "few_spikes"),  # also simulate the ANN with this coding (deepsnn.conversion.few_spikes)
    ),
    "eval_sweep": EVALUATION,
}, lambda params: (TRAIN_ANN.relations(params), check_holdout(params)), TRAIN_ANN.fits)


def check_holdout(params: dict) -> None:
    """Early exit chooses its margin on images fine-tuning and the correction never fitted on."""
    if params["simulate_sweep"]["holdout_images"] > params["convert"]["holdout_images"]:
        raise ParamsError(f"simulate_sweep.holdout_images: {params['simulate_sweep']['holdout_images']} is more than "
                          f"convert.holdout_images ({params['convert']['holdout_images']}): early exit would choose its "
                          f"margin on images the SNN was fitted on; allowed: 1 .. {params['convert']['holdout_images']}")
