"""Spike counting overhead of the direct-trained SNN's evaluation (eval_spatial).

    python bench/spike_counting.py [--model models/spatial.pt --data data/mnist.pt] [--T 16] [--batch 1000] [--rounds 10]

The same batch simulated with and without a SpikeCounter, in paired rounds.
The converted VGG-16's counting overhead is printed by bench/snn_simulation.py.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from deepsnn.core.data import load_prepared
from deepsnn.evaluation.energy import SpikeCounter
from deepsnn.evaluation.timing import hardware
from deepsnn.direct.spatial import load_spatial_model
from deepsnn.core.training import pick_device, to_float


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/spatial.pt")
    parser.add_argument("--data", default="data/mnist.pt")
    parser.add_argument("--T", type=int, default=16)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    device = pick_device()
    data = load_prepared(args.data)
    model, _ = load_spatial_model(args.model, data)
    model.to(device)
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
    # Paired rounds, in alternating order, so that drift in the machine's speed (shared cores)
    # hits both sides; the median of the per-round ratios is the overhead.
    ratios, plain, counted = [], [], []
    for i in range(args.rounds):
        if i % 2 == 0:
            without = seconds(False)
            with_counts = seconds(True)
        else:
            with_counts = seconds(True)
            without = seconds(False)
        plain.append(without)
        counted.append(with_counts)
        ratios.append(with_counts / without)
    print(f"without counting {statistics.median(plain):.2f} s, with counting {statistics.median(counted):.2f} s "
          f"(medians of {args.rounds} paired rounds)")
    print(f"spike counting adds {100 * (statistics.median(ratios) - 1):.1f}% to the simulation time "
          f"(per-round range {100 * (min(ratios) - 1):.1f}% to {100 * (max(ratios) - 1):.1f}%)")

if __name__ == "__main__":
    main()
