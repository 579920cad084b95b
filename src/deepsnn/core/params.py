"""Load and validate params.yaml (and an experiment's file of differences) before any data is touched.

Every knob is declared with its type and allowed values, so a typo or a bad value fails in the
first second of a stage with a message naming the key, the value and what is allowed, instead of
hours later. This module holds the checks, the top-level keys and the key-by-key merge of an
experiment's file (`experiments/<pipeline>-<data set>.yaml`) over params.yaml; each pipeline
declares its own sections (`conversion/params.py`, `direct/params.py`), so a new knob of one
pipeline never re-runs the other.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from deepsnn.core.data import DATASETS
from deepsnn.core.errors import UserError


class ParamsError(UserError, ValueError):
    """A params.yaml value is missing, unknown or out of range."""


@dataclass(frozen=True)
class Int:
    min: int | None = None
    max: int | None = None

    def check(self, key: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParamsError(f"{key}: expected an integer, got {value!r}")
        if self.min is not None and value < self.min or self.max is not None and value > self.max:
            raise ParamsError(f"{key}: {value} is out of range; allowed: {self.describe()}")
        return value

    def describe(self) -> str:
        lo = "-inf" if self.min is None else self.min
        hi = "inf" if self.max is None else self.max
        return f"integers in [{lo}, {hi}]"


@dataclass(frozen=True)
class Float:
    min: float | None = None  # inclusive unless min_open
    max: float | None = None  # inclusive
    min_open: bool = False

    def check(self, key: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParamsError(f"{key}: expected a number, got {value!r}")
        value = float(value)
        too_low = self.min is not None and (value <= self.min if self.min_open else value < self.min)
        too_high = self.max is not None and value > self.max
        if too_low or too_high:
            raise ParamsError(f"{key}: {value} is out of range; allowed: {self.describe()}")
        return value

    def describe(self) -> str:
        lo = "-inf" if self.min is None else self.min
        hi = "inf" if self.max is None else self.max
        return f"numbers in {'(' if self.min_open else '['}{lo}, {hi}]"


@dataclass(frozen=True)
class Choice:
    options: tuple

    def check(self, key: str, value: Any) -> Any:
        if isinstance(value, bool) or value not in self.options:
            raise ParamsError(f"{key}: {value!r} is not allowed; allowed: {self.describe()}")
        return value

    def describe(self) -> str:
        return ", ".join(str(o) for o in self.options)


@dataclass(frozen=True)
class Bool:
    def check(self, key: str, value: Any) -> bool:
        if not isinstance(value, bool):
            raise ParamsError(f"{key}: {value!r} is not allowed; allowed: true, false")
        return value


@dataclass(frozen=True)
class Either:
    """A value that one of `specs` accepts (the first that does), e.g. a number or 'auto'."""
    specs: tuple

    def check(self, key: str, value: Any) -> Any:
        for spec in self.specs:
            try:
                return spec.check(key, value)
            except ParamsError:
                continue
        raise ParamsError(f"{key}: {value!r} is not allowed; allowed: {self.describe()}")

    def describe(self) -> str:
        return " or ".join(spec.describe() for spec in self.specs)


@dataclass(frozen=True)
class IntList:
    """A non-empty list of distinct integers, each at least `min`, e.g. timesteps."""
    min: int = 1

    def check(self, key: str, value: Any) -> list[int]:
        if (not isinstance(value, list) or not value
                or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)):
            raise ParamsError(f"{key}: expected a non-empty list of integers, got {value!r}")
        if min(value) < self.min or len(set(value)) != len(value):
            raise ParamsError(f"{key}: {value} is not allowed; allowed: {self.describe()}")
        return value

    def describe(self) -> str:
        return f"a list of distinct integers >= {self.min}"


def choice(*options: str) -> Choice:
    return Choice(tuple(options))


def choice_int(*options: int) -> Choice:
    return Choice(tuple(options))


@dataclass(frozen=True)
class DatasetList:
    """A list of distinct data set names: the data sets a pipeline runs its experiments on."""

    def check(self, key: str, value: Any) -> list[str]:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ParamsError(f"{key}: expected a list of data set names, got {value!r}")
        for name in value:
            if name not in DATASETS:
                raise ParamsError(f"{key}: {name!r} is not a data set; allowed: {', '.join(DATASETS)}")
        if len(set(value)) != len(value):
            raise ParamsError(f"{key}: {value} names a data set twice; each experiment runs once per data set")
        return value


RESETS = ("soft", "hard")  # soft: subtract the threshold; hard: back to 0
INITIAL_POTENTIALS = ("half", "zero")  # membrane potential at t=0, in thresholds

TOP_LEVEL: dict[str, Any] = {
    "seed": Int(min=0),
    "T_eval": Int(min=1),  # headline evaluation timesteps; only evaluation stages read it
    "conversion": DatasetList(),  # the conversion pipeline's experiments, one per data set (dvc.yaml's foreach)
    "direct": DatasetList(),  # the direct pipeline's experiments
}


@dataclass(frozen=True)
class Pipeline:
    """The params.yaml sections of one pipeline (`name`: a key of SECTIONS), the constraints between
    their keys (checked on load), and between them and the experiment's data set (checked once
    the stage has opened its data file)."""
    name: str
    sections: dict[str, dict[str, Any]]
    relations: Callable[[dict[str, Any]], None] = field(default=lambda params: None)
    fits: Callable[[dict[str, Any], str], None] = field(default=lambda params, dataset: None)


# Section names of each pipeline: a stage validates its own pipeline's sections and refuses any
# top-level key that is none of these or SHARED (a misspelt section would otherwise be ignored).
# An experiment's file holds every section of its pipeline (`{}` where nothing differs), since
# its stages declare them to DVC; SHARED sections are params.yaml's alone, like seed and T_eval.
SECTIONS = {"conversion": ("train_ann", "calibrate", "convert", "simulate_sweep", "eval_sweep"),
            "direct": ("train_spatial", "simulate_spatial", "eval_spatial")}
SHARED = ("chip",)  # the neuromorphic chip model both evaluations estimate energy on


def validate(raw: Any, schema: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Return a checked copy of `raw`; raise ParamsError naming the first bad key."""
    where = prefix.rstrip(".") or "params.yaml"
    if not isinstance(raw, dict):
        raise ParamsError(f"{where}: expected a mapping of keys, got {raw!r}")
    unknown = sorted(set(raw) - set(schema))
    if unknown:
        raise ParamsError(f"{prefix}{unknown[0]}: unknown key; allowed keys here: {', '.join(schema)}")
    checked: dict[str, Any] = {}
    for key, spec in schema.items():
        name = prefix + key
        if key not in raw:
            kind = "section" if isinstance(spec, dict) else "key"
            raise ParamsError(f"{name}: missing {kind}")
        if isinstance(spec, dict):
            checked[key] = validate(raw[key], spec, prefix=name + ".")
        else:
            checked[key] = spec.check(name, raw[key])
    return checked


def validate_params(raw: Any, *pipelines: Pipeline) -> dict[str, Any]:
    """The checked top-level keys and the sections of `pipelines`; other pipelines' sections are
    passed over (their own stages check them), unknown top-level keys are refused."""
    if not isinstance(raw, dict):
        raise ParamsError(f"params.yaml: expected a mapping of keys, got {raw!r}")
    known = [*TOP_LEVEL, *(s for names in SECTIONS.values() for s in names), *SHARED]
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise ParamsError(f"{unknown[0]}: unknown key; allowed keys here: {', '.join(known)}")
    schema = {**TOP_LEVEL, **{k: v for p in pipelines for k, v in p.sections.items()}}
    checked = validate({k: v for k, v in raw.items() if k in schema}, schema)
    for pipeline in pipelines:
        pipeline.relations(checked)
    return checked


class _Yaml12Loader(yaml.SafeLoader):
    """PyYAML reads YAML 1.1, where `4e-3` (no dot) is a string; DVC reads YAML 1.2, where it is
    a number. Read it as DVC does, so params.yaml means the same to both."""


_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."))


def read_yaml(path: str | Path) -> Any:
    path = Path(path)
    try:
        return yaml.load(path.read_text(), Loader=_Yaml12Loader)
    except FileNotFoundError:
        raise ParamsError(f"{path}: file not found") from None
    except yaml.YAMLError as err:
        raise ParamsError(f"{path}: not valid YAML: {err}") from None


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """`base` with `override`'s keys replaced key by key, at every depth (mappings merge, other
    values replace)."""
    merged = dict(base)
    for key, value in override.items():
        merged[key] = merge(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
    return merged


def read_params(paths: str | Path | list) -> Any:
    """params.yaml, and over it (key by key) the files of an experiment's differences. Those hold
    only pipeline sections: seed, T_eval and the experiment lists are params.yaml's alone (every
    experiment shares them; `dvc exp run -S T_eval=40` re-evaluates them all)."""
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    merged = read_yaml(Path(paths[0]))
    if not isinstance(merged, dict):
        raise ParamsError(f"{paths[0]}: expected a mapping of keys, got {merged!r}")
    sections = sorted({s for names in SECTIONS.values() for s in names})
    for path in paths[1:]:
        raw = read_yaml(Path(path))
        if not isinstance(raw, dict):
            raise ParamsError(f"{path}: expected a mapping of sections (an experiment's differences from "
                              f"{paths[0]}), got {raw!r}")
        for key, value in raw.items():
            if key not in sections:
                where = f"only {paths[0]} sets it" if key in (*TOP_LEVEL, *SHARED) else "unknown section"
                raise ParamsError(f"{path}: {key}: {where}; an experiment's file holds only sections: "
                                  f"{', '.join(sections)}")
            if not isinstance(value, dict):
                raise ParamsError(f"{path}: {key}: expected a mapping of the keys that differ ({{}} for none), "
                                  f"got {value!r}")
        merged = merge(merged, raw)
    return merged


def load_params(paths: str | Path | list, *pipelines: Pipeline) -> dict[str, Any]:
    """Read params.yaml (and an experiment's files over it, see read_params) and validate its
    top-level keys and the sections of `pipelines`."""
    return validate_params(read_params(paths), *pipelines)


def check_dataset(params: dict[str, Any], dataset: str, *pipelines: Pipeline) -> None:
    """The constraints of `pipelines` between their keys and the experiment's data set."""
    for pipeline in pipelines:
        pipeline.fits(params, dataset)


def select(params: dict[str, Any], keys: list[str]) -> dict[str, Any]:
    """The flat {dotted.key: value} view of the params a stage declares in dvc.yaml."""
    out = {}
    for dotted in keys:
        node: Any = params
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                raise ParamsError(f"{dotted}: missing key")
            node = node[part]
        out[dotted] = node
    return out
