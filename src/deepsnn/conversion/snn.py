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
from deepsnn.conversion.ann.networks import QCFS, check_convertible
from deepsnn.core.checkpoint import load_checkpoint, load_weights
from deepsnn.core.errors import ConversionError
from deepsnn.core.io import atomic_save


class IFNode(neuron.IFNode):
    """SpikingJelly's IF neuron, whose initial potential may also be one value per channel ([C, 1, 1]
    after a conv, [C] after a linear layer; see deepsnn.conversion.correction). SpikingJelly 2.0
    replaces a stored potential that is not shaped like the input by zeros; this one broadcasts it."""

    def materialize_states(self, inputs, states, step_mode):
        v = states[0]
        x = inputs[0][0] if step_mode == "m" else inputs[0]
        if isinstance(v, torch.Tensor) and v.dim() < x.dim():
            v = v.to(dtype=x.dtype, device=x.device).expand_as(x).clone()
        return super().materialize_states(inputs, (v, *states[1:]), step_mode)


@dataclass(frozen=True)
class SpikingOptions:
    reset: str = "soft"  # soft: subtract threshold | hard: reset to 0
    initial_potential: str = "half"  # zero | half (of the threshold)

    def __post_init__(self) -> None:
        if self.reset not in ("soft", "hard"):
            raise ConversionError(f"unknown reset {self.reset!r}; allowed: soft, hard")
        if self.initial_potential not in ("zero", "half"):
            raise ConversionError(f"unknown initial_potential {self.initial_potential!r}; allowed: zero, half")

    def neuron(self, _scale: float) -> IFNode:
        """IF neuron with threshold 1 (inputs are divided by the layer's threshold)."""
        node = IFNode(v_threshold=1.0, v_reset=None if self.reset == "soft" else 0.0)
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


def set_initial_potentials(snn: nn.Module, potentials: dict[str, torch.Tensor]) -> None:
    """Give the IF nodes named in `potentials` these initial membrane potentials (in thresholds, one
    per channel: [C, 1, 1] or [C]) instead of their options' uniform one; SpikingJelly's reset restores them."""
    for name, initial in potentials.items():
        try:
            node = snn.get_submodule(name)
        except AttributeError:
            raise ConversionError(f"the SNN has no layer {name}: the corrections do not fit this SNN") from None
        if not isinstance(node, neuron.IFNode):
            raise ConversionError(f"{name} is {type(node).__name__}, not an IF node: the corrections do not fit this SNN")
        node.set_reset_value("v", initial.detach().cpu().clone())
        node.reset()


def save_snn(snn: fx.GraphModule, ann_params: dict, thresholds: list[LayerThreshold], options: SpikingOptions,
             params: dict[str, Any], path: str | Path, initial_potentials: dict[str, torch.Tensor] | None = None) -> None:
    """Everything eval_sweep needs to rebuild the SNN without calibration data, with the corrected
    initial potentials if a correction ran (by IF-node name)."""
    atomic_save({"written_by": "convert", "state_dict": snn.state_dict(), "ann_params": ann_params,
                 "thresholds": [asdict(t) for t in thresholds], "options": asdict(options), "params": params,
                 "initial_potentials": initial_potentials or {}}, path)


def load_snn(path: str | Path, ann: nn.Module, corrected: bool = True) -> fx.GraphModule:
    """The SNN written by convert: structure by converting `ann` again, weights loaded, and the
    corrected initial potentials applied (unless `corrected` is False: the SNN before correction)."""
    saved = load_checkpoint(path, written_by="convert", keys=("state_dict", "thresholds", "options"))
    thresholds = [LayerThreshold(**t) for t in saved["thresholds"]]
    snn = load_weights(convert(ann, thresholds, SpikingOptions(**saved["options"])), saved, path, "convert")
    if corrected:
        set_initial_potentials(snn, saved.get("initial_potentials", {}))
    return snn


def load_converted(path: str | Path, ann: nn.Module) -> fx.GraphModule:
    """The SNN of `ann` as `convert` built it from the thresholds in `path`, before any low-T
    correction or fine-tuning: the reference the low-T steps are measured against."""
    saved = load_checkpoint(path, written_by="convert", keys=("state_dict", "thresholds", "options"))
    return convert(ann, [LayerThreshold(**t) for t in saved["thresholds"]], SpikingOptions(**saved["options"]))


def load_snn_params(path: str | Path) -> dict[str, Any]:
    """The params that the convert stage wrote the SNN with (its `convert` section)."""
    return load_checkpoint(path, written_by="convert", keys=("state_dict", "params"))["params"]


def load_snn_alone(path: str | Path) -> tuple[fx.GraphModule, dict[str, Any]]:
    """The SNN written by convert, from its own file: the ANN it was converted from is rebuilt from the
    params stored with it (its weights are overwritten by the SNN's), and those params."""
    from deepsnn.conversion.ann.networks import build_ann

    saved = load_checkpoint(path, written_by="convert", keys=("state_dict", "ann_params"))
    ann = build_ann(saved["ann_params"]["train_ann"], saved["ann_params"]["dataset"]).eval()
    return load_snn(path, ann), saved["ann_params"]
