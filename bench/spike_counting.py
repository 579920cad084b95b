"""Spike counting overhead of the direct-trained SNN's evaluation (eval_spatial).

    python bench/spike_counting.py [--model models/spatial.pt --data data/mnist.pt] [--T 64] [--batch 1000] [--rounds 3]

The same batch simulated with and without a SpikeCounter, interleaved, best of the rounds.
The converted VGG-16's counting overhead is printed by bench/snn_simulation.py.
"""

from __future__ import annotations

import argparse
import time

import torch

from deepsnn.checkpoint import load_checkpoint
from deepsnn.data import load_prepared
from deepsnn.energy import SpikeCounter
from deepsnn.evaluation import hardware
from deepsnn.spatial import build_spatial_model
from deepsnn.training import pick_device, to_float


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/spatial.pt")
    parser.add_argument("--data", default="data/mnist.pt")
    parser.add_argument("--T", type=int, default=64)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    device = pick_device()
    data = load_prepared(args.data)
    checkpoint = load_checkpoint(args.model)
    model = build_spatial_model(checkpoint["params"]["train_spatial"], data)
    model.load_state_dict(checkpoint["state_dict"])
    model.to(device).eval()
    x = to_float(data.test_images[:args.batch].to(device))
    print(f"{hardware(device)}, torch {torch.__version__}, eval_spatial's simulator, T={args.T}, batch {args.batch}")

    def seconds(counting: bool) -> float:
        counter = SpikeCounter(model.spiking_layers, args.T) if counting else None
        start = time.perf_counter()
        model.step_outputs(x, args.T, counter=counter)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    seconds(True)  # warm-up
    plain = counted = float("inf")
    for _ in range(args.rounds):
        plain, counted = min(plain, seconds(False)), min(counted, seconds(True))
    print(f"without counting {plain:.2f} s, with counting {counted:.2f} s (best of {args.rounds}): "
          f"spike counting adds {100 * (counted / plain - 1):.1f}% to the simulation time")


if __name__ == "__main__":
    main()
