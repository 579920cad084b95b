"""What a simulator tells the spike counting about its spiking layers (deepsnn.evaluation.energy
does the counting): each layer's name and the modules its spikes drive, and the recorder it
hands each step's spikes to."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
from torch import nn


@dataclass
class SpikingLayer:
    name: str
    downstream: list[nn.Module]  # modules between this layer's spikes and the next neurons; [] for the output


class SpikeRecorder(Protocol):
    """Takes the 0/1 spikes [B, ...] of spiking layer `layer` at each step, then ends each batch."""

    def record(self, layer: int, spikes: torch.Tensor) -> None: ...

    def end_batch(self) -> None: ...
