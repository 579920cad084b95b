"""The direct pipeline's params as its evaluation stages read them: train_spatial (from the
checkpoint's training, deepsnn.direct.params), simulate_spatial and eval_spatial. Here rather
than in direct/, which train_spatial runs: an evaluation knob never re-runs the training."""

from __future__ import annotations

from deepsnn.core.params import Pipeline
from deepsnn.direct.params import TRAIN_SPATIAL
from deepsnn.evaluation.params import EVALUATION, simulation_section

DIRECT = Pipeline("direct", {
    **TRAIN_SPATIAL.sections,
    "simulate_spatial": simulation_section(),
    "eval_spatial": EVALUATION,
}, TRAIN_SPATIAL.relations, TRAIN_SPATIAL.fits)
