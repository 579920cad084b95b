"""DVC stage `train_ann`: train the ANN that gets converted (VGG-16 on CIFAR-10 by default).

One process by default; `torchrun --standalone --nproc-per-node N stages/train_ann.py ...` trains
data-parallel on N processes, the same experiment (see deepsnn.core.distributed); rank 0 writes."""

from __future__ import annotations

from deepsnn.conversion.ann.networks import build_ann
from deepsnn.conversion.ann.params import TRAIN_ANN
from deepsnn.conversion.ann.training import ann_accuracy, normalizer, resolved_precision, train_ann
from deepsnn.core import cli, train_stage


def test(model, data, cfg, device) -> dict:
    accuracy = ann_accuracy(model, data.test_images, data.test_labels, normalizer(data.name), device)
    return {"ann_test_accuracy": round(accuracy, 4), "precision": resolved_precision(device, cfg["precision"])}


TRAINER = train_stage.Trainer("train_ann", TRAIN_ANN, lambda cfg, data: build_ann(cfg, data.name), train_ann, test)


def main(argv: list[str] | None = None) -> None:
    train_stage.main(TRAINER, __doc__.splitlines()[0], argv)


if __name__ == "__main__":
    cli.run(main)
