"""Converted VGG-16: SpikingJelly's evaluation loop against the project's ChainSimulator.

    python bench/snn_simulation.py [--snn models/snn.pt --ann models/ann.pt] [--T 32] [--batch 100] [--batches 2]

Same network, same batches: the reference loop (reset, then `out += net(x)` per timestep) and
ChainSimulator in exact (NCHW) and channels_last layouts. Prints throughput in images x
timesteps per second, the ratios, and whether the predictions at every t agree. Without
checkpoints it converts a VGG-16 with random weights (max-calibrated on the batch itself).
"""

from __future__ import annotations

import argparse
import time

import torch

from deepsnn.conversion import calibrate_thresholds, convert, reference_step_outputs
from deepsnn.evaluation import hardware, predictions_from_steps
from deepsnn.simulation import ChainSimulator
from deepsnn.vgg import VGG


def random_snn(batch: torch.Tensor) -> torch.nn.Module:
    torch.manual_seed(0)
    ann = VGG()
    ann.train()
    with torch.no_grad():
        ann(torch.randn(64, 3, 32, 32))  # non-trivial BatchNorm statistics
    ann.eval()
    return convert(ann, calibrate_thresholds(ann, [batch], "max"))


def trained_snn(snn_path: str, ann_path: str) -> torch.nn.Module:
    from deepsnn.ann_training import load_trained_vgg
    from stages.eval_sweep import load_snn

    return load_snn(snn_path, load_trained_vgg(ann_path)[0])


def timed(fn, batches, T):
    outputs, start = [], time.perf_counter()
    for x in batches:
        outputs.append(fn(x, T))
    return outputs, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--snn")
    parser.add_argument("--ann")
    parser.add_argument("--T", type=int, default=32)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--batches", type=int, default=2)
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    generator = torch.Generator().manual_seed(1)
    batches = [torch.randn(args.batch, 3, 32, 32, generator=generator).to(device) for _ in range(args.batches)]
    snn = (trained_snn(args.snn, args.ann) if args.snn else random_snn(batches[0].cpu())).to(device)
    print(f"{hardware(device)}, torch {torch.__version__}, T={args.T}, {args.batches} batches of {args.batch}")

    with torch.inference_mode():
        reference, t_ref = timed(lambda x, T: reference_step_outputs(snn, x, T), batches, args.T)
        work = args.batch * args.batches * args.T
        print(f"spikingjelly loop      {work / t_ref:8.1f} images x timesteps / s")
        for name, channels_last in (("exact (NCHW)", False), ("channels_last", True)):
            simulator = ChainSimulator(snn, channels_last=channels_last)
            outputs, seconds = timed(simulator.step_outputs, batches, args.T)
            same = all(torch.equal(predictions_from_steps(a), predictions_from_steps(b))
                       for a, b in zip(outputs, reference))
            diff = max((a - b).abs().max().item() for a, b in zip(outputs, reference))
            print(f"ChainSimulator {name:13s} {work / seconds:8.1f} images x timesteps / s  "
                  f"ratio {t_ref / seconds:.2f}x  predictions identical at every t: {same}  max |output diff| {diff:.2g}")


if __name__ == "__main__":
    main()
