"""Checkpoints: a state_dict plus the params that made it (nanoGPT-style provenance)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from deepsnn.io import atomic_save


def save_checkpoint(model: nn.Module, params: dict[str, Any], path: str | Path, **extra: Any) -> None:
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    atomic_save({"state_dict": state, "params": params, **extra}, path)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=True)
