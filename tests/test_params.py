"""params.yaml validation: every kind of bad value fails with the key, the value and what is allowed."""

from __future__ import annotations

import copy

import pytest
import yaml

from conftest import REPO, committed_params, write_params
from deepsnn.conversion.params import CONVERSION
from deepsnn.core.params import ParamsError, load_params, validate_params
from deepsnn.direct.params import DIRECT


def test_committed_params_are_valid():
    params = load_params("params.yaml", CONVERSION, DIRECT)
    assert params["T_eval"] >= 1 and "T_eval" not in params["train_spatial"]


def with_change(path: str, value, delete: bool = False) -> dict:
    params = copy.deepcopy(committed_params())
    node = params
    *parents, last = path.split(".")
    for part in parents:
        node = node[part]
    if delete:
        del node[last]
    else:
        node[last] = value
    return params


@pytest.mark.parametrize("path, value, expected", [
    ("T_eval", 0, r"T_eval: 0 is out of range; allowed: integers in \[1, inf\]"),
    ("T_eval", -3, r"T_eval: -3 is out of range"),
    ("T_eval", "32", r"T_eval: expected an integer, got '32'"),
    ("T_eval", 32.0, r"T_eval: expected an integer"),
    ("seed", True, r"seed: expected an integer, got True"),
    ("train_spatial.T_train", 0, r"train_spatial.T_train: 0 is out of range"),
    ("train_spatial.neuron", "izhikevich", r"train_spatial.neuron: 'izhikevich' is not allowed; allowed: if, lif"),
    ("train_spatial.method", "tbptt", r"train_spatial.method: 'tbptt' is not allowed; allowed: spatial, bptt"),
    ("train_spatial.dataset", "cifar100", r"allowed: mnist, fashion_mnist"),
    ("train_spatial.architecture", "resnet18", r"train_spatial.architecture: 'resnet18' is not allowed; allowed: cnn3, vgg7"),
    ("train_spatial.lr", 0, r"train_spatial.lr: 0.0 is out of range; allowed: numbers in \(0.0, inf\]"),
    ("train_spatial.lr", "fast", r"train_spatial.lr: expected a number"),
    ("train_spatial.extra_knob", 1, r"train_spatial.extra_knob: unknown key; allowed keys here: dataset, "),
    ("T_evaluation", 40, r"T_evaluation: unknown key"),
    ("eval_spatial", [1, 2], r"eval_spatial: expected a mapping"),
])
def test_bad_values_are_named(path, value, expected):
    with pytest.raises(ParamsError, match=expected):
        validate_params(with_change(path, value), CONVERSION, DIRECT)


@pytest.mark.parametrize("path, expected", [
    ("eval_spatial", "eval_spatial: missing section"),
    ("T_eval", "T_eval: missing key"),
    ("train_spatial.epochs", "train_spatial.epochs: missing key"),
])
def test_missing_keys_are_named(path, expected):
    with pytest.raises(ParamsError, match=expected):
        validate_params(with_change(path, None, delete=True), CONVERSION, DIRECT)


def test_bad_yaml_and_missing_file(tmp_path):
    bad = tmp_path / "params.yaml"
    bad.write_text("seed: [unclosed\n")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(bad)
    with pytest.raises(ParamsError, match="file not found"):
        load_params(tmp_path / "nope.yaml")


def test_stage_rejects_bad_params_before_touching_data(tmp_path):
    """The data path does not exist: a params error must come first, as one clean line."""
    from deepsnn.core import cli
    from stages import train_spatial

    params = write_params(tmp_path / "params.yaml", **{"train_spatial.T_train": 0})
    argv = ["--params", str(params), "--data", str(tmp_path / "missing.pt"), "--model", str(tmp_path / "m.pt"),
            "--curve", str(tmp_path / "c.csv"), "--metrics", str(tmp_path / "m.json")]
    with pytest.raises(SystemExit) as exit_info:
        cli.run(lambda: train_spatial.main(argv))
    assert exit_info.value.code.startswith("error: train_spatial.T_train: 0 is out of range")
    assert not (tmp_path / "m.pt").exists()


def test_jitter_must_leave_T_positive(tmp_path):
    params = write_params(tmp_path / "params.yaml", **{"train_spatial.T_train": 4, "train_spatial.T_train_jitter": 4})
    with pytest.raises(ParamsError, match=r"train_spatial.T_train_jitter: 4 must be smaller than train_spatial.T_train"):
        load_params(params, DIRECT)


def test_a_later_params_file_replaces_whole_top_level_keys(tmp_path):
    """`--params A B`: B's top-level keys replace A's (whole sections), so an experiment file can
    hold just the sections it changes and share everything else, T_eval included."""
    root = write_params(tmp_path / "params.yaml", T_eval=40)
    sections = yaml.safe_load(root.read_text())
    over = tmp_path / "over.yaml"
    over.write_text(yaml.safe_dump({"train_spatial": {**sections["train_spatial"], "dataset": "fashion_mnist"}}))
    merged = load_params([root, over], CONVERSION, DIRECT)
    assert merged["T_eval"] == 40 and merged["train_spatial"]["dataset"] == "fashion_mnist"
    assert merged["train_ann"] == sections["train_ann"]
    with pytest.raises(ParamsError, match="seed: missing key"):  # B alone is not a whole params file
        load_params(over, CONVERSION, DIRECT)


def test_comparison_params_read_over_the_root_ones_share_T_eval(tmp_path):
    root = write_params(tmp_path / "params.yaml", T_eval=40)
    merged = load_params([root, REPO / "comparison" / "params.yaml"], CONVERSION, DIRECT)
    assert merged["T_eval"] == 40
    assert (merged["train_ann"]["dataset"], merged["train_ann"]["architecture"]) == ("mnist", "cnn3")
    assert (merged["train_spatial"]["dataset"], merged["train_spatial"]["architecture"]) == ("cifar10", "vgg7")
    with pytest.raises(ParamsError, match="T_eval: missing key"):  # it is the root's to set
        load_params(REPO / "comparison" / "params.yaml", CONVERSION, DIRECT)
