"""DVC stage `eval_sweep`: ANN accuracy, and SNN accuracy, latency and spike statistics at every T up to the horizon."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from deepsnn import cli
from deepsnn.ann_training import CIFAR10_MEAN, CIFAR10_STD, ann_accuracy, load_trained_vgg, normalizer
from deepsnn.checkpoint import load_checkpoint
from deepsnn.conversion import LayerThreshold, SpikingOptions, convert
from deepsnn.data import load_prepared
from deepsnn.energy import SpikeCounter, count_macs
from deepsnn.evaluation import (add_output_args, fingerprint, measure_latency, simulate_dataset, simulate_or_reuse,
                                write_evaluation)
from deepsnn.params import load_params
from deepsnn.simulation import ChainSimulator
from deepsnn.training import pick_device

PARAMS = ["T_eval", "eval_sweep"]  # must match dvc.yaml


def load_snn(snn_path: Path, ann: torch.nn.Module) -> torch.nn.Module:
    """Rebuild the converted SNN from its checkpoint (structure by conversion, weights loaded)."""
    saved = load_checkpoint(snn_path)
    thresholds = [LayerThreshold(**t) for t in saved["thresholds"]]
    snn = convert(ann, thresholds, SpikingOptions(**saved["options"]))
    snn.load_state_dict(saved["state_dict"])
    return snn


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--data", type=Path, required=True, help="prepared data set (.pt)")
    parser.add_argument("--model", type=Path, required=True, help="ANN checkpoint from train_ann")
    parser.add_argument("--snn", type=Path, required=True, help="SNN checkpoint from convert")
    add_output_args(parser)
    args = parser.parse_args(argv)

    params = load_params(args.params)
    cfg, T_eval = params["eval_sweep"], params["T_eval"]
    start = time.perf_counter()
    device = pick_device()
    data = load_prepared(args.data)
    ann, _ = load_trained_vgg(args.model)
    ann.to(device)
    snn = load_snn(args.snn, ann).to(device)
    simulator = ChainSimulator(snn)  # SpikingJelly's loop minus repeated work, bit-identical outputs
    prepare = normalizer(CIFAR10_MEAN, CIFAR10_STD)
    T_max = max(cfg["horizon"], T_eval)

    def simulate():
        ann_acc = ann_accuracy(ann, data.test_images, data.test_labels, device)
        counter = SpikeCounter(simulator.spiking_layers, T_max)
        sim = simulate_dataset(simulator.step_outputs, data.test_images, T_max, cfg["batch_size"], device,
                               prepare=prepare, desc=f"eval_sweep T<={T_max}", counter=counter)
        example = prepare(data.test_images[:1].to(device))
        sim.extra = {"ann_accuracy": ann_acc, "analog_macs": count_macs(simulator.prefix, example),
                     "ann_macs": count_macs(ann, example)}
        return sim

    key = fingerprint([args.model, args.snn, args.data], {"batch_size": cfg["batch_size"], "device": device.type})
    sim, reused = simulate_or_reuse(args.simulation, key, T_max, simulate)
    latency = measure_latency(simulator.step_outputs, data.test_images[:cfg["batch_size"]], T_eval, device, prepare)
    ann_acc = sim.extra["ann_accuracy"]
    write_evaluation(sim, data.test_labels, T_eval, latency, args, "VGG-16 converted to an SNN (CIFAR-10)",
                     "snn_accuracy", start, device, reused, extra={"ann_accuracy": round(ann_acc, 4)},
                     reference=("ANN", ann_acc))


if __name__ == "__main__":
    cli.run(main)
