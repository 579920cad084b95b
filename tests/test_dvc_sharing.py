"""Integration: a run shared through the committed default DVC remote and picked up by a fresh clone.

Tiny params, temporary folders: `dvc repro` -> `dvc push` -> `git clone` -> `dvc pull` -> `dvc status` is
clean -> `dvc exp run -S T_eval=<other>` re-runs only the evaluation stages, from the pulled stored
simulations, and trains nothing.
"""

from __future__ import annotations

import configparser
import json
import subprocess

from conftest import REPO, TINY_CONVERSION, TINY_SPATIAL, copy_repo, dvc, write_params

TRAINING = ("download", "train_ann", "calibrate", "convert", "train_spatial")
EVALUATION = ("eval_sweep", "eval_spatial")


def git(repo, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout


def test_the_default_remote_is_a_folder_beside_the_repository():
    config = configparser.ConfigParser()
    config.read(REPO / ".dvc" / "config")
    remote = config["core"]["remote"]
    url = config[f"'remote \"{remote}\"'"]["url"]  # DVC writes the section as 'remote "name"'
    # relative to .dvc/: a sibling of the checkout, so no account is needed and a lab can put it on a shared disk
    assert (REPO / ".dvc" / url).resolve().parent == REPO.parent


def test_push_clone_pull_then_evaluate_only(mirror, tmp_path):
    repo = copy_repo(tmp_path / "repo")
    write_params(repo / "params.yaml", **{**TINY_SPATIAL, **TINY_CONVERSION, "T_eval": 3})
    run = dvc(repo, "repro")
    assert run.returncode == 0, run.stdout + run.stderr
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "tiny run")
    pushed = dvc(repo, "push")
    assert pushed.returncode == 0, pushed.stdout + pushed.stderr
    store = tmp_path / "deepsnn-dvc-store"  # the committed remote, resolved beside this checkout
    assert store.is_dir() and any(store.rglob("*"))

    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True)
    git(clone, "config", "user.email", "ci@example.com")
    git(clone, "config", "user.name", "CI")
    assert not (clone / "models" / "ann.pt").exists()
    pulled = dvc(clone, "pull")
    assert pulled.returncode == 0, pulled.stdout + pulled.stderr
    for name in ("models/ann.pt", "models/snn.pt", "models/spatial.pt", "models/eval_sweep_simulation.pt",
                 "models/eval_spatial_simulation.pt", "data/mnist.pt", "data/cifar10.pt"):
        assert (clone / name).is_file(), name
    status = dvc(clone, "status")
    assert status.returncode == 0 and "Data and pipelines are up to date" in status.stdout, status.stdout

    exp = dvc(clone, "exp", "run", "-S", "T_eval=4")
    assert exp.returncode == 0, exp.stdout + exp.stderr
    for stage in TRAINING:
        assert f"Stage '{stage}' didn't change, skipping" in exp.stdout, stage
    for stage in EVALUATION:
        assert f"Running stage '{stage}'" in exp.stdout, stage
        metrics = json.loads((clone / "metrics" / f"{stage}.json").read_text())
        assert metrics["T_eval"] == 4 and metrics["simulation_reused"] is True, stage  # read off the pulled simulation
    assert "Running stage 'train" not in exp.stdout
