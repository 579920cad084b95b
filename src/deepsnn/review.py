"""A review report of the workspace against a base revision: what a CI job posts on a pull request.

    python -m deepsnn.review --base main [--out review]

writes <out>/report.md (the params and metrics that differ, from `dvc params diff --md` and
`dvc metrics diff --md`) and, beside it, three PNGs overlaying the base revision's curves (dashed)
and the workspace's (solid): accuracy vs T, accuracy vs energy and the training curves.
Nothing here needs a browser or a network: matplotlib renders with Agg, and the base revision's
CSVs come from git (dvc.yaml marks them `cache: false`, so git holds them).

A tool, not a stage: it imports none of the pipeline's packages, so it runs (and is reviewed) alone.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # before pyplot: no display, no browser

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

WORKSPACE = "workspace"  # DVC's name for it too
TIMEOUT_S = 120.0
# each experiment's curves: plots/<pipeline>-<data set>/<stage>.csv (dvc.yaml)
EVAL_CURVES = ("eval_sweep.csv", "eval_spatial.csv")
TRAIN_CURVES = ("train_ann.csv", "train_spatial.csv")
EVAL_COLUMNS = ("T", "accuracy", "latency_s_per_sample", "synops_per_sample", "energy_uj_per_sample")
TRAIN_COLUMNS = ("epoch", "train_loss", "train_accuracy", "test_accuracy", "epoch_time_s")


class ReviewError(Exception):
    """A mistake the user can fix (bad revision, wrong folder): reported in one line, no traceback."""


@dataclass(frozen=True)
class FigureSpec:
    """Which columns each PNG plots, from which CSVs."""

    file: str
    alt: str
    names: tuple[str, ...]  # the CSV file names, found in every experiment's folder under plots/
    columns: tuple[str, ...]
    x: str
    y: str
    xlabel: str
    ylabel: str
    logx: bool = False


FIGURES = (
    FigureSpec("accuracy_vs_T.png", "accuracy vs T", EVAL_CURVES, EVAL_COLUMNS, "T", "accuracy",
            "timesteps T", "test accuracy (%)"),
    FigureSpec("accuracy_vs_energy.png", "accuracy vs energy", EVAL_CURVES, EVAL_COLUMNS, "energy_uj_per_sample",
            "accuracy", "energy per sample (µJ, log scale)", "test accuracy (%)", logx=True),
    FigureSpec("training_curves.png", "training curves", TRAIN_CURVES, TRAIN_COLUMNS, "epoch", "test_accuracy",
            "epoch", "test accuracy (%)"),
)

# CSV name -> (base revision's frame, workspace's frame); None where that revision lacks the file
Pair = tuple[pd.DataFrame | None, pd.DataFrame | None]
Curves = Mapping[str, Pair]


def _run(cmd: Sequence[str], cwd: Path, timeout: float = TIMEOUT_S) -> subprocess.CompletedProcess:
    """Run a command without a terminal on stdin (DVC would otherwise wait for a prompt answer);
    the timeout turns a hang into a clear error."""
    try:
        return subprocess.run(list(cmd), cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=timeout, check=False)
    except FileNotFoundError as error:
        raise ReviewError(f"{cmd[0]} not found; install it or put it on PATH") from error
    except subprocess.TimeoutExpired as error:
        raise ReviewError(f"`{' '.join(cmd)}` took longer than {timeout:.0f} s") from error


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no message"


def dvc_executable() -> str:
    """`dvc` from PATH, else the one installed beside this Python (a venv run without activating it)."""
    found = shutil.which("dvc") or shutil.which("dvc", path=str(Path(sys.executable).parent))
    if found is None:
        raise ReviewError("dvc not found on PATH or beside this Python; install the project's requirements")
    return found


def dvc_root(cwd: Path) -> Path:
    """The DVC repository holding `cwd`: git and dvc paths below are relative to it."""
    done = _run([dvc_executable(), "root"], cwd)
    if done.returncode != 0:
        raise ReviewError(f"{cwd} is not inside a DVC repository (run this from the project)")
    return (cwd / done.stdout.strip()).resolve()


def short_commit(root: Path, rev: str) -> str:
    """The abbreviated commit `rev` names; a ReviewError when it names none."""
    done = _run(["git", "rev-parse", "--verify", "--quiet", "--short", f"{rev}^{{commit}}"], root)
    if done.returncode != 0:
        raise ReviewError(f"--base {rev!r} is not a git revision (a branch, tag or commit) of {root}")
    return done.stdout.strip()


def workspace_label(root: Path) -> str:
    """HEAD's short commit, marked when tracked files have uncommitted changes (the usual case
    under review: the report shows the workspace, not HEAD)."""
    head = short_commit(root, "HEAD")
    dirty = _run(["git", "status", "--porcelain", "--untracked-files=no"], root).stdout.strip()
    return f"{head} + uncommitted changes" if dirty else head


def diff_markdown(table: str) -> str:
    """DVC's Markdown table, or "No differences." where it has no rows: `dvc metrics diff` then
    prints nothing, `dvc params diff` a bare header."""
    rows = [line for line in table.strip().splitlines() if line.startswith("|")]
    return table.strip() if len(rows) > 2 else "No differences."


def dvc_diff(root: Path, kind: str, base: str) -> str:
    """`dvc {kind} diff BASE --md` (kind: params or metrics), as the report shows it."""
    done = _run([dvc_executable(), kind, "diff", base, "--md"], root)
    if done.returncode != 0:
        raise ReviewError(f"`dvc {kind} diff {base}` failed: {_last_line(done.stderr or done.stdout)}")
    return diff_markdown(done.stdout)


def read_curve(root: Path, path: str, rev: str | None) -> pd.DataFrame | None:
    """The CSV at `path` in revision `rev` (git show) or, for None, in the workspace; None if absent."""
    if rev is None:
        file = root / path
        return pd.read_csv(file) if file.is_file() else None
    done = _run(["git", "show", f"{rev}:./{path}"], root)
    return pd.read_csv(io.StringIO(done.stdout)) if done.returncode == 0 else None


def _frame_or_note(root: Path, path: str, rev: str | None, label: str,
                   columns: Sequence[str]) -> tuple[pd.DataFrame | None, str | None]:
    try:
        frame = read_curve(root, path, rev)
    except (pd.errors.EmptyDataError, pd.errors.ParserError):
        return None, f"`{path}` in {label} is not a readable CSV"
    if frame is None:
        return None, f"`{path}` is not in {label}"
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        return None, f"`{path}` in {label} has no column {', '.join(missing)}"
    return frame, None


def curve_paths(root: Path, base: str, names: Sequence[str]) -> list[str]:
    """plots/<experiment>/<name> for each of `names` in the workspace or in the base revision."""
    listed = _run(["git", "ls-tree", "-r", "--name-only", base, "--", "plots"], root).stdout.split()
    found = {p.relative_to(root).as_posix() for p in root.glob("plots/*/*.csv")} | set(listed)
    return sorted(p for p in found if len(Path(p).parts) == 3 and Path(p).name in names)


def load_curves(root: Path, base: str, paths: Sequence[str],
                columns: Sequence[str]) -> tuple[dict[str, Pair], list[str]]:
    """Both revisions' frames for each CSV, and a note for each file a revision lacks (or that lacks
    one of `columns`): a run in progress, or a pipeline added by the change under review, must not
    stop the report; that line is left out of the figure, and the report says so."""
    curves: dict[str, Pair] = {}
    notes: list[str] = []
    for path in paths:
        base_frame, base_note = _frame_or_note(root, path, base, base, columns)
        work_frame, work_note = _frame_or_note(root, path, None, f"the {WORKSPACE}", columns)
        notes += [note for note in (base_note, work_note) if note]
        curves[f"{Path(path).parent.name}/{Path(path).stem}"] = (base_frame, work_frame)
    return curves, notes


def overlay_figure(curves: Curves, x: str, y: str, base_label: str, *, xlabel: str, ylabel: str,
                   logx: bool = False) -> Figure:
    """One axes, two lines per CSV in one colour: the base revision dashed, the workspace solid,
    labelled "<csv> (<base>)" and "<csv> (workspace)". A missing frame draws no line."""
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=100)
    for i, (name, (base_frame, work_frame)) in enumerate(curves.items()):
        colour = f"C{i}"
        for frame, label, style in ((base_frame, base_label, "--"), (work_frame, WORKSPACE, "-")):
            if frame is not None:
                ax.plot(frame[x], frame[y], style, color=colour, marker=".", label=f"{name} ({label})")
    if logx:
        ax.set_xscale("log")
    else:  # T and epochs are counts
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    if ax.lines:
        ax.legend()
    else:
        ax.text(0.5, 0.5, "no curves in either revision", ha="center", va="center", transform=ax.transAxes)
    fig.tight_layout()
    return fig


def save_png(fig: Figure, path: Path) -> None:
    """Write the PNG through a temporary file and a rename, so a reader never sees half a file;
    without the Software stamp the bytes depend only on the figure (same data, same file)."""
    tmp = _temporary(path)
    try:
        fig.savefig(tmp, format="png", metadata={"Software": None})
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
        plt.close(fig)


def _temporary(path: Path) -> Path:
    """A hidden sibling of `path`, unique to this process (created with the umask's mode, unlike mkstemp)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def _write_text(path: Path, text: str) -> None:
    tmp = _temporary(path)
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def report_markdown(base: str, base_commit: str, workspace: str, params_md: str, metrics_md: str,
                    notes: Sequence[str]) -> str:
    """The Markdown posted on the pull request; the PNGs are linked relative to it."""
    against = base if base.startswith(base_commit) else f"{base} ({base_commit})"  # base is a commit already
    lines = [f"# Review: workspace ({workspace}) against {against}", "",
             "## Params that differ", "", params_md, "",
             "## Metrics that differ", "", metrics_md, "",
             "## Curves", "",
             f"Dashed: {base}; solid: the workspace.", ""]
    for figure in FIGURES:
        lines += [f"![{figure.alt}]({figure.file})", ""]
    if notes:
        lines += ["Left out of the figures:", ""] + [f"- {note}" for note in notes] + [""]
    return "\n".join(lines)


def write_review(root: Path, base: str, out: Path) -> Path:
    """Write <out>/report.md and its PNGs for the workspace of `root` against `base`; return the report."""
    base_commit = short_commit(root, base)
    workspace = workspace_label(root)
    params_md = dvc_diff(root, "params", base)
    metrics_md = dvc_diff(root, "metrics", base)
    notes: list[str] = []
    for figure in FIGURES:
        curves, missing = load_curves(root, base, curve_paths(root, base, figure.names), figure.columns)
        notes += [note for note in missing if note not in notes]  # the two eval figures share their CSVs
        save_png(overlay_figure(curves, figure.x, figure.y, base, xlabel=figure.xlabel, ylabel=figure.ylabel,
                                logx=figure.logx), out / figure.file)
    report = out / "report.md"
    _write_text(report, report_markdown(base, base_commit, workspace, params_md, metrics_md, notes))
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="git revision to compare the workspace with, e.g. main")
    parser.add_argument("--out", type=Path, default=Path("review"), help="folder for report.md and the PNGs")
    args = parser.parse_args(argv)
    try:
        report = write_review(dvc_root(Path.cwd()), args.base, args.out)
    except ReviewError as error:
        print(f"review: {error}", file=sys.stderr)
        sys.exit(1)
    print(report)


if __name__ == "__main__":
    main()
