"""Converted VGG-16: SpikingJelly's evaluation loop against the project's ChainSimulator.

    python bench/snn_simulation.py [--snn models/snn.pt --ann models/ann.pt] [--T 32] [--batch 100] [--batches 2] [--rounds 3]

Same network, same batches, measured side by side in one process:
  - SpikingJelly's reference loop, as in its ann2snn example (`val` in
    spikingjelly/activation_based/ann2snn/examples/resnet18_cifar10.py): under no_grad, reset,
    then `out += net(x)` once per timestep (plus an argmax per step to compare predictions);
  - ChainSimulator, eager: the same modules without the work the loop repeats;
  - ChainSimulator compiled (eval_sweep.compile: true): one fused kernel per IF layer;
  - the same in channels_last (rounding-level differences);
  - compiled with spike counting on, as eval_sweep runs it: the counting overhead;
  - the time the compiled simulator spends inside its convolutions and linear layers, which
    bounds the ratio any simulator running the same dense float32 layers can reach.
Prints throughput in images x timesteps per second, the ratios, and whether the predictions at
every t agree with the reference. Without checkpoints it converts a VGG-16 with random weights
(max-calibrated on the batch itself).
"""

from __future__ import annotations

import argparse
import time

import torch
from spikingjelly.activation_based import functional

from deepsnn.conversion.ann.networks import VGG, load_trained_ann
from deepsnn.conversion.calibration import calibrate_thresholds
from deepsnn.conversion.snn import convert, load_snn
from deepsnn.evaluation.energy import SpikeCounter
from deepsnn.evaluation.timing import hardware
from deepsnn.conversion.chain_simulator import ChainSimulator


def predictions_from_steps(steps: torch.Tensor) -> torch.Tensor:
    """[T, B, classes] step outputs -> [T, B] predictions after each t."""
    return steps.cumsum(0).argmax(-1)


def random_snn(batch: torch.Tensor) -> torch.nn.Module:
    torch.manual_seed(0)
    ann = VGG()
    ann.train()
    with torch.no_grad():
        ann(torch.randn(64, 3, 32, 32))  # non-trivial BatchNorm statistics
    ann.eval()
    return convert(ann, calibrate_thresholds(ann, [batch], "max"))


def trained_snn(snn_path: str, ann_path: str) -> torch.nn.Module:
    return load_snn(snn_path, load_trained_ann(ann_path)[0])


def spikingjelly_loop(net: torch.nn.Module, x: torch.Tensor, T: int) -> torch.Tensor:
    """SpikingJelly's example loop; returns the prediction after every step, [T, B]."""
    predictions = []
    with torch.no_grad():
        functional.reset_net(net)
        out = net(x)
        predictions.append(out.argmax(1))
        for _ in range(1, T):
            out += net(x)
            predictions.append(out.argmax(1))
    return torch.stack(predictions)


def timed(fn, batches: list[torch.Tensor], T: int) -> tuple[list[torch.Tensor], float]:
    outputs, start = [], time.perf_counter()
    for x in batches:
        outputs.append(fn(x, T))
    if batches[0].is_cuda:
        torch.cuda.synchronize()
    return outputs, time.perf_counter() - start


def weight_layer_seconds(simulator: ChainSimulator, x: torch.Tensor, T: int) -> tuple[float, float]:
    """(seconds inside the weight layers after the first spiking layer, total seconds) of one run."""
    inside, entered = [0.0], [0.0]
    layers = [m for m in simulator.suffix if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    handles = [h for m in layers for h in (
        m.register_forward_pre_hook(lambda *_: entered.__setitem__(0, time.perf_counter())),
        m.register_forward_hook(lambda *_: inside.__setitem__(0, inside[0] + time.perf_counter() - entered[0])))]
    try:
        start = time.perf_counter()
        simulator.step_outputs(x, T)
        return inside[0], time.perf_counter() - start
    finally:
        for h in handles:
            h.remove()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--snn")
    parser.add_argument("--ann")
    parser.add_argument("--T", type=int, default=32)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--batches", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    generator = torch.Generator().manual_seed(1)
    batches = [torch.randn(args.batch, 3, 32, 32, generator=generator).to(device) for _ in range(args.batches)]
    snn = (trained_snn(args.snn, args.ann) if args.snn else random_snn(batches[0].cpu())).to(device).eval()
    print(f"{hardware(device)}, torch {torch.__version__}, "
          f"{'trained' if args.snn else 'random-weight'} VGG-16 SNN, T={args.T}, {args.batches} batches of {args.batch}")

    eager, compiled = ChainSimulator(snn), ChainSimulator(snn, compile=True)
    relaid = ChainSimulator(snn, channels_last=True, compile=True)
    counter = SpikeCounter(compiled.spiking_layers, args.T)
    candidates = {
        "ChainSimulator eager": lambda x, T: predictions_from_steps(eager.step_outputs(x, T)),
        "ChainSimulator compiled": lambda x, T: predictions_from_steps(compiled.step_outputs(x, T)),
        "compiled, channels_last": lambda x, T: predictions_from_steps(relaid.step_outputs(x, T)),
        "compiled + spike counts": lambda x, T: predictions_from_steps(compiled.step_outputs(x, T, counter=counter)),
    }
    start = time.perf_counter()  # warm-up: compiling and first-call costs are not the loops' throughput
    spikingjelly_loop(snn, batches[0], 2)
    for fn in candidates.values():
        fn(batches[0], 2)
    print(f"warm-up (compiling included) {time.perf_counter() - start:.0f} s")

    # Rounds interleave all loops, so a slow spell of the machine hits each of them; each loop's
    # best round is its throughput (as timeit does).
    loops = {"SpikingJelly example loop": lambda x, T: spikingjelly_loop(snn, x, T), **candidates}
    seconds = {name: float("inf") for name in loops}
    same = {name: True for name in candidates}
    for _ in range(args.rounds):
        reference, t = timed(loops["SpikingJelly example loop"], batches, args.T)
        seconds["SpikingJelly example loop"] = min(seconds["SpikingJelly example loop"], t)
        for name, fn in candidates.items():
            predictions, t = timed(fn, batches, args.T)
            seconds[name] = min(seconds[name], t)
            same[name] &= all(torch.equal(a, b) for a, b in zip(predictions, reference))
    work = args.batch * args.batches * args.T
    t_ref = seconds["SpikingJelly example loop"]
    print(f"best of {args.rounds} rounds")
    print(f"{'SpikingJelly example loop':30s} {work / t_ref:8.1f} images x timesteps / s")
    for name in candidates:
        print(f"{name:30s} {work / seconds[name]:8.1f} images x timesteps / s  ratio {t_ref / seconds[name]:.2f}x  "
              f"predictions identical at every t: {same[name]}")
    overhead = seconds["compiled + spike counts"] / seconds["ChainSimulator compiled"] - 1
    print(f"spike counting adds {100 * overhead:.1f}% to the simulation time")
    if device.type == "cpu":  # on CUDA the hooks would time kernel launches, not kernels
        inside = [weight_layer_seconds(compiled, x, args.T) for x in batches]
        fraction = sum(i for i, _ in inside) / sum(t for _, t in inside)
        bound = t_ref / (seconds["ChainSimulator compiled"] * fraction)
        print(f"weight layers (dense float32 convs + linear) take {100 * fraction:.0f}% of the compiled simulator's "
              f"time: with everything else removed it would reach {bound:.2f}x the reference at most")


if __name__ == "__main__":
    main()
