"""params.yaml validation: every kind of bad value fails with the key, the value and what is allowed."""

from __future__ import annotations

import copy

import pytest
import yaml

from conftest import REPO, committed_params, write_params
from deepsnn.conversion.params import CONVERSION
from deepsnn.core.params import SECTIONS, ParamsError, check_dataset, load_params, validate_params
from deepsnn.evaluation.direct import DIRECT


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
    ("conversion", "cifar10", r"conversion: expected a list of data set names"),
    ("train_spatial.architecture", "resnet18", r"train_spatial.architecture: 'resnet18' is not allowed; allowed: cnn3, vgg7"),
    ("train_spatial.lr", 0, r"train_spatial.lr: 0.0 is out of range; allowed: numbers in \(0.0, inf\]"),
    ("train_spatial.lr", "fast", r"train_spatial.lr: expected a number"),
    ("train_spatial.extra_knob", 1, r"train_spatial.extra_knob: unknown key; allowed keys here: architecture, "),
    ("T_evaluation", 40, r"T_evaluation: unknown key"),
    ("eval_spatial", [1, 2], r"eval_spatial: expected a mapping"),
    ("eval_spatial.early_exit_margin", "soon", r"eval_spatial.early_exit_margin: 'soon' is not allowed; allowed: numbers in \[0.0, inf\] or auto"),
    ("simulate_sweep.temporal_coding", "burst", r"simulate_sweep.temporal_coding: 'burst' is not allowed; allowed: none, few_spikes"),
])
def test_bad_values_are_named(path, value, expected):
    with pytest.raises(ParamsError, match=expected):
        validate_params(with_change(path, value), CONVERSION, DIRECT)


@pytest.mark.parametrize("path, expected", [
    ("eval_spatial", "eval_spatial: missing section"),
    ("simulate_spatial.max_hours", "simulate_spatial.max_hours: missing key"),
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


def test_an_experiment_file_is_merged_key_by_key(tmp_path):
    """`--params params.yaml experiments/x.yaml`: x's keys replace params.yaml's one by one, at any
    depth, so an experiment's file lists only what differs; T_eval and seed stay params.yaml's."""
    root = write_params(tmp_path / "params.yaml", T_eval=40)
    over = tmp_path / "over.yaml"
    over.write_text(yaml.safe_dump({"train_spatial": {"architecture": "vgg7", "epochs": 2}, "eval_spatial": {}}))
    merged = load_params([root, over], CONVERSION, DIRECT)
    defaults = yaml.safe_load(root.read_text())
    assert merged["T_eval"] == 40 and merged["train_spatial"]["architecture"] == "vgg7"
    assert merged["train_spatial"]["epochs"] == 2
    assert {k: v for k, v in merged["train_spatial"].items() if k not in ("architecture", "epochs")} == \
        {k: v for k, v in defaults["train_spatial"].items() if k not in ("architecture", "epochs")}
    assert merged["eval_spatial"] == defaults["eval_spatial"]


@pytest.mark.parametrize("content, expected", [
    ({"T_eval": 40}, r"over.yaml: T_eval: only .*params.yaml sets it"),
    ({"seed": 1}, r"over.yaml: seed: only .*params.yaml sets it"),
    ({"chip": {}}, r"over.yaml: chip: only .*params.yaml sets it"),
    ({"train_spatail": {}}, r"over.yaml: train_spatail: unknown section; an experiment's file holds only sections"),
    ({"train_spatial": 3}, r"over.yaml: train_spatial: expected a mapping of the keys that differ"),
    ({"train_spatial": {"epoch": 3}}, r"train_spatial.epoch: unknown key"),
])
def test_bad_experiment_files_are_named(tmp_path, content, expected):
    over = tmp_path / "over.yaml"
    over.write_text(yaml.safe_dump(content))
    with pytest.raises(ParamsError, match=expected):
        load_params([REPO / "params.yaml", over], CONVERSION, DIRECT)


def test_the_committed_experiments_are_valid():
    params = committed_params()
    for pipeline, schema in (("conversion", CONVERSION), ("direct", DIRECT)):
        for dataset in params[pipeline]:
            merged = load_params([REPO / "params.yaml", REPO / "experiments" / f"{pipeline}-{dataset}.yaml"], schema)
            check_dataset(merged, dataset, schema)


def experiments_stage(tmp_path, params: dict, files: dict[str, dict]) -> dict:
    from stages import experiments

    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    folder = tmp_path / "experiments"
    folder.mkdir()
    for name, content in files.items():
        (folder / name).write_text(yaml.safe_dump(content))
    return experiments.check_experiments(tmp_path / "params.yaml", folder)


ALL_SECTIONS = {"conversion-cifar10.yaml": dict.fromkeys(SECTIONS["conversion"], {}),
                "direct-mnist.yaml": dict.fromkeys(SECTIONS["direct"], {})}


def test_the_experiments_stage_lists_experiments_and_data_sets(tmp_path):
    params = {**committed_params(), "conversion": ["cifar10"], "direct": ["mnist"]}
    listed = experiments_stage(tmp_path, params, ALL_SECTIONS)
    assert listed == {"conversion": ["cifar10"], "direct": ["mnist"], "datasets": ["cifar10", "mnist"]}


@pytest.mark.parametrize("change, files, expected", [
    ({"learning_rate": 0.1}, ALL_SECTIONS, r"learning_rate: unknown key; allowed keys here: seed, T_eval, conversion"),
    ({"direct": ["mnist", "cifar100"]}, ALL_SECTIONS, r"direct: 'cifar100' is not a data set; allowed: mnist"),
    ({"direct": ["mnist", "mnist"]}, ALL_SECTIONS, r"names a data set twice"),
    ({"direct": ["mnist", "cifar10"]}, ALL_SECTIONS, r"direct-cifar10.yaml must exist"),
    ({}, {**ALL_SECTIONS, "direct-mnist.yaml": {"train_spatial": {}, "eval_spatial": {}}},
     r"direct-mnist.yaml: missing section simulate_spatial \(dvc.yaml's stages declare it; write `simulate_spatial: \{\}`"),
])
def test_the_experiments_stage_refuses_what_no_other_stage_would_see(tmp_path, change, files, expected):
    """An unknown top-level key is declared by no stage but `experiments`, which declares the whole file."""
    params = {**committed_params(), "conversion": ["cifar10"], "direct": ["mnist"], **change}
    with pytest.raises(ParamsError, match=expected):
        experiments_stage(tmp_path, params, files)
