"""Threshold balancing: for every activation layer, the value that maps to one spike per timestep
(the IF neuron's threshold after weight normalisation), and the reviewable thresholds file.
  - max:        the largest activation seen on calibration images (no clipping error, coarse);
  - percentile: a robust percentile of the activations (Rueckauer et al. 2017), e.g. 99.9;
  - qcfs:       the clip value lambda a QCFS network learned in training (Bu et al. 2022).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import pandas as pd
import torch
from torch import nn

from deepsnn.conversion.ann.networks import QCFS
from deepsnn.core.errors import ConversionError
from deepsnn.core.io import atomic_path

CALIBRATION_MODES = ("max", "percentile", "qcfs")


@dataclass(frozen=True)
class LayerThreshold:
    layer: str  # module name of the activation in the ANN, e.g. "features.2"
    threshold: float
    statistic: str  # how it was chosen, e.g. "max", "p99.99", "qcfs_lambda"


def activation_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The ReLU / QCFS modules of `model`, in forward order (registration order for VGG)."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, (nn.ReLU, QCFS))]


@torch.no_grad()
def calibrate_thresholds(model: nn.Module, batches: Iterable[torch.Tensor], mode: str,
                         percentile: float = 99.99) -> list[LayerThreshold]:
    """Per-layer thresholds from activations on calibration `batches` (ANN in eval mode).

    max: the largest activation over all batches. percentile: the mean over batches of each
    batch's percentile of the layer's activations (all values, zeros included, as SpikingJelly's
    VoltageHook does); averaging keeps memory flat for large layers. qcfs: learned lambdas."""
    if mode not in CALIBRATION_MODES:
        raise ConversionError(f"unknown calibration mode {mode!r}; allowed: {', '.join(CALIBRATION_MODES)}")
    if not 0.0 < percentile <= 100.0:
        raise ConversionError(f"percentile must be in (0, 100], got {percentile}")
    layers = activation_layers(model)
    if not layers:
        raise ConversionError("the model has no ReLU or QCFS activation to convert")
    if mode == "qcfs":
        if not all(isinstance(m, QCFS) for _, m in layers):
            raise ConversionError("calibration mode qcfs needs a model trained with the qcfs activation")
        return [LayerThreshold(name, abs(float(m.threshold)), "qcfs_lambda") for name, m in layers]

    stats: dict[str, list[float]] = {name: [] for name, _ in layers}

    def observe(name: str):
        def hook(_module, _inputs, output):
            values = output.detach().float().flatten()
            if mode == "max":
                stats[name].append(float(values.max()))
            else:
                k = max(1, min(values.numel(), int(round(percentile / 100.0 * values.numel()))))
                stats[name].append(float(values.kthvalue(k).values))
        return hook

    handles = [m.register_forward_hook(observe(name)) for name, m in layers]
    model.eval()
    try:
        for x in batches:
            model(x)
    finally:
        for h in handles:
            h.remove()
    label = "max" if mode == "max" else f"p{percentile:g}"
    out = []
    for name, values in stats.items():
        if not values:
            raise ConversionError("no calibration batches were given")
        value = max(values) if mode == "max" else sum(values) / len(values)
        out.append(LayerThreshold(name, max(value, 1e-6), label))  # a dead layer still needs a positive threshold
    return out


def write_thresholds(thresholds: list[LayerThreshold], path: str | Path) -> None:
    """A human-readable CSV: layer, threshold (full float precision), statistic."""
    table = pd.DataFrame([t.__dict__ for t in thresholds], columns=["layer", "threshold", "statistic"])
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False, float_format="%.17g")


def read_thresholds(path: str | Path) -> list[LayerThreshold]:
    table = pd.read_csv(path, dtype={"layer": str, "threshold": float, "statistic": str})
    return [LayerThreshold(r.layer, float(r.threshold), r.statistic) for r in table.itertuples()]
