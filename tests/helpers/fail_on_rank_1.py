"""Run stages/train_spatial.py, but make rank 1 raise at its second training step (a rank that
fails half-way, for tests/test_distributed.py). Arguments are the stage's."""

import os
import runpy
import sys
from pathlib import Path

import deepsnn.direct.training as training

if os.environ.get("RANK") == "1":
    loss, calls = training.spike_count_loss, []

    def failing_loss(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("injected failure on rank 1")
        return loss(*args, **kwargs)

    training.spike_count_loss = failing_loss

sys.argv = ["train_spatial.py", *sys.argv[1:]]
runpy.run_path(str(Path(__file__).resolve().parents[2] / "stages" / "train_spatial.py"), run_name="__main__")
