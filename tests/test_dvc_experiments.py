"""Integration: the review workflow on tiny params in a temporary copy of the repository.

Full `dvc repro`, then `dvc exp run -S T_eval=<other>`: training is skipped, evaluation reads
the stored simulation, and `dvc metrics diff` shows what changed.
"""

from __future__ import annotations

import json
import subprocess
import time

import yaml

from conftest import TINY_CONVERSION, TINY_SPATIAL, copy_repo, dvc, kill_queue_workers, write_params


def git(repo, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


def test_repro_then_experiment_on_T_eval_reevaluates_only(mirror, tmp_path):
    repo = copy_repo(tmp_path / "repo")
    write_params(repo / "params.yaml", **{**TINY_SPATIAL, **TINY_CONVERSION, "T_eval": 3})  # horizons 5 and 6
    run = dvc(repo, "repro")
    assert run.returncode == 0, run.stdout + run.stderr
    before = {name: json.loads((repo / "metrics" / f"{name}.json").read_text()) for name in ("eval_sweep", "eval_spatial")}
    assert before["eval_sweep"]["T_eval"] == 3 and not before["eval_sweep"]["simulation_reused"]
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "baseline run")

    exp = dvc(repo, "exp", "run", "-S", "T_eval=4")
    assert exp.returncode == 0, exp.stdout + exp.stderr
    for stage in ("download", "train_ann", "calibrate", "convert", "train_spatial"):
        assert f"Stage '{stage}' didn't change, skipping" in exp.stdout, stage
    for stage in ("eval_sweep", "eval_spatial"):
        assert f"Running stage '{stage}'" in exp.stdout, stage
        after = json.loads((repo / "metrics" / f"{stage}.json").read_text())
        assert after["T_eval"] == 4 and after["simulation_reused"] is True  # nothing simulated again

    diff = dvc(repo, "metrics", "diff", "--json")
    assert diff.returncode == 0, diff.stderr
    changes = json.loads(diff.stdout)
    assert changes["metrics/eval_sweep.json"]["T_eval"] == {"old": 3, "new": 4, "diff": 1}
    assert changes["metrics/eval_spatial.json"]["T_eval"]["new"] == 4
    assert "metrics/train_ann.json" not in changes and "metrics/train_spatial.json" not in changes

    show = dvc(repo, "exp", "show", "--csv")
    assert show.returncode == 0 and "T_eval" in show.stdout and "snn_accuracy" in show.stdout, show.stdout

    # a parallel sweep through DVC's queue: each experiment in its own temporary workspace
    for T_eval in (2, 5):
        queued = dvc(repo, "exp", "run", "--queue", "-S", f"T_eval={T_eval}")
        assert queued.returncode == 0, queued.stdout + queued.stderr
    try:
        started = dvc(repo, "queue", "start", "-j", "2", timeout=120)
        assert started.returncode == 0, started.stdout + started.stderr
        deadline = time.monotonic() + 300
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
    assert {"2", "5"} <= {row[i] for row in rows[1:] for i in T_eval_columns}, table


def test_comparison_pipeline_runs_beside_the_default_and_T_eval_reevaluates_all_four(mirror, tmp_path):
    """The comparison_* stages (conversion on MNIST, vgg7 on CIFAR-10) on tiny params: `dvc repro`
    runs them with the default ones, and `dvc exp run -S T_eval=4` re-runs the four evaluation
    stages and nothing else."""
    repo = copy_repo(tmp_path / "repo", comparison=True)
    write_params(repo / "params.yaml", **{**TINY_SPATIAL, **TINY_CONVERSION, "T_eval": 3})
    comparison = repo / "comparison" / "params.yaml"
    tiny = {**TINY_SPATIAL, **TINY_CONVERSION, "train_ann.precision": "fp32"}
    write_params(comparison, yaml.safe_load(comparison.read_text()),
                 **{key: value for key, value in tiny.items() if "." in key})  # T_eval stays the root's

    run = dvc(repo, "repro")
    assert run.returncode == 0, run.stdout + run.stderr
    for name, pipeline, dataset, architecture in (("eval_sweep", "conversion", "mnist", "cnn3"),
                                                  ("eval_spatial", "direct", "cifar10", "vgg7")):
        metrics = json.loads((repo / "comparison" / "metrics" / f"{name}.json").read_text())
        assert (metrics["pipeline"], metrics["dataset"], metrics["architecture"]) == (pipeline, dataset, architecture)
        assert metrics["T_eval"] == 3
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "baseline run")

    exp = dvc(repo, "exp", "run", "-S", "T_eval=4")
    assert exp.returncode == 0, exp.stdout + exp.stderr
    evaluations = ("eval_sweep", "eval_spatial")
    for prefix in ("", "comparison_"):
        for stage in ("download", "train_ann", "calibrate", "convert", "train_spatial"):
            assert f"Stage '{prefix}{stage}' didn't change, skipping" in exp.stdout, prefix + stage
        for stage in evaluations:
            assert f"Running stage '{prefix}{stage}'" in exp.stdout, prefix + stage
    for folder in ("metrics", "comparison/metrics"):
        for stage in evaluations:
            assert json.loads((repo / folder / f"{stage}.json").read_text())["T_eval"] == 4, (folder, stage)
