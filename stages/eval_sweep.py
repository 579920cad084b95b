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
from deepsnn.energy import count_macs
from deepsnn.evaluation import add_output_args, simulate_test_set, write_evaluation
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
    simulator = ChainSimulator(snn, compile=cfg["compile"])  # SpikingJelly's loop minus repeated work
    prepare = normalizer(CIFAR10_MEAN, CIFAR10_STD)

    def extra() -> dict:
        example = prepare(data.test_images[:1].to(device))
        return {"ann_accuracy": ann_accuracy(ann, data.test_images, data.test_labels, device),
                "analog_macs": count_macs(simulator.prefix, example), "ann_macs": count_macs(ann, example)}

    sim, reused, latency = simulate_test_set(simulator.step_outputs, simulator.spiking_layers, data, prepare, cfg,
                                             T_eval, device, [args.model, args.snn, args.data], args.simulation,
                                             "eval_sweep", extra)
    ann_acc = sim.extra["ann_accuracy"]
    write_evaluation(sim, data.test_labels, T_eval, latency, args, "VGG-16 converted to an SNN (CIFAR-10)",
                     "snn_accuracy", start, device, reused, extra={"ann_accuracy": round(ann_acc, 4)},
                     reference=("ANN", ann_acc))


if __name__ == "__main__":
    cli.run(main)
