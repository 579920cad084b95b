"""Checkpoints: a state_dict plus the params that made it (nanoGPT-style provenance), and the one
way to read them back, with an error that names the file and the stage that writes it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from deepsnn.core.errors import UserError
from deepsnn.core.io import atomic_save


class CheckpointError(UserError, RuntimeError):
    """A checkpoint a stage needs is missing, truncated, corrupted or not of the expected kind."""


def save_checkpoint(model: nn.Module, params: dict[str, Any], path: str | Path, written_by: str,
                    **extra: Any) -> None:
    """`model`'s weights (on CPU), the params that made it and the stage that wrote it."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    atomic_save({"state_dict": state, "params": params, "written_by": written_by, **extra}, path)


def _redo(path: Path, written_by: str) -> str:
    return (f"It is written by the DVC stage `{written_by}`: run `dvc repro {written_by}@<data set>` (`dvc status` "
            f"names the stages), or `dvc checkout {path}` / `dvc pull {path}` to restore the committed run's copy.")


def load_checkpoint(path: str | Path, written_by: str, keys: tuple[str, ...] = ("state_dict", "params")) -> dict[str, Any]:
    """The checkpoint at `path` (on CPU), which the stage `written_by` writes and which must hold `keys`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found. {_redo(path, written_by)}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a truncated zip, random bytes, a pickle of other objects
        # (torch's own message would suggest weights_only=False: loading code from a damaged file)
        raise CheckpointError(f"{path}: not a readable checkpoint (torch.load raised {type(err).__name__}); "
                              f"it is truncated or corrupted. {_redo(path, written_by)}") from None
    if isinstance(checkpoint, dict) and "written_by" in checkpoint and checkpoint["written_by"] != written_by:
        raise CheckpointError(f"{path}: a checkpoint of `{checkpoint['written_by']}`, and this stage reads one of "
                              f"`{written_by}` (the other pipeline's model?). {_redo(path, written_by)}")
    keys = (*keys, "written_by")
    missing = [k for k in keys if not isinstance(checkpoint, dict) or k not in checkpoint]
    if missing:
        raise CheckpointError(f"{path}: not a checkpoint of `{written_by}` (no {', '.join(missing)}). "
                              f"{_redo(path, written_by)}")
    return checkpoint


def load_weights(model: nn.Module, checkpoint: dict[str, Any], path: str | Path, written_by: str) -> nn.Module:
    """`model` with the checkpoint's weights, or an error naming the file if they do not fit it."""
    try:
        model.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as err:
        raise CheckpointError(f"{path}: its weights do not fit the network its params describe "
                              f"({str(err).splitlines()[0]}). {_redo(Path(path), written_by)}") from None
    return model
