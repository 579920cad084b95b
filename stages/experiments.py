"""DVC stage `experiments`: check params.yaml and every experiment's file before any other stage runs,
and list the experiments and the data sets they need (for `download`).

It declares the whole of params.yaml, so any change there (a misspelt top-level key too, which no
other stage declares) runs this check first. Its output changes only when the experiments do.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from deepsnn.core import cli
from deepsnn.core.io import atomic_path
from deepsnn.core.params import SECTIONS, ParamsError, read_params, read_yaml, validate_params


def experiment_file(folder: Path, pipeline: str, dataset: str) -> Path:
    """Where the experiment of `pipeline` on `dataset` lists what differs from params.yaml (dvc.yaml's path)."""
    return folder / f"{pipeline}-{dataset}.yaml"


def check_experiments(params_file: Path, folder: Path) -> dict[str, list[str]]:
    """The experiments of each pipeline and the data sets of all, once every file is checked: params.yaml's
    top-level keys, and each experiment's file holding every section of its pipeline and nothing else."""
    params = validate_params(read_params(params_file))
    for pipeline, sections in SECTIONS.items():
        for dataset in params[pipeline]:
            path = experiment_file(folder, pipeline, dataset)
            if not path.is_file():
                raise ParamsError(f"{pipeline}: {dataset} is listed in {params_file}, so {path} must exist: the params "
                                  f"of that experiment that differ from {params_file}, one section each ({{}} for none): "
                                  f"{', '.join(sections)}")
            read_params([params_file, path])  # only known sections, each a mapping
            missing = [s for s in sections if s not in read_yaml(path)]
            if missing:
                raise ParamsError(f"{path}: missing section {missing[0]} (dvc.yaml's stages declare it; write "
                                  f"`{missing[0]}: {{}}` if nothing in it differs from {params_file})")
    return {"conversion": params["conversion"], "direct": params["direct"],
            "datasets": sorted({*params["conversion"], *params["direct"]})}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--experiments-dir", type=Path, default=Path("experiments"))
    parser.add_argument("--out", type=Path, required=True, help="JSON to write: experiments and data sets")
    args = parser.parse_args(argv)
    listed = check_experiments(args.params, args.experiments_dir)
    with atomic_path(args.out) as tmp:
        tmp.write_text(json.dumps(listed, indent=2) + "\n")
    print(f"conversion on {', '.join(listed['conversion']) or 'nothing'}; direct on {', '.join(listed['direct']) or 'nothing'}")


if __name__ == "__main__":
    cli.run(main)
