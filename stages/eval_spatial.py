"""DVC stage `eval_spatial`: accuracy and latency of the directly trained SNN at every T."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from deepsnn import cli
from deepsnn.checkpoint import load_checkpoint
from deepsnn.data import load_prepared
from deepsnn.evaluation import curve_table, hardware, plot_accuracy_vs_T, simulate_dataset, write_curve_csv
from deepsnn.io import write_json
from deepsnn.params import load_params
from deepsnn.spatial import build_spatial_model
from deepsnn.training import pick_device, to_float

PARAMS = ["T_eval", "eval_spatial"]  # must match dvc.yaml


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--data", type=Path, required=True, help="prepared data set (.pt)")
    parser.add_argument("--model", type=Path, required=True, help="checkpoint from train_spatial")
    parser.add_argument("--metrics", type=Path, required=True)
    parser.add_argument("--curve", type=Path, required=True, help="CSV: T, accuracy, latency")
    parser.add_argument("--plot", type=Path, required=True, help="PNG of accuracy vs T")
    args = parser.parse_args(argv)

    params = load_params(args.params)
    cfg, T_eval = params["eval_spatial"], params["T_eval"]
    device = pick_device()
    data = load_prepared(args.data)
    checkpoint = load_checkpoint(args.model)
    model = build_spatial_model(checkpoint["params"]["train_spatial"], data)
    model.load_state_dict(checkpoint["state_dict"])
    model.to(device).eval()

    start = time.perf_counter()
    T_max = max(cfg["horizon"], T_eval)
    sim = simulate_dataset(model.step_outputs, data.test_images, T_max, cfg["batch_size"], device,
                           prepare=to_float, desc=f"eval_spatial T<={T_max}")
    table = curve_table(sim, data.test_labels)
    at_T_eval = table.iloc[T_eval - 1]
    write_curve_csv(table, args.curve)
    plot_accuracy_vs_T(table, args.plot, f"Direct-trained SNN ({checkpoint['params']['train_spatial']['dataset']})",
                       T_eval)
    write_json({
        "accuracy": round(float(at_T_eval["accuracy"]), 4),
        "T_eval": T_eval,
        "latency_s_per_sample": float(f"{at_T_eval['latency_s_per_sample']:.4g}"),
        "latency_batch_size": cfg["batch_size"],
        "device": sim.device,
        "hardware": hardware(device),
        "test_samples": sim.num_samples,
        "eval_time_s": round(time.perf_counter() - start, 1),
    }, args.metrics)
    print(f"accuracy {at_T_eval['accuracy']:.2f}% at T_eval={T_eval}; "
          f"{at_T_eval['latency_s_per_sample'] * 1e3:.3f} ms/sample on {sim.device}")


if __name__ == "__main__":
    cli.run(main)
