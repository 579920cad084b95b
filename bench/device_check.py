"""Both pipelines on whatever device pick_device() finds (a GPU when there is one), stage by stage,
with wall-clock time, training images per second and peak GPU memory per stage.

    PYTHONPATH=. python bench/device_check.py --out /tmp/device_check          # real MNIST via DEEPSNN_DATA_MIRROR
    PYTHONPATH=. python bench/device_check.py --out /tmp/device_check --tiny   # a minute on a CPU: the script itself

(bench/device_check.sh prepares a lent GPU machine and runs this after the test suite.)

The direct pipeline runs as committed (params.yaml) on real MNIST. The conversion pipeline runs on
CIFAR-shaped random images (50,000 + 10,000, full size: CIFAR-10 itself is too large to carry to a
lent GPU machine) for one epoch, so its accuracy means nothing and its times are what counts.
Each stage's main() runs in this process, as `dvc repro` would run its command.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import yaml

from deepsnn.core.data import ImageDataset, save_prepared
from deepsnn.download import fetch
from deepsnn.core.training import pick_device
from deepsnn.evaluation.timing import hardware
from stages import (calibrate, convert, eval_spatial, eval_sweep, simulate_spatial, simulate_sweep, train_ann,
                    train_spatial)

CONVERSION_CHECK = {"train_ann": {"epochs": 1, "qcfs_clip_epochs": 0}, "simulate_sweep": {"horizon": 8},
                    "convert": {"finetune_images": 2000}, "T_eval": 8}
TINY = {"train_ann": {"width": 1 / 16, "compile": False, "batch_size": 16}, "calibrate": {"images": 32},
        "convert": {"correction_images": 32, "holdout_images": 100, "finetune_images": 64},
        "simulate_sweep": {"horizon": 2, "compile": False, "batch_size": 50, "holdout_images": 100},
        "train_spatial": {"epochs": 1, "channels": 4},
        "simulate_spatial": {"horizon": 2, "batch_size": 100, "holdout_images": 100}, "T_eval": 2}


def merged(params: dict, overrides: dict) -> dict:
    out = dict(params)
    for key, value in overrides.items():
        out[key] = {**out[key], **value} if isinstance(value, dict) else value
    return out


def cifar_shaped(train: int, test: int, seed: int = 0) -> ImageDataset:
    g = torch.Generator().manual_seed(seed)
    images = lambda n: torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g)
    labels = lambda n: torch.randint(0, 10, (n,), generator=g)
    return ImageDataset(images(train), labels(train), images(test), labels(test), [str(i) for i in range(10)], "cifar10")


def run_stage(name: str, main, argv: list[str], rows: list[dict], images_per_epoch: int = 0) -> None:
    """Run one stage's main(argv), recording its time, peak GPU memory and training throughput."""
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    main(argv)
    if cuda:
        torch.cuda.synchronize()
    row = {"stage": name, "seconds": round(time.perf_counter() - start, 1),
           "peak_gpu_mib": round(torch.cuda.max_memory_allocated() / 2**20) if cuda else None}
    if images_per_epoch:
        metrics = json.loads(Path(argv[argv.index("--metrics") + 1]).read_text())
        epochs = len(Path(argv[argv.index("--curve") + 1]).read_text().splitlines()) - 1
        row["train_images_per_s"] = round(epochs * images_per_epoch / metrics["train_time_s"], 1)
    rows.append(row)
    print(json.dumps(row), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for data, models and metrics")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--tiny", action="store_true", help="small networks and data: checks the script in seconds")
    args = parser.parse_args()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    params = merged(yaml.safe_load(args.params.read_text()), CONVERSION_CHECK)
    if args.tiny:
        params = merged(params, TINY)
    params_path = out / "params.yaml"
    params_path.write_text(yaml.safe_dump(params, sort_keys=False))
    p = ["--params", str(params_path)]
    device = pick_device()
    print(f"{hardware(device)}, torch {torch.__version__}", flush=True)
    rows: list[dict] = []

    # direct pipeline, real MNIST (from DEEPSNN_DATA_MIRROR, content-verified as the download stage does)
    start = time.perf_counter()
    mnist_data, source = fetch("mnist", out / "downloads")
    if args.tiny:  # a few thousand images
        mnist_data = ImageDataset(mnist_data.train_images[:2000], mnist_data.train_labels[:2000],
                                  mnist_data.test_images[:500], mnist_data.test_labels[:500], mnist_data.classes, "mnist")
    mnist = out / "mnist.pt"
    save_prepared(mnist_data, mnist)
    rows.append({"stage": f"download ({source})", "seconds": round(time.perf_counter() - start, 1), "peak_gpu_mib": None})
    n_mnist = len(mnist_data.train_labels)
    spatial = ["--data", str(mnist), "--model", str(out / "spatial.pt")]
    run_stage("train_spatial", train_spatial.main, p + spatial + ["--curve", str(out / "train_spatial.csv"),
              "--metrics", str(out / "train_spatial.json")], rows, images_per_epoch=n_mnist)
    run_stage("simulate_spatial", simulate_spatial.main, p + spatial + simulation_args(out, "simulate_spatial"), rows)
    run_stage("eval_spatial", eval_spatial.main, p + spatial + evaluation_args(out, "eval_spatial", "simulate_spatial"),
              rows)

    # conversion pipeline, CIFAR-shaped random images at full size
    cifar = out / "cifar_shaped.pt"
    save_prepared(cifar_shaped(2000, 500) if args.tiny else cifar_shaped(50_000, 10_000), cifar)
    n_cifar = 2000 if args.tiny else 50_000
    ann, th, snn = out / "ann.pt", out / "thresholds.csv", out / "snn.pt"
    run_stage("train_ann", train_ann.main, p + ["--data", str(cifar), "--model", str(ann), "--curve",
              str(out / "train_ann.csv"), "--metrics", str(out / "train_ann.json")], rows, images_per_epoch=n_cifar)
    run_stage("calibrate", calibrate.main, p + ["--data", str(cifar), "--model", str(ann), "--thresholds", str(th),
              "--metrics", str(out / "calibrate.json")], rows)
    run_stage("convert", convert.main, p + ["--data", str(cifar), "--model", str(ann), "--thresholds", str(th),
              "--snn", str(snn), "--metrics", str(out / "convert.json")], rows)
    sweep = ["--data", str(cifar), "--model", str(ann), "--snn", str(snn)]
    run_stage("simulate_sweep", simulate_sweep.main, p + sweep + simulation_args(out, "simulate_sweep"), rows)
    run_stage("eval_sweep", eval_sweep.main, p + sweep + evaluation_args(out, "eval_sweep", "simulate_sweep")
              + ["--correction-curve", str(out / "low_T.csv"), "--correction-plot", str(out / "low_T.png")], rows)
    print("\n| stage | seconds | training images/s | peak GPU memory (MiB) |\n|:--|--:|--:|--:|")
    for row in rows:
        print(f"| {row['stage']} | {row['seconds']} | {row.get('train_images_per_s', '')} | {row['peak_gpu_mib'] or ''} |")


def simulation_args(out: Path, name: str) -> list[str]:
    return ["--out", str(out / f"{name}.pt"), "--metrics", str(out / f"{name}.json")]


def evaluation_args(out: Path, name: str, simulation: str) -> list[str]:
    return ["--simulation", str(out / f"{simulation}.pt"), "--metrics", str(out / f"{name}.json"),
            "--curve", str(out / f"{name}.csv"), "--layers", str(out / f"{name}_layers.csv"),
            "--early-exit", str(out / f"{name}_early_exit.csv"),
            "--plot", str(out / f"{name}.png"), "--energy-plot", str(out / f"{name}_energy.png")]


if __name__ == "__main__":
    main()
