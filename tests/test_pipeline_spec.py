"""dvc.yaml and the code agree: each stage is written once (foreach over an experiment list in
params.yaml), declares exactly the params it reads from params.yaml and from its experiment's
file, runs its own script, depends on every module it runs, and no training stage depends on
T_eval (changing it re-runs evaluation only)."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import yaml

from conftest import REPO

SPEC = yaml.safe_load((REPO / "dvc.yaml").read_text())
STAGES = {name: stage.get("do", stage) for name, stage in SPEC["stages"].items()}
EXPERIMENT_LISTS = {name: stage["foreach"] for name, stage in SPEC["stages"].items() if "foreach" in stage}
CONVERSION = ("train_ann", "calibrate", "convert", "simulate_sweep", "eval_sweep")
DIRECT = ("train_spatial", "simulate_spatial", "eval_spatial")


def test_pipeline_shape():
    assert list(STAGES) == ["experiments", "download", *CONVERSION[:1], *DIRECT[:1], *CONVERSION[1:], *DIRECT[1:],
                            "chip"]
    assert EXPERIMENT_LISTS == {**{n: "${conversion}" for n in CONVERSION}, **{n: "${direct}" for n in DIRECT},
                                "chip": "${chip.experiments}"}


def params_of(stage: dict) -> tuple[list[str], dict[str, list[str]]]:
    """A stage's params.yaml keys and its other params files' keys."""
    plain = [p for p in stage.get("params", []) if isinstance(p, str)]
    files = {k: v for p in stage.get("params", []) if isinstance(p, dict) for k, v in p.items()}
    return plain, files


def params_read_by(name: str) -> list[str]:
    """What a stage script reads: its PARAMS, or a training stage's seed and section (core.train_stage)."""
    module = importlib.import_module(f"stages.{name}")
    return module.PARAMS if hasattr(module, "PARAMS") else ["seed", module.TRAINER.stage]


def test_each_stage_declares_exactly_the_params_its_script_reads():
    for name in (*CONVERSION, *DIRECT):
        read = params_read_by(name)
        plain, files = params_of(STAGES[name])
        pipeline = "conversion" if name in CONVERSION else "direct"
        assert sorted(plain) == sorted(read), name
        # the experiment's file holds its sections, not params.yaml's top-level keys
        assert files == {f"experiments/{pipeline}-${{item}}.yaml": [p for p in read if p not in ("seed", "T_eval")]}, name
        assert f"--params params.yaml experiments/{pipeline}-${{item}}.yaml " in STAGES[name]["cmd"], name
    # the chip stage reads params.yaml's own keys only (chip is shared by all experiments)
    assert params_of(STAGES["chip"]) == (params_read_by("chip"), {})
    assert STAGES["chip"]["cmd"].startswith("python stages/chip.py --params params.yaml --experiment ${key} ")
    # the checking stage declares the whole of params.yaml: any change there runs it first
    assert STAGES["experiments"]["params"] == [{"params.yaml": None}]


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


def test_outputs_are_ordinary_and_each_experiment_has_its_own_folder():
    """DVC caches every output (no persist: DVC, not project code, decides what re-runs); an
    experiment's outputs live under <pipeline>-${item}/."""
    for name, stage in STAGES.items():
        for kind in ("outs", "metrics", "plots"):
            for out in stage.get(kind, []):
                path, options = (next(iter(out.items())) if isinstance(out, dict) else (out, {}))
                assert "persist" not in (options or {}), (name, path)
                if name in CONVERSION:
                    assert "/conversion-${item}/" in path, (name, path)
                elif name in DIRECT:
                    assert "/direct-${item}/" in path, (name, path)
                elif name == "chip":
                    assert "/${key}/" in path, (name, path)


def test_no_module_reads_dvc_yaml():
    """No code opens dvc.yaml (a string that is its path, outside docstrings): DVC reads it, not us."""
    for path in [*REPO.glob("src/deepsnn/**/*.py"), *REPO.glob("stages/*.py")]:
        tree = ast.parse(path.read_text())
        docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                      if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef)) and node.body
                      and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
        named = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
                 and n.value.endswith("dvc.yaml") and id(n) not in docstrings]
        assert not named, (path, named)


def test_T_eval_reaches_evaluation_only():
    for name, stage in STAGES.items():
        reads_T_eval = "T_eval" in params_of(stage)[0]
        assert reads_T_eval == (name.startswith("eval") or name == "chip"), name


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
    # eval_sweep -> conversion.snn -> conversion.ann.networks -> core.checkpoint -> core.io
    assert {"src/deepsnn/__init__.py", "src/deepsnn/conversion/ann/__init__.py", "src/deepsnn/core/io.py",
            "src/deepsnn/conversion/ann/networks.py", "src/deepsnn/evaluation/simulation.py"} <= files
    assert not any(f.startswith("src/deepsnn/direct/") for f in files)


def test_a_missing_dep_is_found():
    deps = [d for d in STAGES["eval_spatial"]["deps"] if d != "src/deepsnn/evaluation"]
    missing = {f for f in files_run_by(REPO / "stages/eval_spatial.py") if not covered(f, deps)}
    assert {"src/deepsnn/evaluation/__init__.py", "src/deepsnn/evaluation/simulation.py",
            "src/deepsnn/evaluation/outputs.py"} <= missing


def test_stage_deps_cover_every_package_module_they_run():
    """A stage must re-run when any module it runs changes: no exemptions."""
    for name, stage in STAGES.items():
        missing = sorted(f for f in files_run_by(REPO / f"stages/{name}.py") if not covered(f, stage["deps"]))
        assert not missing, f"{name} runs {missing}, which no dep of it covers"


def test_one_pipeline_never_depends_on_the_other():
    for name, stage in STAGES.items():
        other = "src/deepsnn/direct" if name in CONVERSION else "src/deepsnn/conversion"
        if name in (*CONVERSION, *DIRECT):
            assert not any(dep.startswith(other) for dep in stage["deps"]), name
    # training never re-runs for a change to evaluation, calibration, conversion or download code
    for name in ("train_ann", "train_spatial"):
        assert not any(dep.startswith(("src/deepsnn/evaluation", "src/deepsnn/chip", "src/deepsnn/download"))
                       for dep in STAGES[name]["deps"]), name
    assert covered("src/deepsnn/conversion/ann/networks.py", STAGES["train_ann"]["deps"])
    assert not covered("src/deepsnn/conversion/snn.py", STAGES["train_ann"]["deps"])
    # the download code is the download stage's alone
    for name, stage in STAGES.items():
        assert covered("src/deepsnn/download.py", stage["deps"]) == (name == "download"), name


def test_the_readme_commands_are_the_ones_the_cli_test_runs():
    """tests/test_dvc_experiments.py runs `dvc repro` then `dvc exp run -S T_eval=...`: that is what
    the README tells a newcomer, and `make repro` is plain `dvc repro` (every experiment), so the
    mission's `dvc exp run -S T_eval=40` afterwards trains nothing."""
    readme = (REPO / "README.md").read_text()
    makefile = (REPO / "Makefile").read_text()
    assert "make repro" in readme and "dvc exp run -S T_eval=40" in readme
    recipe = makefile.split("\nrepro:", 1)[1].split("\n\n", 1)[0]
    assert "/dvc repro\n" in recipe + "\n"  # no target: everything dvc.yaml defines
    assert "dvc pull` needs a remote the reader can reach" in readme
    words = len(readme.split())
    assert words <= 1500, words
