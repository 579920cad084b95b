"""DVC stage `train_spatial`: train the 3-layer convolutional SNN directly (spatial or BPTT).

One process by default; `torchrun --standalone --nproc-per-node N stages/train_spatial.py ...`
trains data-parallel on N processes (GPUs, or CPU processes with gloo), the same experiment
(see deepsnn.core.distributed); rank 0 writes the outputs."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd

from deepsnn.core import cli
from deepsnn.core.checkpoint import save_checkpoint
from deepsnn.core.data import load_prepared
from deepsnn.core.io import atomic_path, write_json
from deepsnn.core.params import load_params, select
from deepsnn.direct.params import DIRECT
from deepsnn.direct.spatial import build_spatial_model
from deepsnn.core.training import peak_memory_mib, seed_everything
from deepsnn.direct.training import accuracy, train_spatial
from deepsnn.core import distributed

PARAMS = ["seed", "train_spatial"]  # must match dvc.yaml


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_params_argument(parser)
    parser.add_argument("--data", type=Path, required=True, help="prepared data set (.pt)")
    parser.add_argument("--model", type=Path, required=True, help="checkpoint to write")
    parser.add_argument("--curve", type=Path, required=True, help="per-epoch CSV to write")
    parser.add_argument("--metrics", type=Path, required=True, help="metrics JSON to write")
    args = parser.parse_args(argv)

    params = load_params(args.params, DIRECT)
    cfg = params["train_spatial"]
    data = load_prepared(args.data)
    processes = distributed.start(cfg["batch_size"], "train_spatial.batch_size")
    try:
        generator = seed_everything(params["seed"])  # before the model: it draws the initial weights
        model = build_spatial_model(cfg, data)
        start = time.perf_counter()
        history = train_spatial(model, data, cfg, generator, processes)
        train_time = time.perf_counter() - start
        train_peak_mib = peak_memory_mib(processes.device)  # before the full test set is evaluated
    finally:
        distributed.stop(processes)
    if not processes.is_writer:
        return
    device = processes.device
    test_accuracy = accuracy(model, data.test_images, data.test_labels, cfg["T_train"], device)
    print(f"test accuracy {test_accuracy:.2f}% at T_train={cfg['T_train']} (full test set)")

    save_checkpoint(model, select(params, PARAMS), args.model)
    with atomic_path(args.curve) as tmp:
        pd.DataFrame(history).round(4).to_csv(tmp, index=False)
    last = history[-1]
    write_json({"train_accuracy": round(last["train_accuracy"], 4),
                "test_accuracy_at_T_train": round(test_accuracy, 4),
                "T_train": cfg["T_train"], "train_time_s": round(train_time, 1),
                "peak_memory_mib": round(train_peak_mib),
                "device": device.type, "processes": processes.world_size}, args.metrics)


if __name__ == "__main__":
    cli.run(main)
