"""Post-training correction of a converted SNN at low T: per-channel initial membrane potentials.

At a few timesteps an IF layer's spike count is a coarse version of the ANN activation it stands
for, and a biased one: most activations are small, so at T=1 or 2 most neurons of a channel emit
fewer spikes than their quantised activation asks for, and the error adds up layer by layer. The
`potential` correction removes that bias on training images, layer by layer, from the first
spiking layer to the last, with the layers before it already corrected (so it also absorbs the
error they pass on):

  for each channel, choose the initial membrane potential whose mean firing rate over the first
  `T` steps (1, 2, ..., T, each weighted by 1/t) matches the channel's mean ANN activation,
  clip(a / threshold, 0, 1), found by bisection (the rate never falls as the potential rises).

Raising a neuron's initial potential by d (in thresholds) moves its spike count at every t by
about d, so its rate by d/t: the correction acts at low T and fades as T grows, where the rates
already match the ANN. A channel whose rates already match keeps its potential exactly. Nothing
is added at inference: no extra timestep, no extra operation (the potential is set at reset, as
the uniform half-threshold is). It is the potential half of Li et al.'s layer-wise calibration
(ICML 2021), per channel, fitted to the spike counts of the first T steps, the quantity that
offset-spike calibration (COS, Hao et al., ICLR 2023) corrects per sample with extra steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from deepsnn.conversion.calibration import LayerThreshold, activation_layers
from deepsnn.conversion.chain_simulator import ChainSimulator, IFLayer, if_layer_step
from deepsnn.core.errors import ConversionError
from deepsnn.core.neurons import step

SEARCH_RANGE = 1.0  # potentials are searched within +-1 threshold of the uncorrected one
BISECTION_STEPS = 14  # 2 / 2**14: about 1e-4 of a threshold
MATCHED = 1e-6  # a channel whose weighted rate gap is this small already matches: it is left as it is


@dataclass(frozen=True)
class CorrectionReport:
    """Per spiking layer: mean absolute gap between the SNN's rate and the ANN activation over
    t = 1..T and channels, before and after the correction (in thresholds)."""
    layers: list[str]
    error_before: list[float]
    error_after: list[float]


@torch.no_grad()
def ann_channel_means(ann: nn.Module, thresholds: list[LayerThreshold], images: torch.Tensor,
                      batch_size: int = 256) -> list[torch.Tensor]:
    """Per activation layer (forward order), the per-channel mean of clip(activation / threshold, 0, 1)
    over `images` (already normalised): what each SNN layer's firing rate stands for."""
    layers = activation_layers(ann)
    by_layer = {t.layer: t.threshold for t in thresholds}
    missing = [name for name, _ in layers if name not in by_layer]
    if missing:
        raise ConversionError(f"thresholds file has no entry for activation layers {missing}")
    sums: dict[str, torch.Tensor] = {}

    def observe(name: str):
        def hook(_module, _inputs, output):
            rate = (output / by_layer[name]).clamp(0.0, 1.0).double()
            sums[name] = sums.get(name, 0) + _channel_mean(rate) * len(rate)
        return hook

    ann.eval()
    hooks = [m.register_forward_hook(observe(name)) for name, m in layers]
    try:
        for batch in images.split(batch_size):
            ann(batch)
    finally:
        for h in hooks:
            h.remove()
    return [(sums[name] / len(images)).float() for name, _ in layers]


def _channel_view(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """[C] -> broadcastable over `like` ([N, C] or [N, C, H, W])."""
    return values.view(-1, *([1] * (like.dim() - 2)))


def per_channel(initial: float | torch.Tensor, channels: int) -> torch.Tensor:
    """An IF layer's initial potential (one number, or one per channel) as a [channels] tensor."""
    return torch.as_tensor(initial, dtype=torch.float32).flatten().expand(channels).clone()


def _channel_mean(x: torch.Tensor) -> torch.Tensor:
    """[N, C, ...] -> [C]: the mean of each channel over samples and positions."""
    return x.transpose(0, 1).reshape(x.shape[1], -1).mean(1)


def rates_per_step(layer: IFLayer, currents: list[torch.Tensor], initial: torch.Tensor) -> torch.Tensor:
    """[T, C]: each channel's mean firing rate after t = 1..T steps of `layer` driven by `currents`
    (one per step) from per-channel initial potentials `initial` [C]."""
    v = torch.empty_like(currents[0]).copy_(_channel_view(initial, currents[0]))
    count = torch.zeros_like(v)
    rates = []
    for t, current in enumerate(currents, start=1):
        current = current * layer.in_scale if layer.in_scale is not None else current
        count += step(v, current, layer.config)
        rates.append(_channel_mean(count) / t)
    return torch.stack(rates)


def fit_initial_potential(layer: IFLayer, currents: list[torch.Tensor], target: torch.Tensor) -> torch.Tensor:
    """Per-channel initial potentials [C] of `layer` whose mean rates over t = 1..T (weights 1/t)
    match `target` [C]; channels that already match keep the layer's current potential."""
    T = len(currents)
    weights = 1.0 / torch.arange(1, T + 1, dtype=torch.float32).view(-1, 1)
    base = per_channel(layer.initial, len(target))

    def gap(initial: torch.Tensor) -> torch.Tensor:
        return (weights * (rates_per_step(layer, currents, initial) - target)).sum(0)

    at_base = gap(base)
    low, high = base - SEARCH_RANGE, base + SEARCH_RANGE
    for _ in range(BISECTION_STEPS):
        middle = (low + high) / 2
        too_few = gap(middle) < 0  # rates below the target: raise the potential
        low, high = torch.where(too_few, middle, low), torch.where(too_few, high, middle)
    return torch.where(at_base.abs() <= MATCHED, base, (low + high) / 2)


def _walk_spiking_layers(simulator: ChainSimulator, x: torch.Tensor, T: int,
                         visit: Callable[[int, IFLayer, list[torch.Tensor]], None]) -> None:
    """Simulate `x` for T steps one layer at a time (all steps of a layer, then the next), calling
    `visit(k, layer, currents)` before the k-th IF layer runs on its input currents (one per step);
    `visit` may change the layer's initial potential, and what follows sees the change."""
    currents = [simulator.prefix(x)] * T  # the analog prefix sees the same input every step
    k = 0
    for layer in simulator.suffix:
        if not isinstance(layer, IFLayer):
            currents = [layer(h) for h in currents]
            continue
        visit(k, layer, currents)
        v = layer.initial_state(currents[0])
        currents = [if_layer_step(v, h, layer.in_scale, layer.out_scale, layer.pool, layer.config, None)[1]
                    for h in currents]
        k += 1


def _rate_gap(layer: IFLayer, currents: list[torch.Tensor], target: torch.Tensor) -> float:
    rates = rates_per_step(layer, currents, per_channel(layer.initial, len(target)))
    return (rates - target.to(rates.device)).abs().mean().item()


def _check_layers(simulator: ChainSimulator, targets: list[torch.Tensor]) -> None:
    if len(targets) != len(simulator.spiking_layers):
        raise ConversionError(f"{len(targets)} ANN activation layers but {len(simulator.spiking_layers)} "
                              "spiking layers: the SNN does not come from this ANN")


@torch.no_grad()
def rate_gaps(simulator: ChainSimulator, targets: list[torch.Tensor], x: torch.Tensor, T: int) -> list[float]:
    """Per spiking layer, the mean absolute gap between each channel's firing rate after t = 1..T
    steps and its target (the ANN's mean activation, `ann_channel_means`), on the images `x`."""
    _check_layers(simulator, targets)
    gaps: list[float] = []
    _walk_spiking_layers(simulator, x, T, lambda k, layer, currents: gaps.append(_rate_gap(layer, currents, targets[k])))
    return gaps


@torch.no_grad()
def correct_initial_potentials(simulator: ChainSimulator, targets: list[torch.Tensor], x: torch.Tensor,
                               T: int) -> tuple[dict[str, torch.Tensor], CorrectionReport]:
    """Fit every spiking layer's per-channel initial potentials (see the module docstring), in order,
    on the normalised images `x` simulated for T steps. Returns them by IF-node name ([C, 1, 1] or [C])
    and the rate gaps before and after. `simulator` is left with the corrected potentials."""
    _check_layers(simulator, targets)
    potentials: dict[str, torch.Tensor] = {}
    before: list[float] = []
    after: list[float] = []

    def fit(k: int, layer: IFLayer, currents: list[torch.Tensor]) -> None:
        target = targets[k].to(currents[0].device)
        before.append(_rate_gap(layer, currents, target))
        # [C, 1, 1] after a conv, [C] after a linear layer: broadcasts over one sample
        layer.initial = _channel_view(fit_initial_potential(layer, currents, target), currents[0])
        after.append(_rate_gap(layer, currents, target))
        potentials[simulator.spiking_layers[k].name] = layer.initial.clone()

    _walk_spiking_layers(simulator, x, T, fit)
    return potentials, CorrectionReport(list(potentials), before, after)


CHECKED_T = (1, 2, 4, 8)  # where a correction must not be worse than none, on held-out images
CANDIDATE_T = (1, 2, 4)  # correction_T: auto tries these


@torch.no_grad()
def held_out_accuracy(simulator: ChainSimulator, images: torch.Tensor, labels: torch.Tensor, prepare: Callable,
                      batch_size: int = 250) -> dict[int, float]:
    """Accuracy (%) at each T of CHECKED_T on `images` (uint8)."""
    correct = torch.zeros(len(CHECKED_T))
    device = next(simulator.prefix.parameters()).device
    for start in range(0, len(images), batch_size):
        x = prepare(images[start:start + batch_size].to(device))
        predicted = simulator.step_outputs(x, max(CHECKED_T)).cumsum(0).argmax(-1)  # [T, B]
        truth = labels[start:start + batch_size].to(device)
        correct += torch.stack([(predicted[T - 1] == truth).sum() for T in CHECKED_T]).cpu()
    return {T: round(float(c) / len(images) * 100, 4) for T, c in zip(CHECKED_T, correct)}


@dataclass
class ChosenCorrection:
    """The correction convert keeps: fitted for correction_T (None: none), and what decided it."""
    correction_T: int | None
    potentials: dict[str, torch.Tensor] | None
    report: CorrectionReport | None
    held_out: dict[str, dict[int, float]]  # candidate ("none", "T=2", ...) -> accuracy at each T, where measured

    def summary(self) -> str:
        lines = [f"{layer}: rate gap to the ANN over t=1..{self.correction_T} {before:.4f} -> {after:.4f}"
                 for layer, before, after in zip(*(vars(self.report).values() if self.report else ([], [], [])))]
        lines += [f"held-out accuracy, {name}: " + ", ".join(f"T={T} {a:.2f}%" for T, a in acc.items())
                  for name, acc in self.held_out.items()]
        return "\n".join(lines + [f"correction kept: {'none' if self.correction_T is None else f'T={self.correction_T}'}"])

    def metrics(self) -> dict:
        out: dict = {"correction_T": self.correction_T or 0}
        if self.report:
            out |= {"rate_gap_before": round(sum(self.report.error_before) / len(self.report.layers), 5),
                    "rate_gap_after": round(sum(self.report.error_after) / len(self.report.layers), 5)}
        for name, acc in self.held_out.items():
            out |= {f"held_out_{name.replace('=', '')}_accuracy_T{T}": a for T, a in acc.items()}
        return out


def choose_correction(ann: nn.Module, thresholds: list[LayerThreshold], simulator: ChainSimulator,
                      fit_images: torch.Tensor, correction_T: int | str, held_images: torch.Tensor,
                      held_labels: torch.Tensor, prepare: Callable) -> ChosenCorrection:
    """Fit the correction on `fit_images` (normalised) for `correction_T`, or with "auto" for each of
    CANDIDATE_T, keeping the one whose accuracy on the held-out images (uint8) is nowhere in CHECKED_T
    below the uncorrected SNN's and best on average at T = 1, 2, 4; none if every one is worse
    somewhere. `simulator` is left with the kept potentials."""
    targets = ann_channel_means(ann, thresholds, fit_images)
    layers = [layer for layer in simulator.suffix if isinstance(layer, IFLayer)]
    uncorrected = [layer.initial for layer in layers]
    if correction_T != "auto":
        potentials, report = correct_initial_potentials(simulator, targets, fit_images, correction_T)
        return ChosenCorrection(correction_T, potentials, report, {})
    held_out = {"none": held_out_accuracy(simulator, held_images, held_labels, prepare)}
    fitted = {}
    for T in CANDIDATE_T:
        for layer, initial in zip(layers, uncorrected):
            layer.initial = initial
        fitted[T] = correct_initial_potentials(simulator, targets, fit_images, T)
        held_out[f"T={T}"] = held_out_accuracy(simulator, held_images, held_labels, prepare)
    safe = [T for T in CANDIDATE_T if all(held_out[f"T={T}"][t] >= held_out["none"][t] for t in CHECKED_T)]
    best = max(safe, key=lambda T: sum(held_out[f"T={T}"][t] for t in CHECKED_T[:3]), default=None)
    for layer, initial in zip(layers, uncorrected):
        layer.initial = initial
    if best is None:
        return ChosenCorrection(None, None, None, held_out)
    potentials, report = fitted[best]
    for layer, name in zip(layers, simulator.spiking_layers):
        layer.initial = potentials[name.name]
    return ChosenCorrection(best, potentials, report, held_out)
