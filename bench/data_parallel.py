"""train_spatial on one process against torchrun on several: the same experiment, side by side.

    python bench/data_parallel.py [--data data/mnist.pt] [--processes 2] [--epochs 1]

Runs stages/train_spatial.py twice with the committed params (epochs overridden; same seed, same
global batch): once as one process, once under `torchrun --standalone --nproc-per-node N`
(gloo on CPU, NCCL on GPUs). Prints the full-test-set accuracy at T_train, the training time of
each, their difference and the time ratio. On a 2-core CPU the two processes share the cores
that one process uses, so expect no speed-up there: the point is that N processes train the
same network.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def run(launcher: list[str], params: Path, data: Path, out: Path) -> dict:
    out.mkdir()
    subprocess.run([*launcher, str(REPO / "stages" / "train_spatial.py"), "--params", str(params),
                    "--data", str(data), "--model", str(out / "spatial.pt"), "--curve", str(out / "curve.csv"),
                    "--metrics", str(out / "metrics.json")], cwd=REPO, check=True)
    return json.loads((out / "metrics.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO / "data" / "mnist.pt")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        params = yaml.safe_load((REPO / "params.yaml").read_text())
        params["train_spatial"]["epochs"] = args.epochs
        (tmp / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        one = run([sys.executable], tmp / "params.yaml", args.data, tmp / "one")
        many = run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                    f"--nproc-per-node={args.processes}"], tmp / "params.yaml", args.data, tmp / "many")
    cfg = params["train_spatial"]
    print(f"\ntrain_spatial, {args.epochs} epoch(s), global batch {cfg['batch_size']}, seed {params['seed']}, "
          f"{args.data.name}, device {one['device']}")
    for name, m in (("1 process", one), (f"torchrun, {args.processes} processes", many)):
        print(f"  {name:26s} test accuracy {m['test_accuracy_at_T_train']:.2f}% at T={m['T_train']}, "
              f"train accuracy {m['train_accuracy']:.2f}%, {m['train_time_s']:.1f} s")
    print(f"  difference (torchrun - 1 process): "
          f"{many['test_accuracy_at_T_train'] - one['test_accuracy_at_T_train']:+.2f} points; "
          f"time ratio {many['train_time_s'] / one['train_time_s']:.2f}")


if __name__ == "__main__":
    main()
