"""Progress of long loops: a live bar on a terminal, at most one plain line per interval in a log."""

from __future__ import annotations

import io
import sys

from deepsnn.core import progress as progress_module
from deepsnn.core.progress import progress


class FakeClock:
    def __init__(self, step: float):
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def test_a_log_gets_one_line_per_interval_and_no_carriage_returns(monkeypatch):
    err = io.StringIO()  # not a terminal, as under `dvc repro` or CI
    monkeypatch.setattr(sys, "stderr", err)
    monkeypatch.setattr(progress_module.time, "perf_counter", FakeClock(step=1.0))  # 1 s a step
    assert list(progress(range(100), "epoch 1/3", total=100, interval_s=30.0)) == list(range(100))
    lines = err.getvalue().splitlines()
    assert "\r" not in err.getvalue()
    assert len(lines) == 3 and lines[0] == "epoch 1/3: 30/100 (30 s)"  # 100 s of work: at 30, 60 and 90 s


def test_a_short_loop_in_a_log_prints_nothing(monkeypatch):
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    assert sum(progress(range(1000), "fast", total=1000)) == sum(range(1000))
    assert err.getvalue() == ""


def test_a_terminal_gets_the_live_bar(monkeypatch):
    calls = []
    monkeypatch.setattr(progress_module, "on_terminal", lambda: True)
    monkeypatch.setattr(progress_module, "tqdm", lambda items, **kwargs: calls.append(kwargs) or items)
    assert list(progress(range(3), "bar", total=3)) == [0, 1, 2]
    assert calls == [{"desc": "bar", "total": 3, "leave": False}]
