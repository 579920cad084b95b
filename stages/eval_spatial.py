"""DVC stage `eval_spatial`: accuracy, latency and spike statistics of the directly trained SNN at every T."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from torch import nn

from deepsnn import cli
from deepsnn.checkpoint import load_checkpoint
from deepsnn.data import DATASETS, load_prepared
from deepsnn.energy import count_macs
from deepsnn.evaluation import add_output_args, simulate_test_set, write_evaluation
from deepsnn.params import load_params
from deepsnn.spatial import build_spatial_model
from deepsnn.training import pick_device, to_float

PARAMS = ["T_eval", "eval_spatial"]  # must match dvc.yaml


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--data", type=Path, required=True, help="prepared data set (.pt)")
    parser.add_argument("--model", type=Path, required=True, help="checkpoint from train_spatial")
    add_output_args(parser)
    args = parser.parse_args(argv)

    params = load_params(args.params)
    cfg, T_eval = params["eval_spatial"], params["T_eval"]
    start = time.perf_counter()
    device = pick_device()
    data = load_prepared(args.data)
    checkpoint = load_checkpoint(args.model)
    model = build_spatial_model(checkpoint["params"]["train_spatial"], data)
    model.load_state_dict(checkpoint["state_dict"])
    model.to(device).eval()

    def extra() -> dict:
        example = to_float(data.test_images[:1].to(device))
        # the same layers as an ANN (activations cost no MACs)
        ann = nn.Sequential(model.conv1, model.pool, model.conv2, model.pool, nn.Flatten(), model.fc)
        return {"analog_macs": count_macs(model.conv1, example), "ann_macs": count_macs(ann, example)}

    sim, reused, latency = simulate_test_set(model.step_outputs, model.spiking_layers, data, to_float, cfg, T_eval,
                                             device, [args.model, args.data], args.simulation, "eval_spatial", extra)
    dataset = checkpoint["params"]["train_spatial"]["dataset"]
    write_evaluation(sim, data.test_labels, T_eval, latency, args, f"Direct-trained SNN ({DATASETS[dataset].folder})",
                     "accuracy", start, device, reused)


if __name__ == "__main__":
    cli.run(main)
