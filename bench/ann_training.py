"""Training-step throughput of the committed VGG-16 (train_ann params) under each speed-up.

    python bench/ann_training.py [--batch-size 256] [--steps 3] [--rounds 3]

Variants: fp32 eager, fp32 torch.compile'd, bf16 autocast compiled (what train_ann runs with
`precision: bf16, compile: true`). All run the same step as train_ann (channels_last, SGD
Nesterov, label smoothing, QCFS quantised) on the same random batch, in one process, in paired
rounds (each round times every variant once), so machine-load changes hit all of them alike.
Prints images/s per variant (median over rounds) and the ratios to fp32 eager.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import yaml

from deepsnn.conversion.ann.training import autocast, optimizer_and_loss
from deepsnn.core.training import pick_device
from deepsnn.conversion.ann.networks import build_ann

VARIANTS = {"fp32 eager": ("fp32", False), "fp32 compiled": ("fp32", True), "bf16 compiled": ("bf16", True)}


def make_step(cfg: dict, precision: str, compile_: bool, x: torch.Tensor, y: torch.Tensor, device: torch.device):
    torch.manual_seed(0)
    model = build_ann(cfg, "cifar10").to(device).to(memory_format=torch.channels_last).train()
    forward = torch.compile(model) if compile_ else model
    optimizer, criterion = optimizer_and_loss(model, cfg)

    def step() -> None:
        with autocast(device, precision):
            loss = criterion(forward(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per variant per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    cfg = yaml.safe_load(open("params.yaml"))["train_ann"]
    device = pick_device()
    print(f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"batch {args.batch_size}, VGG-16 width {cfg['width']}, activation {cfg['activation']}")
    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch_size, 3, 32, 32, generator=g).to(device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (args.batch_size,), generator=g).to(device)
    steps = {}
    for name, (precision, compile_) in VARIANTS.items():
        steps[name] = make_step(cfg, precision, compile_, x, y, device)
        start = time.perf_counter()
        steps[name]()  # compiles (if compiled) and warms up
        print(f"{name}: first step {time.perf_counter() - start:.1f} s", flush=True)
    rates: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for _ in range(args.rounds):
        for name, step in steps.items():
            start = time.perf_counter()
            for _ in range(args.steps):
                step()
            rates[name].append(args.steps * args.batch_size / (time.perf_counter() - start))
    base = statistics.median(rates["fp32 eager"])
    for name, r in rates.items():
        rate = statistics.median(r)
        print(f"{name:14s} {rate:7.1f} images/s  {rate / base:.2f}x fp32 eager  "
              f"(rounds: {', '.join(f'{v:.1f}' for v in r)})")


if __name__ == "__main__":
    main()
