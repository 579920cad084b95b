"""Integration: the README's command sequence through the real DVC CLI, on tiny params, in a fresh
copy of the repository: `dvc repro` (what `make repro` runs), then `dvc exp run -S T_eval=...`
re-runs evaluation only, `dvc metrics diff` shows what changed, `-S` on an experiment's own file
re-runs that experiment's evaluation only, and DVC's queue runs a sweep."""

from __future__ import annotations

import json
import re
import subprocess
import time

from conftest import TINY, copy_repo, dvc, kill_queue_workers

CHECK = "experiments"  # checks every params file (seconds); re-runs whenever one changes, and then nothing else
TRAINING = (CHECK, "download", "train_ann@cifar10", "calibrate@cifar10", "convert@cifar10",
            "train_spatial@mnist")
SIMULATION = ("simulate_sweep@cifar10", "simulate_spatial@mnist")
EVALUATION = ("eval_sweep@cifar10", "eval_spatial@mnist", "chip@conversion-cifar10", "chip@direct-mnist")


def git(repo, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


def ran(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


def metrics(repo, experiment: str, stage: str) -> dict:
    return json.loads((repo / "metrics" / experiment / f"{stage}.json").read_text())


def test_the_readme_sequence_trains_once_and_then_only_evaluates(mirror, tmp_path):
    repo = copy_repo(tmp_path / "repo", **{**TINY, "T_eval": 3})  # horizons 5 (direct) and 6 (conversion)
    run = dvc(repo, "repro")
    assert run.returncode == 0, run.stdout + run.stderr
    assert ran(run.stdout) == {*TRAINING, *SIMULATION, *EVALUATION}
    assert metrics(repo, "conversion-cifar10", "eval_sweep")["T_eval"] == 3
    chip = metrics(repo, "direct-mnist", "chip")
    assert chip["maps"] and chip["predictions_equal"] == chip["images"] == 2
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "baseline run")

    exp = dvc(repo, "exp", "run", "-S", "T_eval=5")  # within both horizons: read off the stored simulations
    assert exp.returncode == 0, exp.stdout + exp.stderr
    assert ran(exp.stdout) == {CHECK, *EVALUATION}, exp.stdout
    assert metrics(repo, "direct-mnist", "eval_spatial")["T_eval"] == 5

    diff = dvc(repo, "metrics", "diff", "--json")
    assert diff.returncode == 0, diff.stderr
    changes = json.loads(diff.stdout)
    assert changes["metrics/conversion-cifar10/eval_sweep.json"]["T_eval"] == {"old": 3, "new": 5, "diff": 2}
    assert not any("train_" in path for path in changes)

    # one experiment's own knob, in its own file (+: a key that file does not set yet)
    tuned = dvc(repo, "exp", "run", "-S", "experiments/direct-mnist.yaml:+eval_spatial.early_exit_tolerance=0.5")
    assert tuned.returncode == 0, tuned.stdout + tuned.stderr
    assert ran(tuned.stdout) == {CHECK, "eval_spatial@mnist"}, tuned.stdout

    beyond = dvc(repo, "exp", "run", "-S", "T_eval=9")  # beyond the direct horizon: a clear error, no training
    assert beyond.returncode != 0
    assert re.search(r"T_eval: 9 is beyond the [56] steps that models/", beyond.stderr + beyond.stdout)
    assert not any(stage.startswith(("download", "train")) for stage in ran(beyond.stdout))

    # a parallel sweep through DVC's queue: each experiment in its own temporary workspace
    for T_eval in (2, 4):
        queued = dvc(repo, "exp", "run", "--queue", "-S", f"T_eval={T_eval}")
        assert queued.returncode == 0, queued.stdout + queued.stderr
    try:
        started = dvc(repo, "queue", "start", "-j", "2", timeout=120)
        assert started.returncode == 0, started.stdout + started.stderr
        deadline = time.monotonic() + 400
        while time.monotonic() < deadline:
            status = dvc(repo, "queue", "status", timeout=60).stdout
            if status.count("Success") == 2 or "Failed" in status:
                break
            time.sleep(3)
        assert status.count("Success") == 2, status
    finally:
        # workers stop themselves a minute after the queue empties; don't leave them to chance
        kill_queue_workers(repo)
    table = dvc(repo, "exp", "show", "--csv").stdout
    rows = [line.split(",") for line in table.splitlines()]
    T_eval_columns = [i for i, name in enumerate(rows[0]) if name.split(":")[-1] == "T_eval"]
    assert {"2", "4"} <= {row[i] for row in rows[1:] for i in T_eval_columns}, table
