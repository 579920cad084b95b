"""The params.yaml sections both pipelines' evaluations share: the simulation stage's (simulate_sweep,
simulate_spatial) and the evaluation stage's (eval_sweep, eval_spatial)."""

from __future__ import annotations

from typing import Any

from deepsnn.core.params import Either, Float, Int, choice


def simulation_section(**extra: Any) -> dict[str, Any]:
    """A simulation stage's keys, and the pipeline's own (`extra`)."""
    return {
        "horizon": Int(min=1),  # timesteps simulated; the evaluation reads any T_eval up to here off the simulation
        "batch_size": Int(min=1),  # images simulated at once
        "holdout_images": Int(min=1),  # the last training images, also simulated: early exit's margin is chosen on them
        "max_hours": Float(min=0.0, min_open=True),  # a simulation estimated to take longer is refused before it starts
        **extra,
    }


EVALUATION = {
    # an image stops at the first t where its summed output's top class leads the runner-up by this
    # much (in output units: spikes for the direct SNN, the output layer's value for conversion), at the
    # latest at T_eval; auto: the smallest margin that keeps the held-out images' accuracy within
    # early_exit_tolerance points of their fixed-T accuracy at early_exit_reference_T
    "early_exit_margin": Either((Float(min=0.0), choice("auto"))),
    "early_exit_reference_T": Int(min=1),
    "early_exit_tolerance": Float(min=0.0),  # accuracy points
}
