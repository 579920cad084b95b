"""DVC stage `download`: fetch, verify and store the data sets the pipelines' params select.

Each selected set comes from a local mirror when $DEEPSNN_DATA_MIRROR names a folder holding it
(torchvision's layout), else from the official mirrors through torchvision. Its content is
verified either way, then written as one tensor file `<out-dir>/<name>.pt`.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from deepsnn.core import cli
from deepsnn.core.data import DATASETS, fetch, save_prepared
from deepsnn.core.params import Choice, read_params, select, validate_params

PARAMS = ["train_spatial.dataset", "train_ann.dataset"]  # must match dvc.yaml


def selected_datasets(raw: dict) -> list[str]:
    """The data sets the two pipelines' params name, each checked against what this stage provides
    (whether a pipeline can train on it is for its training stage to say, a few seconds later)."""
    validate_params(raw)  # the top-level keys; each pipeline's stages validate its sections
    provided = Choice(tuple(DATASETS))
    return sorted({provided.check(key, value) for key, value in select(raw, PARAMS).items()})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_params_argument(parser)
    parser.add_argument("--out-dir", type=Path, default=Path("data"))
    parser.add_argument("--cache", type=Path, default=Path("data/downloads"), help="where downloads land")
    args = parser.parse_args(argv)

    fetched = {}
    for name in selected_datasets(read_params(args.params)):  # all fetched and verified before any is written
        start = time.perf_counter()
        fetched[name] = dataset, source = fetch(name, args.cache)
        print(f"{name}: {len(dataset.train_labels):,} train / {len(dataset.test_labels):,} test images "
              f"from {source}, content verified ({time.perf_counter() - start:.1f} s)")
    for name, (dataset, _) in fetched.items():
        save_prepared(dataset, args.out_dir / f"{name}.pt")


if __name__ == "__main__":
    cli.run(main)
