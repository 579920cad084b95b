"""ANN-to-SNN conversion: the rate-coded SNN built from an ANN and its thresholds.

The SNN is built by SpikingJelly's `ann2snn` machinery (FX tracing, Conv+BN fusion,
ReLU -> scaler / IFNode / scaler) with the thresholds of `calibration` instead of its own
calibration pass.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from spikingjelly.activation_based import ann2snn, functional, neuron
from spikingjelly.activation_based.ann2snn.modules import VoltageHook
from torch import fx, nn

from deepsnn.conversion.calibration import LayerThreshold
from deepsnn.conversion.ann.vgg import QCFS, check_convertible
from deepsnn.core.checkpoint import load_checkpoint, load_weights
from deepsnn.core.errors import ConversionError
from deepsnn.core.io import atomic_save


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


def save_snn(snn: fx.GraphModule, ann_params: dict, thresholds: list[LayerThreshold], options: SpikingOptions,
             params: dict[str, Any], path: str | Path) -> None:
    """Everything eval_sweep needs to rebuild the SNN without calibration data."""
    atomic_save({"state_dict": snn.state_dict(), "ann_params": ann_params,
                 "thresholds": [asdict(t) for t in thresholds], "options": asdict(options), "params": params}, path)


def load_snn(path: str | Path, ann: nn.Module) -> fx.GraphModule:
    """The SNN written by convert: structure by converting `ann` again, weights loaded."""
    saved = load_checkpoint(path, written_by="convert", keys=("state_dict", "thresholds", "options"))
    thresholds = [LayerThreshold(**t) for t in saved["thresholds"]]
    return load_weights(convert(ann, thresholds, SpikingOptions(**saved["options"])), saved, path, "convert")
