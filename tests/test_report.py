"""The README's results table comes from metrics/ and `--check` catches a stale README."""

from __future__ import annotations

import json

import pytest

from deepsnn import report


def write_metrics(directory, name, **values):
    directory.mkdir(exist_ok=True)
    (directory / f"{name}.json").write_text(json.dumps(values))


def test_table_is_generated_from_the_metrics_files(tmp_path):
    metrics = tmp_path / "metrics"
    write_metrics(metrics, "eval_sweep", snn_accuracy=91.234, ann_accuracy=92.0, T_eval=32, latency_s_per_sample=0.0123,
                  energy_uj_per_sample=321.0, energy_ratio=0.456, hardware="cpu: X, 2 threads", device="cpu",
                  latency_batch_size=250, test_samples=10000, eval_time_s=600.0, simulation_time_s=590.0)
    for name, seconds in (("train_ann", 3000.0), ("calibrate", 30.0), ("convert", 6.0)):
        write_metrics(metrics, name, **{f"{name}_time_s": seconds})
    table = report.results_table(metrics)
    row = next(line for line in table.splitlines() if line.startswith("| ANN-to-SNN") and "this repo" in line)
    assert "| 91.23 (ANN 92.00) | 32 | 0.0123 | 321 (0.46× the ANN's) |" in row
    assert "train_ann 50.0 + calibrate 0.5 + convert 0.1 + eval_sweep 10.0 min" in row
    assert "cpu: X, 2 threads; latency at batch 250" in row
    assert "| Spatial backprop (3-layer CNN, MNIST) | this repo | not run yet |" in table
    assert report.low_T_table(metrics) == "Conversion at low T: not run yet."


def test_low_T_table_shows_both_snns_against_the_ann(tmp_path):
    metrics = tmp_path / "metrics"
    values = {"ann_accuracy": 92.5}
    for T, (corrected, plain) in zip((1, 2, 4, 8), ((80.0, 70.0), (88.5, 85.0), (91.0, 90.25), (92.0, 91.9))):
        values |= {f"snn_accuracy_T{T}": corrected, f"snn_loss_T{T}": 92.5 - corrected}
        if T <= 4:
            values |= {f"uncorrected_accuracy_T{T}": plain, f"uncorrected_loss_T{T}": 92.5 - plain}
    write_metrics(metrics, "eval_sweep", **values)
    table = report.low_T_table(metrics)
    assert "| ANN (reference) | 92.50 | 92.50 | 92.50 | 92.50 |" in table
    assert "| SNN, corrected (convert.correction) | 80.00 (-12.50) | 88.50 (-4.00) | 91.00 (-1.50) | 92.00 (-0.50) |" in table
    assert "| SNN without correction | 70.00 (-22.50) | 85.00 (-7.50) | 90.25 (-2.25) | not simulated |" in table


def test_check_fails_on_a_stale_readme(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{report.BEGIN}\nold table\n{report.END}\nrest\n")
    args = ["--readme", str(readme), "--root", str(tmp_path / "none")]
    with pytest.raises(SystemExit, match="out of date"):
        report.main(args + ["--check"])
    report.main(args)
    assert readme.read_text().startswith("intro\n") and "not run yet" in readme.read_text()
    report.main(args + ["--check"])  # up to date now
