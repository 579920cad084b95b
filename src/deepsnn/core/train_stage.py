"""The one skeleton of both training stages (`train_ann`, `train_spatial`): params, data, seeding,
data-parallel processes, training, and the checkpoint, curve and metrics the writer rank saves.

One process by default; `torchrun --standalone --nproc-per-node N stages/train_*.py ...` trains
data-parallel on N processes, the same experiment (see deepsnn.core.distributed); rank 0 writes.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import torch
from torch import nn

from deepsnn.core import cli, distributed
from deepsnn.core.checkpoint import save_checkpoint
from deepsnn.core.data import ImageDataset, load_prepared
from deepsnn.core.io import atomic_path, write_json
from deepsnn.core.params import Pipeline, check_dataset, load_params, select
from deepsnn.core.training import peak_memory_mib, seed_everything


@dataclass(frozen=True)
class Trainer:
    """What one training stage trains: its params section, network and loop, and its test measure."""
    stage: str  # the DVC stage and its params section: train_ann | train_spatial
    pipeline: Pipeline
    build: Callable[[dict, ImageDataset], nn.Module]  # (section, data) -> untrained network
    # (network, data, section, generator, processes) -> one row per epoch
    train: Callable[[nn.Module, ImageDataset, dict, torch.Generator, distributed.Processes], list[dict]]
    # (trained network, data, section, device) -> metrics of the full test set
    test: Callable[[nn.Module, ImageDataset, dict, torch.device], dict[str, Any]]


def main(trainer: Trainer, description: str, argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=description)
    cli.add_params_argument(parser)
    parser.add_argument("--data", type=Path, required=True, help="prepared data set (.pt)")
    parser.add_argument("--model", type=Path, required=True, help="checkpoint to write")
    parser.add_argument("--curve", type=Path, required=True, help="per-epoch CSV to write")
    parser.add_argument("--metrics", type=Path, required=True, help="metrics JSON to write")
    args = parser.parse_args(argv)

    params = load_params(args.params, trainer.pipeline)
    cfg = params[trainer.stage]
    data = load_prepared(args.data)
    check_dataset(params, data.name, trainer.pipeline)
    processes = distributed.start(cfg["batch_size"], f"{trainer.stage}.batch_size")
    try:
        generator = seed_everything(params["seed"])  # before the model: it draws the initial weights
        model = trainer.build(cfg, data)
        start = time.perf_counter()
        history = trainer.train(model, data, cfg, generator, processes)
        train_time = time.perf_counter() - start
        train_peak_mib = peak_memory_mib(processes.device)  # before the full test set is evaluated
    finally:
        distributed.stop(processes)
    if not processes.is_writer:
        return
    test = trainer.test(model, data, cfg, processes.device)
    print(", ".join(f"{k} {v}" for k, v in test.items()) + " (full test set)")

    save_checkpoint(model, {"dataset": data.name, **select(params, ["seed", trainer.stage])}, args.model,
                    written_by=trainer.stage)
    with atomic_path(args.curve) as tmp:
        pd.DataFrame(history).round(4).to_csv(tmp, index=False)
    write_json({"dataset": data.name, **test, "train_accuracy": round(history[-1]["train_accuracy"], 4),
                "train_time_s": round(train_time, 1), "peak_memory_mib": round(train_peak_mib),
                "device": processes.device.type, "processes": processes.world_size}, args.metrics)
