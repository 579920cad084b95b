"""ANN-to-SNN conversion: threshold balancing, the thresholds file, and the SNN itself.

Threshold balancing picks, for every activation layer, the value that maps to one spike per
timestep (the IF neuron's threshold after weight normalisation):
  - max:        the largest activation seen on calibration images (no clipping error, coarse);
  - percentile: a robust percentile of the activations (Rueckauer et al. 2017), e.g. 99.9;
  - qcfs:       the clip value lambda a QCFS network learned in training (Bu et al. 2022).
The SNN is built by SpikingJelly's `ann2snn` machinery (FX tracing, Conv+BN fusion,
ReLU -> scaler / IFNode / scaler) with these thresholds instead of its own calibration pass.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import pandas as pd
import torch
from spikingjelly.activation_based import ann2snn, functional, neuron
from spikingjelly.activation_based.ann2snn.modules import VoltageHook
from torch import fx, nn

from deepsnn.errors import ConversionError
from deepsnn.io import atomic_path
from deepsnn.vgg import QCFS, check_convertible

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


@dataclass(frozen=True)
class SpikingOptions:
    reset: str = "soft"  # soft: subtract threshold | hard: reset to 0
    initial_potential: str = "half"  # zero | half (of the threshold)

    def __post_init__(self) -> None:
        if self.reset not in ("soft", "hard"):
            raise ConversionError(f"unknown reset {self.reset!r}; allowed: soft, hard")
        if self.initial_potential not in ("zero", "half"):
            raise ConversionError(f"unknown initial_potential {self.initial_potential!r}; allowed: zero, half")

    def neuron(self, _scale: float) -> neuron.IFNode:
        """IF neuron with threshold 1 (inputs are divided by the layer's threshold)."""
        node = neuron.IFNode(v_threshold=1.0, v_reset=None if self.reset == "soft" else 0.0)
        if self.initial_potential == "half":
            node.set_reset_value("v", 0.5)
            node.reset()
        return node


class ThresholdsRecipe(ann2snn.RateCodingRecipe):
    """SpikingJelly's rate-coding recipe, with thresholds from a file instead of its own pass."""

    def __init__(self, thresholds: list[LayerThreshold], options: SpikingOptions):
        super().__init__(dataloader=[], mode="max", neuron_factory=options.neuron)
        self.by_layer = {t.layer: t.threshold for t in thresholds}

    def calibrate(self, converter, fx_model: fx.GraphModule) -> fx.GraphModule:
        modules = dict(fx_model.named_modules())
        seen = set()
        for node in fx_model.graph.nodes:
            if node.op == "call_module" and isinstance(modules.get(node.target), VoltageHook):
                layer = node.args[0].target  # the ReLU the hook observes
                if layer not in self.by_layer:
                    raise ConversionError(f"thresholds file has no entry for activation layer {layer}")
                modules[node.target].scale = torch.tensor(float(self.by_layer[layer]))
                seen.add(layer)
        missing = set(self.by_layer) - seen
        if missing:
            raise ConversionError(f"thresholds file names layers the model does not have: {sorted(missing)}")
        return fx_model


def relu_network(ann: nn.Module) -> nn.Module:
    """A copy of `ann` with every QCFS replaced by nn.ReLU (its clip value becomes the threshold)."""
    ann = copy.deepcopy(ann).eval()
    for name, module in list(ann.named_modules()):
        if isinstance(module, QCFS):
            parent_name, _, leaf = name.rpartition(".")
            setattr(ann.get_submodule(parent_name) if parent_name else ann, leaf, nn.ReLU())
    return ann


def convert(ann: nn.Module, thresholds: list[LayerThreshold], options: SpikingOptions = SpikingOptions()) -> fx.GraphModule:
    """The rate-coded SNN of `ann` (single-step mode: call it once per timestep)."""
    check_convertible(ann)
    device = next(ann.parameters()).device
    return ann2snn.Converter(ThresholdsRecipe(thresholds, options), device=device).convert(relu_network(ann))


@torch.no_grad()
def reference_step_outputs(snn: nn.Module, x: torch.Tensor, T: int, clock: list | None = None) -> torch.Tensor:
    """SpikingJelly's evaluation loop: reset, then call the SNN on the same input every step.
    Returns the output layer's value at every step, [T, B, classes]."""
    functional.reset_net(snn)
    steps = []
    for _ in range(T):
        steps.append(snn(x))
        if clock is not None:
            clock.tick()
    return torch.stack(steps)
