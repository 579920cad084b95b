"""Spike-count fine-tuning of a converted SNN at the few timesteps it runs (hybrid training: Rathi &
Roy, ICLR 2020, with this project's spatial gradients in place of their STDB).

Conversion gives an SNN whose rates match its ANN's activations only as T grows; at T = 1 or 2 an IF
neuron can emit 0, 1 or 2 spikes where the QCFS ANN has L + 1 levels. Fine-tuning trains the SNN's
own weights (the ANN's, BatchNorm folded in) on training images at such T. Each step simulates the
SNN for T steps without a graph (its exact spike counts), then back-propagates through its
rate-domain equivalent, the direct pipeline's spatial gradient (deepsnn.core.neurons.with_rate_gradient):
each layer's firing rate keeps its simulated value and takes the gradient of clip(mean current, 0, 1),
the clip QCFS trained with (the floor's gradient taken as 1). Memory does not grow with T. Thresholds
and initial potentials (a correction's included) stay as they are; T is drawn per batch from a list,
so the network does not tune itself to one T.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from deepsnn.conversion.chain_simulator import ChainSimulator, IFLayer
from deepsnn.core.neurons import step, valued_as
from deepsnn.core.progress import progress
from deepsnn.core.training import augment, batch_indices


@dataclass(frozen=True)
class FinetuneReport:
    steps: int
    first_loss: float  # mean loss of the first tenth of the steps
    last_loss: float  # and of the last tenth


class _Clip(nn.Module):
    """The rate-domain model of an IF layer: rate = clip(current, 0, 1) in thresholds."""

    def forward(self, current: torch.Tensor) -> torch.Tensor:
        return current.clamp(0.0, 1.0)


def weight_layers(simulator: ChainSimulator) -> list[nn.Module]:
    """The conv and linear layers of the SNN: what fine-tuning trains."""
    modules = [*simulator.prefix, *[m for m in simulator.suffix if isinstance(m, nn.Module)]]
    return [m for m in modules if isinstance(m, (nn.Conv2d, nn.Linear))]


@torch.no_grad()
def simulate_rates(simulator: ChainSimulator, x: torch.Tensor, T: int) -> list[torch.Tensor]:
    """Each IF layer's firing rate (spikes / T) over T steps from its initial potentials."""
    current = simulator.prefix(x)
    potentials: dict[int, torch.Tensor] = {}
    counts: dict[int, torch.Tensor] = {}
    for _ in range(T):
        h = current
        for i, layer in enumerate(simulator.suffix):
            if not isinstance(layer, IFLayer):
                h = layer(h)
                continue
            drive = h * layer.in_scale if layer.in_scale is not None else h
            if i not in potentials:
                potentials[i], counts[i] = layer.initial_state(drive), torch.zeros_like(drive)
            spikes = step(potentials[i], drive, layer.config)
            counts[i] += spikes
            h = spikes * layer.out_scale if layer.out_scale is not None else spikes
            if layer.pool is not None:
                h = F.avg_pool2d(h, layer.pool)
    return [counts[i] / T for i in sorted(counts)]


def rate_forward(simulator: ChainSimulator, x: torch.Tensor, rates: list[torch.Tensor]) -> torch.Tensor:
    """The output layer's time-averaged value [B, classes], equal to the simulation's (each layer's
    rate is the simulated one), differentiable through the rate-domain model."""
    clip = _Clip()
    h = simulator.prefix(x)
    k = 0
    for layer in simulator.suffix:
        if not isinstance(layer, IFLayer):
            h = layer(h)
            continue
        drive = h * layer.in_scale if layer.in_scale is not None else h
        h = valued_as(rates[k], clip(drive))
        h = h * layer.out_scale if layer.out_scale is not None else h
        if layer.pool is not None:
            h = F.avg_pool2d(h, layer.pool)
        k += 1
    return h


def finetune(simulator: ChainSimulator, images: torch.Tensor, labels: torch.Tensor,
             prepare: Callable[[torch.Tensor], torch.Tensor], timesteps: list[int], seen: int, batch_size: int,
             lr: float, shift: int, flips: bool, generator: torch.Generator) -> FinetuneReport:
    """Train the SNN's weight layers in place on `seen` training images (uint8, cycling through
    `images` in shuffled order), T drawn uniformly from `timesteps` per batch; Adam with a linearly
    decaying learning rate from `lr`; training images augmented as train_ann does (`shift`, `flips`)."""
    params = [p for m in weight_layers(simulator) for p in m.parameters()]
    steps = -(-seen // batch_size)
    if steps == 0 or not params:
        return FinetuneReport(0, float("nan"), float("nan"))
    optimizer = torch.optim.Adam(params, lr=lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1 - s / steps)
    losses = []

    def batches():
        while True:
            yield from batch_indices(len(images), batch_size, generator)

    for _, idx in progress(zip(range(steps), batches()), "convert fine-tuning", total=steps):
        x = prepare(augment(images[idx], shift, flips, generator))
        T = timesteps[int(torch.randint(len(timesteps), (1,), generator=generator))]
        with torch.enable_grad():
            logits = rate_forward(simulator, x, simulate_rates(simulator, x, T))
            loss = F.cross_entropy(logits, labels[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
    tenth = max(1, steps // 10)
    return FinetuneReport(steps, sum(losses[:tenth]) / tenth, sum(losses[-tenth:]) / tenth)
