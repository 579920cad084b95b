"""Training memory and time per batch of the spatial method against BPTT, at several T.

    python bench/spatial_memory.py [--batch-size 128] [--steps 3] [--T 4 8 16 32]
    python bench/spatial_memory.py --architecture vgg7 --input cifar10 --channels 32 --T 2 4 8 16

Each (method, T) runs in a fresh process on real-shaped batches (random pixels; MNIST's 1x28x28
or CIFAR-10's 3x32x32): a few training steps of the committed train_spatial network, or of the
architecture and width given. Peak memory is the growth of the
process's peak resident set over the training steps on CPU (torch.cuda.max_memory_allocated
on CUDA). Prints a table and the ratios memory(T_max) / memory(T_min) for both methods; the
spatial method's should stay near 1 (target <= 1.2), BPTT's grows with T.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


INPUTS = {"mnist": (1, 28), "cifar10": (3, 32)}  # (channels, image size)


def worker(method: str, T: int, batch_size: int, steps: int, architecture: str | None, channels: int | None,
           input_name: str) -> dict:
    import torch
    import yaml

    from deepsnn.direct.spatial import SpikingConvNet, architecture_layers, build_spatial_model, spike_count_loss

    cfg = yaml.safe_load(open("params.yaml"))["train_spatial"]
    cfg["architecture"] = architecture or cfg["architecture"]
    cfg["channels"] = channels or cfg["channels"]
    in_channels, size = INPUTS[input_name]
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    template = build_spatial_model(cfg)  # the committed neuron and output population
    model = SpikingConvNet(architecture_layers(cfg["architecture"], cfg["channels"], cfg["conv1_kernel"]),
                           in_channels=in_channels, image_size=size, neuron_config=template.neuron_config,
                           population=template.population).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.rand(batch_size, in_channels, size, size, device=device)
    y = torch.arange(batch_size, device=device) % 10

    def train_step():
        counts = model(x, T, method=method)
        loss = spike_count_loss(counts, y, T * model.max_count_per_step, cfg["loss"])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    # the baseline is taken before the first step: a process's peak RSS never goes down, so the
    # growth over the steps (first one included) is the training step's own peak memory
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    train_step()  # also warms up: allocator pools, optimizer state
    start = time.perf_counter()
    for _ in range(steps):
        train_step()
    if device.type == "cuda":
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - base
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base
    seconds = (time.perf_counter() - start) / steps
    return {"method": method, "T": T, "peak_mib": peak / 2**20, "s_per_batch": seconds, "device": device.type,
            "threads": torch.get_num_threads(), "torch": torch.__version__, "architecture": cfg["architecture"],
            "channels": cfg["channels"], "input": input_name}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--T", type=int, nargs="+", default=[4, 8, 16, 32])
    parser.add_argument("--architecture", choices=["cnn3", "vgg7"], help="default: params.yaml's")
    parser.add_argument("--channels", type=int, help="first conv layer's width; default: params.yaml's")
    parser.add_argument("--input", choices=list(INPUTS), default="mnist", help="image shape fed to the network")
    parser.add_argument("--worker", nargs=2, metavar=("METHOD", "T"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker[0], int(args.worker[1]), args.batch_size, args.steps,
                                args.architecture, args.channels, args.input)))
        return
    rows = []
    network = [f"--input={args.input}"] + [f"--{k}={v}" for k, v in (("architecture", args.architecture),
                                                                      ("channels", args.channels)) if v]
    for method in ("spatial", "bptt"):
        for T in args.T:
            out = subprocess.run([sys.executable, __file__, "--worker", method, str(T), "--batch-size",
                                  str(args.batch_size), "--steps", str(args.steps), *network],
                                 capture_output=True, text=True, check=True)
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            r = rows[-1]
            print(f"{method:8s} T={T:3d}  peak {r['peak_mib']:8.1f} MiB  {r['s_per_batch']:.3f} s/batch", flush=True)
    r = rows[0]
    print(f"{r['architecture']} (channels {r['channels']}) on {r['input']}-shaped input; device {r['device']}, "
          f"torch {r['torch']}, {r['threads']} threads, batch {args.batch_size}")
    lo, hi = min(args.T), max(args.T)
    for method in ("spatial", "bptt"):
        mem = {row["T"]: row["peak_mib"] for row in rows if row["method"] == method}
        print(f"{method}: memory(T={hi}) / memory(T={lo}) = {mem[hi] / mem[lo]:.2f}")
    spatial = {row["T"]: row for row in rows if row["method"] == "spatial"}
    bptt = {row["T"]: row for row in rows if row["method"] == "bptt"}
    for T in args.T:
        print(f"T={T}: BPTT / spatial time per batch = {bptt[T]['s_per_batch'] / spatial[T]['s_per_batch']:.2f}, "
              f"memory = {bptt[T]['peak_mib'] / spatial[T]['peak_mib']:.2f}")


if __name__ == "__main__":
    main()
