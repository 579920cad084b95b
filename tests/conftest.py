"""Tiny data sets written in the real on-disk formats (gzip'd idx, CIFAR python pickles).

Tests never download: they build a mirror folder in torchvision's layout and a content table
(sha256s) for it, and point the project's environment variables at them.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]


def md5(path: Path) -> str:
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode a uint8 array as an idx file (magic 0x0000080D, big-endian dims)."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_idx_family(root: Path, folder: str, rng: np.random.Generator, n_train: int, n_test: int) -> dict:
    """Write <root>/<folder>/raw/*.gz; return the arrays and the content sha256 table."""
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    arrays, table = {}, {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
            stem = f"{prefix}-{kind}-ubyte"
            content = idx_bytes(array)
            (raw / f"{stem}.gz").write_bytes(gzip.compress(content))
            table[stem] = hashlib.sha256(content).hexdigest()
            arrays[stem] = array
    return {"arrays": arrays, "sha256": table}


def write_cifar(root: Path, rng: np.random.Generator, per_batch: int, n_test: int) -> dict:
    """Write <root>/cifar-10-batches-py/ (5 train batches + test batch, protocol-2 pickles)."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    arrays, table = {}, {}
    for split, names, n in (("train", [f"data_batch_{i}" for i in range(1, 6)], per_batch),
                            ("test", ["test_batch"], n_test)):
        datas, labelss = [], []
        for name in names:
            data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
            labels = [int(v) for v in rng.integers(0, 10, size=n)]
            batch = {b"batch_label": name.encode(), b"labels": labels, b"data": data,
                     b"filenames": [f"{name}_{i}.png".encode() for i in range(n)]}
            with open(folder / name, "wb") as f:
                pickle.dump(batch, f, protocol=2)
            datas.append(data)
            labelss.append(np.asarray(labels, dtype=np.uint8))
        data, labels = np.concatenate(datas), np.concatenate(labelss)
        arrays[f"{split}_data"], arrays[f"{split}_labels"] = data, labels
        table[f"{split}_data"] = hashlib.sha256(data.tobytes()).hexdigest()
        table[f"{split}_labels"] = hashlib.sha256(labels.tobytes()).hexdigest()
    return {"arrays": arrays, "sha256": table}


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    """A tiny mirror holding MNIST, Fashion-MNIST and CIFAR-10, with the env vars set for it."""
    rng = np.random.default_rng(0)
    root = tmp_path / "mirror"
    sets = {
        "mnist": write_idx_family(root, "MNIST", rng, n_train=40, n_test=20),
        "fashion_mnist": write_idx_family(root, "FashionMNIST", rng, n_train=30, n_test=10),
        "cifar10": write_cifar(root, rng, per_batch=4, n_test=6),
    }
    checksums = tmp_path / "checksums.json"
    checksums.write_text(json.dumps({name: s["sha256"] for name, s in sets.items()}))
    monkeypatch.setenv("DEEPSNN_DATA_MIRROR", str(root))
    monkeypatch.setenv("DEEPSNN_CONTENT_SHA256", str(checksums))
    return {"root": root, "checksums": checksums, "sets": sets}


def committed_params() -> dict:
    return yaml.safe_load((REPO / "params.yaml").read_text())


def write_params(path: Path, base: dict | None = None, **overrides) -> Path:
    """params.yaml (or `base`) with dotted-key overrides, e.g. write_params(p, **{"train_spatial.epochs": 1})."""
    params = committed_params() if base is None else base
    for dotted, value in overrides.items():
        node = params
        *parents, last = dotted.split(".")
        for part in parents:
            node = node[part]
        node[last] = value
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


TINY_SPATIAL = {
    "train_spatial.epochs": 1, "train_spatial.batch_size": 16, "train_spatial.T_train": 2,
    "train_spatial.T_train_jitter": 1, "train_spatial.channels": 4,
    "simulate_spatial.horizon": 5, "simulate_spatial.batch_size": 8, "simulate_spatial.holdout_images": 8,
    "T_eval": 3,
}


TINY_CONVERSION = {"train_ann.epochs": 1, "train_ann.qcfs_clip_epochs": 0, "train_ann.batch_size": 8,
                   "train_ann.width": 1 / 16, "train_ann.lr": 0.05, "train_ann.compile": False,
                   "train_ann.precision": "fp32",
                   "calibrate.images": 12, "calibrate.batch_size": 6, "convert.correction_images": 12,
                   "convert.holdout_images": 8, "convert.finetune_images": 16, "convert.finetune_batch_size": 8,
                   "simulate_sweep.horizon": 6, "simulate_sweep.batch_size": 4, "simulate_sweep.compile": False,
                   "simulate_sweep.holdout_images": 8,
                   "T_eval": 4}

TINY_CHIP = {"chip.images": 2}

TINY = {**TINY_SPATIAL, **TINY_CONVERSION, **TINY_CHIP}


def set_dotted(params: dict, dotted: str, value) -> None:
    node = params
    *parents, last = dotted.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value


def copy_repo(dest: Path, conversion: tuple[str, ...] = ("cifar10",), direct: tuple[str, ...] = ("mnist",),
              **overrides) -> Path:
    """The tracked pipeline files in a fresh git + DVC repository at `dest`, running the experiments
    of `conversion` and `direct` (data sets), with dotted-key `overrides` (e.g. TINY) written into
    params.yaml and into every experiment file that has the section, so that they hold for all."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("dvc.yaml", "params.yaml", "experiments", "stages", "src", ".dvc/config"):
        src = REPO / name
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, target, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy(src, target)
    params = yaml.safe_load((dest / "params.yaml").read_text())
    params["conversion"], params["direct"] = list(conversion), list(direct)
    params["chip"]["experiments"] = {**{f"conversion-{d}": d for d in conversion}, **{f"direct-{d}": d for d in direct}}
    for dotted, value in overrides.items():
        set_dotted(params, dotted, value)
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for path in (dest / "experiments").glob("*.yaml"):
        experiment = yaml.safe_load(path.read_text())
        for dotted, value in overrides.items():
            if dotted.split(".")[0] in experiment:
                set_dotted(experiment, dotted, value)
        path.write_text(yaml.safe_dump(experiment, sort_keys=False))
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
    subprocess.run(["git", "config", "user.email", "ci@example.com"], cwd=dest, check=True)
    subprocess.run(["git", "config", "user.name", "CI"], cwd=dest, check=True)
    return dest


def run_download(out_dir: Path, datasets: tuple[str, ...] = ("mnist", "fashion_mnist", "cifar10")) -> Path:
    """The download stage writing `datasets` from the test mirror into `out_dir` (as the experiments stage lists them)."""
    from stages import download

    listing = out_dir.parent / f"{out_dir.name}-experiments.json"
    listing.parent.mkdir(parents=True, exist_ok=True)
    listing.write_text(json.dumps({"conversion": [], "direct": [], "datasets": list(datasets)}))
    download.main(["--experiments", str(listing), "--out-dir", str(out_dir), "--cache", str(out_dir.parent / "cache")])
    return out_dir


def dvc(repo: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run `dvc *args` in `repo` with the test's Python first on PATH.

    Output goes through temporary files, not pipes: `dvc queue start` forks worker processes that
    inherit the caller's stdout, and a pipe stays open (so the call blocks) for as long as any of
    them lives. The timeout turns a hang into a failure.
    """
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        done = subprocess.run([shutil.which("dvc", path=env["PATH"]), *args], cwd=repo, env=env, check=False,
                              stdin=subprocess.DEVNULL, stdout=out, stderr=err, timeout=timeout)
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(done.args, done.returncode, out.read(), err.read())


def kill_queue_workers(repo: Path) -> None:
    """Kill the process groups of DVC's queue workers in `repo` that are still alive (each worker
    leads its own group, with its celery pool)."""
    for pidfile in (repo / ".dvc" / "tmp").rglob("dvc-exp-worker-*.pid"):
        try:
            os.killpg(os.getpgid(int(pidfile.read_text())), signal.SIGKILL)
        except ProcessLookupError:
            pass


def eval_args(out: Path, name: str = "eval") -> list[str]:
    """The output arguments of an evaluation stage, all written under `out`."""
    return ["--metrics", str(out / f"{name}.json"), "--curve", str(out / f"{name}.csv"),
            "--layers", str(out / f"{name}_layers.csv"), "--early-exit", str(out / f"{name}_early_exit.csv"),
            "--plot", str(out / f"{name}.png"), "--energy-plot", str(out / f"{name}_energy.png")]


def read_outputs(out: Path, name: str = "eval") -> dict:
    return {"metrics": json.loads((out / f"{name}.json").read_text()), "curve": pd.read_csv(out / f"{name}.csv"),
            "layers": pd.read_csv(out / f"{name}_layers.csv"), "early_exit": pd.read_csv(out / f"{name}_early_exit.csv")}


def run_conversion(out: Path, params: Path | list[Path], dataset: str = "cifar10", download: bool = True) -> dict:
    """Every conversion stage's main(), as dvc.yaml runs them, with all files under `out`."""
    from stages import calibrate, convert, eval_sweep, simulate_sweep, train_ann

    if download:
        run_download(out)
    p = ["--params", *map(str, params if isinstance(params, list) else [params])]
    data, ann, th, snn, sim = (str(out / n) for n in (f"{dataset}.pt", "ann.pt", "thresholds.csv", "snn.pt", "sim.pt"))
    train_ann.main(p + ["--data", data, "--model", ann, "--curve", str(out / "ann.csv"), "--metrics", str(out / "ann.json")])
    calibrate.main(p + ["--data", data, "--model", ann, "--thresholds", th, "--metrics", str(out / "calibrate.json")])
    convert.main(p + ["--data", data, "--model", ann, "--thresholds", th, "--snn", snn, "--metrics", str(out / "convert.json")])
    simulate_sweep.main(p + ["--data", data, "--model", ann, "--snn", snn, "--out", sim,
                              "--metrics", str(out / "simulate.json")])
    eval_sweep.main(p + ["--data", data, "--model", ann, "--snn", snn, "--simulation", sim] + eval_args(out)
                    + ["--correction-curve", str(out / "low_T.csv"), "--correction-plot", str(out / "low_T.png")])
    return {**read_outputs(out), "low_T": pd.read_csv(out / "low_T.csv"),
            "convert": json.loads((out / "convert.json").read_text()),
            "times": {name: json.loads((out / f"{name}.json").read_text()) for name in ("calibrate", "convert")},
            "md5": {Path(path).name: md5(Path(path)) for path in (data, ann, th, snn, sim, out / "eval.png",
                                                                  out / "eval_energy.png", out / "low_T.csv",
                                                                  out / "low_T.png", out / "eval_early_exit.csv")}}


def run_direct(out: Path, params: Path | list[Path], dataset: str = "mnist", download: bool = True) -> dict:
    """Every direct-pipeline stage's main(), as dvc.yaml runs them, with all files under `out`."""
    from stages import eval_spatial, simulate_spatial, train_spatial

    if download:
        run_download(out)
    p = ["--params", *map(str, params if isinstance(params, list) else [params])]
    data, model, sim = (str(out / n) for n in (f"{dataset}.pt", "spatial.pt", "sim.pt"))
    train_spatial.main(p + ["--data", data, "--model", model, "--curve", str(out / "train.csv"),
                            "--metrics", str(out / "train.json")])
    simulate_spatial.main(p + ["--data", data, "--model", model, "--out", sim, "--metrics", str(out / "simulate.json")])
    eval_spatial.main(p + ["--data", data, "--model", model, "--simulation", sim] + eval_args(out))
    return {**read_outputs(out), "train": json.loads((out / "train.json").read_text()),
            "state": torch.load(out / "spatial.pt")["state_dict"],
            "md5": {Path(path).name: md5(Path(path)) for path in (data, model, sim, out / "eval_layers.csv",
                                                                  out / "eval.png", out / "eval_energy.png",
                                                                  out / "eval_early_exit.csv")}}
