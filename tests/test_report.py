"""The README's results tables come from metrics/<experiment>/ and `--check` catches a stale README."""

from __future__ import annotations

import json

import pytest
import yaml

from deepsnn import report


def write_metrics(root, experiment, stage, **values):
    folder = root / "metrics" / experiment
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{stage}.json").write_text(json.dumps(values))


@pytest.fixture
def root(tmp_path):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"conversion": ["cifar10"], "direct": ["mnist"]}))
    return tmp_path


def test_results_are_generated_from_each_experiments_metrics(root):
    write_metrics(root, "conversion-cifar10", "eval_sweep", architecture="vgg16", snn_accuracy=91.234,
                  ann_accuracy=92.0, T_eval=32, latency_s_per_sample=0.0123, energy_uj_per_sample=321.0,
                  energy_ratio=0.456, chip_energy_uj_per_sample=1234.5, eval_time_s=60.0)
    for stage, seconds in (("train_ann", 3000.0), ("calibrate", 30.0), ("convert", 90.0), ("simulate_sweep", 1200.0)):
        write_metrics(root, "conversion-cifar10", stage, **{f"{stage}_time_s": seconds})
    text = report.tables(root, root / "params.yaml")
    assert "| conversion-cifar10 (vgg16) | 92.00 | 91.23 | 32 | 12.3 | 321 (0.46×) | 1.23e+03 | 73 |" in text
    assert "| conversion-cifar10 (write-up) |  | ~88.0 | 30–40 |" in text
    assert "| direct-mnist | not run yet |" in text


def test_low_T_rows_show_both_snns_against_the_ann(root):
    values = {"ann_accuracy": 92.5}
    for T, (tuned, plain) in zip((1, 2, 4, 8), ((80.0, 70.0), (88.5, 85.0), (91.0, 90.25), (92.0, 91.9))):
        values |= {f"snn_accuracy_T{T}": tuned, f"snn_loss_T{T}": 92.5 - tuned}
        if T <= 4:
            values |= {f"uncorrected_accuracy_T{T}": plain, f"uncorrected_loss_T{T}": 92.5 - plain}
    write_metrics(root, "conversion-cifar10", "eval_sweep", **values)
    lines = report.low_T_table(root, ["conversion-cifar10"])
    assert "| conversion-cifar10 | ANN | 92.50 | 92.50 | 92.50 | 92.50 |" in lines
    assert "| conversion-cifar10 | SNN (as run) | 80.00 (-12.50) | 88.50 (-4.00) | 91.00 (-1.50) | 92.00 (-0.50) |" in lines
    assert "| conversion-cifar10 | SNN as converted | 70.00 (-22.50) | 85.00 (-7.50) | 90.25 (-2.25) | – |" in lines


def test_chip_rows_show_the_run_or_the_mapping_error(root):
    write_metrics(root, "direct-mnist", "chip", maps=True, images=10, predictions_equal=10, outputs_equal=10, T=32,
                  energy_uj=2200.0, analytic_energy_uj=2150.0, analytic_over_chip=0.977, chip_time_ms=1.5,
                  synaptic_events=70_000_000, neuron_updates=500_000, spikes=60_000, run_s_per_image=17.0,
                  stage_time_s=300.0)
    write_metrics(root, "conversion-cifar10", "chip", maps=False, mapping_error="layer x: too many neurons")
    lines = report.chip_table(root, ["conversion-cifar10", "direct-mnist"])
    assert "| conversion-cifar10 | does not map: layer x: too many neurons |" in "\n".join(lines)
    assert ("| direct-mnist | 10/10 (10) | 32 | 2200 | 2150 (0.977×) | 1.5 | 70,000,000 / 500,000 / 60,000 | 17.0 | 5.0 |"
            in lines)


def test_check_fails_on_a_stale_readme(root):
    readme = root / "README.md"
    readme.write_text(f"intro\n{report.BEGIN}\nold table\n{report.END}\nrest\n")
    args = ["--readme", str(readme), "--root", str(root)]
    with pytest.raises(SystemExit, match="out of date"):
        report.main(args + ["--check"])
    report.main(args)
    assert readme.read_text().startswith("intro\n") and "not run yet" in readme.read_text()
    report.main(args + ["--check"])  # up to date now
