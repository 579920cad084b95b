"""Load and validate params.yaml once, before any data is touched.

Every knob of the pipeline is declared here with its type and allowed values, so a typo or a
bad value fails in the first second of a stage with a message naming the key, the value and
what is allowed, instead of hours later.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from deepsnn.errors import UserError


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


def choice(*options: str) -> Choice:
    return Choice(tuple(options))


def choice_int(*options: int) -> Choice:
    return Choice(tuple(options))


MNIST_FAMILY = ("mnist", "fashion_mnist")  # 1x28x28 grey images, 10 classes
NEURONS = ("if", "lif")
RESETS = ("soft", "hard")  # soft: subtract the threshold; hard: back to 0
SURROGATES = ("atan", "sigmoid", "piecewise_quadratic")

# The whole schema. Top-level scalars first, then one section per stage.
SCHEMA: dict[str, Any] = {
    "seed": Int(min=0),
    "T_eval": Int(min=1),  # headline evaluation timesteps; only evaluation stages read it
    "train_ann": {
        "dataset": choice("cifar10"),
        "activation": choice("qcfs", "relu"),  # qcfs: trainable clip-floor-shift, near-lossless at low T
        "qcfs_levels": Int(min=1),  # L, quantisation levels of qcfs (ignored for relu)
        "qcfs_clip_epochs": Int(min=0),  # first epochs of qcfs train the clip without the floor-shift
        "width": Float(min=0.0, min_open=True),  # multiplies every layer width; 1.0 = VGG-16
        "epochs": Int(min=1),
        "batch_size": Int(min=1),
        "lr": Float(min=0.0, min_open=True),  # peak learning rate (SGD Nesterov, one-cycle)
        "weight_decay": Float(min=0.0),
        "label_smoothing": Float(min=0.0, max=1.0),
        "precision": choice("auto", "fp32", "bf16"),  # auto: bf16 autocast where the hardware has bf16, else fp32
        "compile": Bool(),  # torch.compile the training step (fuses BN + activation; ~40 s to compile)
    },
    "calibrate": {
        "mode": choice("qcfs", "max", "percentile"),  # how each layer's threshold is chosen
        "percentile": Float(min=0.0, max=100.0, min_open=True),  # for mode percentile, in (0, 100]
        "images": Int(min=1),  # training images used for activation statistics
        "batch_size": Int(min=1),
    },
    "convert": {
        "reset": Choice(RESETS),
        "initial_potential": choice("half", "zero"),  # membrane potential at t=0, in thresholds
    },
    "eval_sweep": {
        "horizon": Int(min=1),  # the accuracy-vs-T curve is simulated up to max(horizon, T_eval)
        "batch_size": Int(min=1),
        "compile": Bool(),  # fuse each IF layer's elementwise work with torch.compile
    },
    "train_spatial": {
        "dataset": Choice(MNIST_FAMILY),
        "method": choice("spatial", "bptt"),  # spatial: gradients through spike counts, not time
        "neuron": Choice(NEURONS),
        "reset": Choice(RESETS),
        "surrogate": Choice(SURROGATES),
        "loss": choice("count_ce", "count_mse"),
        "initial_potential": choice("half", "zero"),  # membrane potential at t=0, in thresholds
        "tau": Float(min=1.0),  # LIF membrane time constant, in timesteps (ignored for IF)
        "T_train": Int(min=1),  # timesteps simulated per training image (the centre, with jitter)
        "T_train_jitter": Int(min=0),  # each batch draws T in [T_train - jitter, T_train + jitter]
        "augment_shift": Int(min=0, max=8),  # random translation of training images, in pixels
        "channels": Int(min=1),  # width of the first conv layer; the second has twice as many
        "conv1_kernel": choice_int(3, 5, 7),  # conv1 kernel size (computed once per image)
        "output_population": Int(min=1),  # output neurons per class; a class's score is their spike count
        "epochs": Int(min=1),
        "batch_size": Int(min=1),
        "lr": Float(min=0.0, min_open=True),  # peak learning rate of the one-cycle schedule
        "weight_decay": Float(min=0.0),
    },
    "eval_spatial": {
        "horizon": Int(min=1),  # the accuracy-vs-T curve is simulated up to max(horizon, T_eval)
        "batch_size": Int(min=1),
    },
}


def validate(raw: Any, schema: dict[str, Any] = SCHEMA, prefix: str = "") -> dict[str, Any]:
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


def check_relations(params: dict[str, Any]) -> None:
    """Constraints between keys."""
    ann = params["train_ann"]
    if ann["activation"] == "qcfs" and ann["qcfs_clip_epochs"] >= ann["epochs"]:
        raise ParamsError(f"train_ann.qcfs_clip_epochs: {ann['qcfs_clip_epochs']} must be smaller than "
                          f"train_ann.epochs ({ann['epochs']}), so that the last epochs train the quantised "
                          f"activation the SNN reproduces; allowed: 0 .. {ann['epochs'] - 1}")
    spatial = params["train_spatial"]
    if spatial["T_train_jitter"] >= spatial["T_train"]:
        raise ParamsError(f"train_spatial.T_train_jitter: {spatial['T_train_jitter']} must be smaller than "
                          f"train_spatial.T_train ({spatial['T_train']}); allowed: 0 .. {spatial['T_train'] - 1}")


def load_params(path: str | Path = "params.yaml") -> dict[str, Any]:
    """Read and validate params.yaml."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ParamsError(f"{path}: file not found") from None
    except yaml.YAMLError as err:
        raise ParamsError(f"{path}: not valid YAML: {err}") from None
    params = validate(raw)
    check_relations(params)
    return params


def select(params: dict[str, Any], keys: list[str]) -> dict[str, Any]:
    """The flat {dotted.key: value} view of the params a stage declares in dvc.yaml."""
    out = {}
    for dotted in keys:
        node: Any = params
        for part in dotted.split("."):
            node = node[part]
        out[dotted] = node
    return out
