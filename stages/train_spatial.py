"""DVC stage `train_spatial`: train a convolutional SNN directly (spatial gradients, or BPTT).

One process by default; `torchrun --standalone --nproc-per-node N stages/train_spatial.py ...`
trains data-parallel on N processes (GPUs, or CPU processes with gloo), the same experiment
(see deepsnn.core.distributed); rank 0 writes the outputs."""

from __future__ import annotations

from deepsnn.core import cli, train_stage
from deepsnn.direct.params import TRAIN_SPATIAL
from deepsnn.direct.spatial import build_spatial_model
from deepsnn.direct.training import accuracy, train_spatial


def test(model, data, cfg, device) -> dict:
    T = cfg["T_train"]
    return {"test_accuracy_at_T_train": round(accuracy(model, data.test_images, data.test_labels, T, device), 4),
            "T_train": T}


TRAINER = train_stage.Trainer("train_spatial", TRAIN_SPATIAL, build_spatial_model, train_spatial, test)


def main(argv: list[str] | None = None) -> None:
    train_stage.main(TRAINER, __doc__.splitlines()[0], argv)


if __name__ == "__main__":
    cli.run(main)
