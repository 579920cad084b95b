"""The review report on a tiny git + DVC repository with two commits (no pipeline runs): the tables
show the changed param and metric, and each figure overlays the base revision's curve and the
workspace's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import pandas as pd
import pytest
import yaml
from conftest import dvc

from deepsnn import review

DVC_YAML = """\
metrics:
  - metrics/conversion-cifar10/eval_sweep.json
plots:
  - plots/conversion-cifar10/eval_sweep.csv:
      x: T
      y: accuracy
  - plots/direct-mnist/eval_spatial.csv:
      x: T
      y: accuracy
  - plots/conversion-cifar10/train_ann.csv:
      x: epoch
      y: test_accuracy
"""
FOLDER = {"eval_sweep": "conversion-cifar10", "train_ann": "conversion-cifar10", "eval_spatial": "direct-mnist"}
BASE_SWEEP = {"T": [1, 2, 4], "accuracy": [60.0, 75.5, 85.25], "latency_s_per_sample": [0.01, 0.02, 0.04],
              "synops_per_sample": [1e6, 2e6, 4e6], "energy_uj_per_sample": [1.5, 3.0, 6.0]}
NEW_SWEEP = {**BASE_SWEEP, "accuracy": [65.0, 80.0, 88.75], "energy_uj_per_sample": [1.25, 2.5, 5.0]}
NEW_SPATIAL = {**BASE_SWEEP, "accuracy": [97.0, 98.0, 99.0]}  # a pipeline the second commit adds
BASE_TRAIN = {"epoch": [1, 2], "train_loss": [1.5, 1.0], "train_accuracy": [40.0, 60.0],
              "test_accuracy": [45.0, 62.5], "epoch_time_s": [10.0, 9.0]}
NEW_TRAIN = {**BASE_TRAIN, "test_accuracy": [50.0, 70.0]}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True,
                          timeout=60).stdout.strip()


def write_state(repo: Path, lr: float, snn_accuracy: float, curves: dict[str, dict]) -> None:
    (repo / "params.yaml").write_text(yaml.safe_dump({"seed": 0, "train_ann": {"lr": lr, "epochs": 2}}))
    (repo / "metrics" / "conversion-cifar10").mkdir(parents=True, exist_ok=True)
    (repo / "metrics" / "conversion-cifar10" / "eval_sweep.json").write_text(
        json.dumps({"snn_accuracy": snn_accuracy, "T_eval": 4}))
    for name, columns in curves.items():
        (repo / "plots" / FOLDER[name]).mkdir(parents=True, exist_ok=True)
        pd.DataFrame(columns).to_csv(repo / "plots" / FOLDER[name] / f"{name}.csv", index=False)


@pytest.fixture
def tiny_repo(tmp_path, monkeypatch):
    """Commit 1 (the base) and commit 2 (the change): lr, snn_accuracy and the curves differ,
    eval_spatial.csv exists only in commit 2."""
    monkeypatch.setenv("DVC_NO_ANALYTICS", "1")
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    git(repo, "config", "user.email", "ci@example.com")
    git(repo, "config", "user.name", "CI")
    assert dvc(repo, "init", "-q", timeout=120).returncode == 0
    (repo / "dvc.yaml").write_text(DVC_YAML)
    write_state(repo, lr=0.1, snn_accuracy=88.5, curves={"eval_sweep": BASE_SWEEP, "train_ann": BASE_TRAIN})
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "base")
    base = git(repo, "rev-parse", "--short", "HEAD")
    write_state(repo, lr=0.05, snn_accuracy=90.25,
                curves={"eval_sweep": NEW_SWEEP, "eval_spatial": NEW_SPATIAL, "train_ann": NEW_TRAIN})
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "change")
    return {"repo": repo, "base": base, "head": git(repo, "rev-parse", "--short", "HEAD")}


def run_review(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """`python -m deepsnn.review` as the Makefile runs it: this venv's bin first on PATH."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "DVC_NO_ANALYTICS": "1"}
    return subprocess.run([sys.executable, "-m", "deepsnn.review", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, stdin=subprocess.DEVNULL, timeout=300, check=False)


def section(report: str, heading: str) -> str:
    return report.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]


def table_row(text: str, name: str) -> list[str]:
    row = next(line for line in text.splitlines() if f"| {name} " in line)
    return [cell.strip() for cell in row.strip("|").split("|")]


def test_report_shows_the_changed_param_and_metric_and_links_valid_pngs(tiny_repo, tmp_path):
    out = tmp_path / "review"
    done = run_review(tiny_repo["repo"], "--base", tiny_repo["base"], "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(out / "report.md")
    report = (out / "report.md").read_text()
    assert report.startswith(f"# Review: workspace ({tiny_repo['head']}) against {tiny_repo['base']}\n")
    assert table_row(section(report, "Params that differ"), "train_ann.lr") == [
        "params.yaml", "train_ann.lr", "0.1", "0.05"]
    metrics = section(report, "Metrics that differ")
    assert table_row(metrics, "snn_accuracy") == ["metrics/conversion-cifar10/eval_sweep.json", "snn_accuracy", "88.5",
                                                  "90.25", "1.75"]
    assert "T_eval" not in metrics  # unchanged
    for name, alt in (("accuracy_vs_T", "accuracy vs T"), ("accuracy_vs_energy", "accuracy vs energy"),
                      ("training_curves", "training curves")):
        assert f"![{alt}]({name}.png)" in report
        png = out / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        height, width, channels = matplotlib.image.imread(png).shape
        assert (width, height, channels) == (700, 450, 4)
    assert f"- `plots/direct-mnist/eval_spatial.csv` is not in {tiny_repo['base']}" in report
    assert sorted(p.name for p in out.iterdir()) == [  # no temporary files left behind
        "accuracy_vs_T.png", "accuracy_vs_energy.png", "report.md", "training_curves.png"]


def test_figure_overlays_both_revisions_of_each_csv(tiny_repo, tmp_path):
    repo, base = tiny_repo["repo"], tiny_repo["base"]
    paths = review.curve_paths(repo, base, review.EVAL_CURVES)
    assert paths == ["plots/conversion-cifar10/eval_sweep.csv", "plots/direct-mnist/eval_spatial.csv"]
    curves, notes = review.load_curves(repo, base, paths, review.EVAL_COLUMNS)
    assert notes == [f"`plots/direct-mnist/eval_spatial.csv` is not in {base}"]
    fig = review.overlay_figure(curves, "energy_uj_per_sample", "accuracy", base, xlabel="energy", ylabel="acc",
                                logx=True)
    (ax,) = fig.axes
    lines = {line.get_label(): line for line in ax.get_lines()}
    sweep, spatial = "conversion-cifar10/eval_sweep", "direct-mnist/eval_spatial"
    assert list(lines) == [f"{sweep} ({base})", f"{sweep} (workspace)", f"{spatial} (workspace)"]
    assert lines[f"{sweep} ({base})"].get_linestyle() == "--"
    assert lines[f"{sweep} (workspace)"].get_linestyle() == "-"
    assert lines[f"{sweep} ({base})"].get_color() == lines[f"{sweep} (workspace)"].get_color()
    assert list(lines[f"{sweep} ({base})"].get_xdata()) == BASE_SWEEP["energy_uj_per_sample"]
    assert list(lines[f"{sweep} ({base})"].get_ydata()) == BASE_SWEEP["accuracy"]
    assert list(lines[f"{sweep} (workspace)"].get_ydata()) == NEW_SWEEP["accuracy"]
    assert list(lines[f"{spatial} (workspace)"].get_ydata()) == NEW_SPATIAL["accuracy"]
    assert ax.get_xscale() == "log"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == list(lines)

    # the same figure twice gives the same bytes (no timestamp or version stamp in the PNG)
    first, second = tmp_path / "a.png", tmp_path / "b.png"
    review.save_png(fig, first)
    review.save_png(review.overlay_figure(curves, "energy_uj_per_sample", "accuracy", base, xlabel="energy",
                                          ylabel="acc", logx=True), second)
    assert first.read_bytes() == second.read_bytes()


def test_training_curves_read_the_base_from_git_and_the_workspace_from_disk(tiny_repo):
    repo, base = tiny_repo["repo"], tiny_repo["base"]
    path = repo / "plots" / "conversion-cifar10" / "train_ann.csv"
    path.write_text("epoch,test_accuracy\n1,12.5\n")  # an uncommitted, broken edit
    curves, notes = review.load_curves(repo, base, review.curve_paths(repo, base, review.TRAIN_CURVES),
                                       review.TRAIN_COLUMNS)
    train = curves["conversion-cifar10/train_ann"]
    assert list(train[0]["test_accuracy"]) == BASE_TRAIN["test_accuracy"]
    assert train[1] is None
    assert notes[0] == ("`plots/conversion-cifar10/train_ann.csv` in the workspace has no column train_loss, "
                        "train_accuracy, epoch_time_s")


def test_a_bad_base_is_one_clear_line_and_exit_code_1(tiny_repo, tmp_path):
    done = run_review(tiny_repo["repo"], "--base", "no-such-branch", "--out", str(tmp_path / "review"))
    assert done.returncode == 1
    repo = tiny_repo["repo"].resolve()
    assert done.stderr.strip().splitlines() == [
        f"review: --base 'no-such-branch' is not a git revision (a branch, tag or commit) of {repo}"]
    assert not (tmp_path / "review").exists()


def test_outside_a_dvc_repository_is_one_clear_line_and_exit_code_1(tmp_path):
    done = run_review(tmp_path, "--base", "main")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"review: {tmp_path.resolve()} is not inside a DVC repository (run this from the project)"]


def test_title_names_the_base_and_its_commit():
    title = review.report_markdown("main", "abc1234", "def5678 + uncommitted changes", "", "", []).splitlines()[0]
    assert title == "# Review: workspace (def5678 + uncommitted changes) against main (abc1234)"


@pytest.mark.parametrize("printed", ["", "\n", "| Path   | Param   | HEAD   | workspace   |\n|--------|---------|\n"])
def test_no_rows_reads_no_differences(printed):
    assert review.diff_markdown(printed) == "No differences."
