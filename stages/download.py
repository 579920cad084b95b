"""DVC stage `download`: fetch, verify and store the data sets the pipelines' params select.

Each selected set comes from a local mirror when $DEEPSNN_DATA_MIRROR names a folder holding it
(torchvision's layout), else from the official mirrors through torchvision. Its content is
verified either way, then written as one tensor file `<out-dir>/<name>.pt`.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from deepsnn import cli
from deepsnn.data import fetch, save_prepared
from deepsnn.params import load_params

PARAMS = ["train_spatial.dataset", "train_ann.dataset"]  # must match dvc.yaml


def selected_datasets(params: dict) -> list[str]:
    return sorted({params["train_spatial"]["dataset"], params["train_ann"]["dataset"]})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--out-dir", type=Path, default=Path("data"))
    parser.add_argument("--cache", type=Path, default=Path("data/downloads"), help="where downloads land")
    args = parser.parse_args(argv)

    params = load_params(args.params)
    for name in selected_datasets(params):
        start = time.perf_counter()
        dataset, source = fetch(name, args.cache)
        save_prepared(dataset, args.out_dir / f"{name}.pt")
        print(f"{name}: {len(dataset.train_labels):,} train / {len(dataset.test_labels):,} test images "
              f"from {source}, content verified ({time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    cli.run(main)
