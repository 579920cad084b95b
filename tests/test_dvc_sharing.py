"""Integration: a run shared through the committed default DVC remote and picked up by a fresh clone.

Tiny params, temporary folders: `dvc repro` -> `dvc push` -> `git clone` -> `dvc pull` -> `dvc status` is
clean -> `dvc exp run -S T_eval=<other>` re-runs only the evaluation stages, from the pulled stored
simulations, and trains and simulates nothing.
"""

from __future__ import annotations

import configparser
import json
import subprocess

from conftest import REPO, TINY, copy_repo, dvc

TRAINING = ("download", "train_ann@cifar10", "calibrate@cifar10", "convert@cifar10", "train_spatial@mnist")
SIMULATION = ("simulate_sweep@cifar10", "simulate_spatial@mnist")
EVALUATION = ("eval_sweep@cifar10", "eval_spatial@mnist")


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
    repo = copy_repo(tmp_path / "repo", **{**TINY, "T_eval": 3})
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
    assert not (clone / "models" / "conversion-cifar10" / "ann.pt").exists()
    pulled = dvc(clone, "pull")
    assert pulled.returncode == 0, pulled.stdout + pulled.stderr
    for name in ("conversion-cifar10/ann.pt", "conversion-cifar10/snn.pt", "conversion-cifar10/simulation.pt",
                 "direct-mnist/snn.pt", "direct-mnist/simulation.pt"):
        assert (clone / "models" / name).is_file(), name
    assert (clone / "data" / "mnist.pt").is_file() and (clone / "data" / "cifar10.pt").is_file()
    status = dvc(clone, "status")
    assert status.returncode == 0 and "Data and pipelines are up to date" in status.stdout, status.stdout

    exp = dvc(clone, "exp", "run", "-S", "T_eval=4")
    assert exp.returncode == 0, exp.stdout + exp.stderr
    for stage in (*TRAINING, *SIMULATION):
        assert f"Stage '{stage}' didn't change, skipping" in exp.stdout, stage
    for stage in EVALUATION:
        assert f"Running stage '{stage}'" in exp.stdout, stage
    experiment = {"eval_sweep@cifar10": "conversion-cifar10", "eval_spatial@mnist": "direct-mnist"}
    for stage, folder in experiment.items():
        metrics = json.loads((clone / "metrics" / folder / f"{stage.split('@')[0]}.json").read_text())
        assert metrics["T_eval"] == 4, stage  # read off the pulled simulation
    assert "Running stage 'train" not in exp.stdout and "Running stage 'simulate" not in exp.stdout
