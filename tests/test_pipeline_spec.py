"""dvc.yaml and the code agree: each stage declares exactly the params it reads, runs its own
script, and no training stage depends on T_eval (changing it re-runs evaluation only)."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import yaml

from conftest import REPO

SPEC = yaml.safe_load((REPO / "dvc.yaml").read_text())
STAGES = {name: stage for name, stage in SPEC["stages"].items() if not name.startswith("comparison_")}
COMPARISON = {name.removeprefix("comparison_"): stage for name, stage in SPEC["stages"].items()
              if name.startswith("comparison_")}


def test_pipeline_shape():
    assert set(STAGES) == {"download", "train_ann", "calibrate", "convert", "eval_sweep", "train_spatial", "eval_spatial"}
    assert list(SPEC["stages"]) == list(STAGES) + [f"comparison_{name}" for name in STAGES]


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


def package_modules(module: str) -> set[str]:
    """`module` and the package __init__s Python runs to import it, as files under src/."""
    parts = module.split(".")
    files = {"/".join(["src", *parts[:i], "__init__.py"]) for i in range(1, len(parts))}
    path = "/".join(["src", *parts])
    return files | ({path + "/__init__.py"} if (REPO / path).is_dir() else {path + ".py"})


def imported_modules(path: Path) -> set[str]:
    """The deepsnn modules a file imports (at any depth of the file, under TYPE_CHECKING too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "deepsnn":
            found.add(node.module)
            for alias in node.names:  # `from deepsnn.core import cli` imports the module deepsnn.core.cli
                if (REPO / "src" / node.module.replace(".", "/") / f"{alias.name}.py").exists():
                    found.add(f"{node.module}.{alias.name}")
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "deepsnn"}
    return found


def files_run_by(script: Path) -> set[str]:
    """Every package file the script runs, following imports transitively."""
    seen: set[str] = set()
    todo = [script]
    while todo:
        for module in imported_modules(todo.pop()):
            for file in package_modules(module) - seen:
                seen.add(file)
                todo.append(REPO / file)
    return seen


def covered(file: str, deps: list[str]) -> bool:
    return any(file == dep or file.startswith(dep.rstrip("/") + "/") for dep in deps)


def test_the_import_walk_finds_transitive_modules():
    files = files_run_by(REPO / "stages/eval_sweep.py")
    # eval_sweep -> conversion.snn -> conversion.ann.vgg -> core.checkpoint -> core.io
    assert {"src/deepsnn/__init__.py", "src/deepsnn/conversion/ann/__init__.py", "src/deepsnn/core/io.py",
            "src/deepsnn/conversion/ann/networks.py", "src/deepsnn/evaluation/stored.py"} <= files
    assert not any(f.startswith("src/deepsnn/direct/") for f in files)


def test_a_missing_dep_is_found():
    deps = [d for d in STAGES["eval_spatial"]["deps"] if d != "src/deepsnn/evaluation"]
    missing = {f for f in files_run_by(REPO / "stages/eval_spatial.py") if not covered(f, deps)}
    assert {"src/deepsnn/evaluation/__init__.py", "src/deepsnn/evaluation/simulate.py",
            "src/deepsnn/evaluation/stored.py"} <= missing


def test_stage_deps_cover_every_package_module_they_run():
    """A stage must re-run when any module it runs changes: no exemptions."""
    for name, stage in STAGES.items():
        missing = sorted(f for f in files_run_by(REPO / f"stages/{name}.py") if not covered(f, stage["deps"]))
        assert not missing, f"{name} runs {missing}, which no dep of it covers"


def test_one_pipeline_never_depends_on_the_other():
    conversion = {"download", "train_ann", "calibrate", "convert", "eval_sweep"}
    for name, stage in STAGES.items():
        other = "src/deepsnn/direct" if name in conversion else "src/deepsnn/conversion"
        assert not any(dep.startswith(other) for dep in stage["deps"]), name
    # and training never re-runs for a change to evaluation code or to calibration and conversion
    for name in ("train_ann", "train_spatial"):
        assert not any(dep.startswith("src/deepsnn/evaluation") for dep in STAGES[name]["deps"]), name
    assert covered("src/deepsnn/conversion/ann/networks.py", STAGES["train_ann"]["deps"])
    assert not covered("src/deepsnn/conversion/snn.py", STAGES["train_ann"]["deps"])


def test_comparison_stages_are_the_default_ones_on_their_own_params():
    """The comparison_* stages run the same scripts with the same code deps on comparison/params.yaml
    read over params.yaml (T_eval stays the root's), their artifacts under comparison/, so they
    cannot drift from the default stages; their data set files are comparison/params.yaml's."""
    comparison_params = yaml.safe_load((REPO / "comparison" / "params.yaml").read_text())
    datasets = {"${train_ann.dataset}": comparison_params["train_ann"]["dataset"],
                "${train_spatial.dataset}": comparison_params["train_spatial"]["dataset"]}

    def moved(text: str) -> str:  # a default stage's artifact path(s) as the comparison stage has them
        for variable, dataset in datasets.items():
            text = text.replace(variable, dataset)
        return re.sub(r"(?<![\w/])(data|models|metrics|plots)/", r"comparison/\1/", text)

    assert list(COMPARISON) == list(STAGES)
    for name, stage in STAGES.items():
        other = COMPARISON[name]
        assert other["deps"] == [d if d.startswith(("stages/", "src/")) else moved(d) for d in stage["deps"]], name
        cmd = (moved(stage["cmd"]).replace("--params params.yaml", "--params params.yaml comparison/params.yaml")
               .replace("--out-dir data", "--out-dir comparison/data --cache data/downloads"))
        assert other["cmd"] == cmd, name
        own = [p for p in stage["params"] if p != "T_eval"]
        assert other["params"] == ["T_eval"] * ("T_eval" in stage["params"]) + [{"comparison/params.yaml": own}], name
        for kind in ("outs", "metrics", "plots"):
            assert yaml.safe_load(moved(yaml.safe_dump(stage.get(kind)))) == other.get(kind), (name, kind)
