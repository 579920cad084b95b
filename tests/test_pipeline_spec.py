"""dvc.yaml and the code agree: each stage declares exactly the params it reads, runs its own
script, and no training stage depends on T_eval (changing it re-runs evaluation only)."""

from __future__ import annotations

import importlib
import re

import yaml

from conftest import REPO

SPEC = yaml.safe_load((REPO / "dvc.yaml").read_text())
STAGES = SPEC["stages"]


def test_pipeline_shape():
    assert set(STAGES) == {"download", "train_ann", "calibrate", "convert", "eval_sweep", "train_spatial", "eval_spatial"}


def test_each_stage_declares_exactly_the_params_its_script_reads():
    for name, stage in STAGES.items():
        module = importlib.import_module(f"stages.{name}")
        assert sorted(stage.get("params", [])) == sorted(module.PARAMS), name


def outputs() -> set[str]:
    out = set()
    for stage in STAGES.values():
        for kind in ("outs", "metrics", "plots"):
            out |= {next(iter(o)) if isinstance(o, dict) else o for o in stage.get(kind, [])}
    return out


def test_each_stage_runs_its_own_script_and_depends_on_it():
    produced = outputs()
    for name, stage in STAGES.items():
        script = f"stages/{name}.py"
        assert stage["cmd"].startswith(f"python {script} "), name
        assert script in stage["deps"], name
        for dep in stage["deps"]:
            if "${" not in dep and dep not in produced:
                assert (REPO / dep).exists(), f"{name}: missing dep {dep}"


def test_T_eval_reaches_evaluation_only():
    for name, stage in STAGES.items():
        reads_T_eval = "T_eval" in stage.get("params", [])
        assert reads_T_eval == name.startswith("eval"), name


def test_stage_deps_cover_the_package_modules_they_import():
    """A stage must re-run when a module it imports changes."""
    for name, stage in STAGES.items():
        source = (REPO / f"stages/{name}.py").read_text()
        imported = set(re.findall(r"from deepsnn\.(\w+) import", source)) - {"cli", "io", "params", "checkpoint", "data"}
        for module in imported:
            assert f"src/deepsnn/{module}.py" in stage["deps"], f"{name} imports deepsnn.{module}"
