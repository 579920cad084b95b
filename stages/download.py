"""DVC stage `download`: fetch, verify and store the data sets the experiments need.

Each set comes from a local mirror when $DEEPSNN_DATA_MIRROR names a folder holding it
(torchvision's layout), else from the official mirrors through torchvision. Its content is
verified either way, then written as one tensor file `<out-dir>/<name>.pt`.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from deepsnn.core import cli
from deepsnn.core.data import save_prepared
from deepsnn.download import fetch


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", type=Path, required=True, help="JSON from the experiments stage")
    parser.add_argument("--out-dir", type=Path, required=True)
    parser.add_argument("--cache", type=Path, required=True, help="where downloads land (kept between runs)")
    args = parser.parse_args(argv)

    fetched = {}
    for name in json.loads(args.experiments.read_text())["datasets"]:  # all verified before any is written
        start = time.perf_counter()
        fetched[name] = dataset, source = fetch(name, args.cache)
        print(f"{name}: {len(dataset.train_labels):,} train / {len(dataset.test_labels):,} test images "
              f"from {source}, content verified ({time.perf_counter() - start:.1f} s)")
    for name, (dataset, _) in fetched.items():
        save_prepared(dataset, args.out_dir / f"{name}.pt")


if __name__ == "__main__":
    cli.run(main)
