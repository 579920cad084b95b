"""What both pipelines' simulation stages (simulate_sweep, simulate_spatial) and evaluation stages
(eval_sweep, eval_spatial) share: their params.yaml sections, their common arguments, the held-out images."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from deepsnn.core import cli
from deepsnn.core.params import Either, Float, Int, ParamsError, choice


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
    # latest at T_eval; auto: the smallest margin at which early exit changes at most
    # early_exit_tolerance percent of the held-out images' answers against fixed T = early_exit_reference_T
    "early_exit_margin": Either((Float(min=0.0), choice("auto"))),
    "early_exit_reference_T": Int(min=1),
    "early_exit_tolerance": Float(min=0.0, max=100.0),  # percent of the held-out images
}


def stage_parser(description: str, model_help: str, snn: bool = False) -> argparse.ArgumentParser:
    """The arguments every simulation and evaluation stage takes: params files, data set, the model
    (and, for the conversion, its SNN); the stage adds its outputs."""
    parser = argparse.ArgumentParser(description=description)
    cli.add_params_argument(parser)
    parser.add_argument("--data", type=Path, required=True, help="prepared data set (.pt)")
    parser.add_argument("--model", type=Path, required=True, help=model_help)
    if snn:
        parser.add_argument("--snn", type=Path, required=True, help="SNN checkpoint from convert")
    return parser


def held_out_images(cfg: dict[str, Any], stage: str, train_images: int, path: Path) -> slice:
    """The last `holdout_images` training images (early exit's margin is chosen on them)."""
    if cfg["holdout_images"] > train_images:
        raise ParamsError(f"{stage}.holdout_images: {cfg['holdout_images']} is more than the {train_images} "
                          f"training images of {path}; allowed: 1 .. {train_images}")
    return slice(train_images - cfg["holdout_images"], None)
