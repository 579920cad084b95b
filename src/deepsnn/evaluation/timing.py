"""Wall-clock timing of simulations, and what a timing was measured on."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import torch


class Clock(list):
    """Cumulative step times of one batch: call tick() after each step."""

    def __init__(self, device: torch.device):
        super().__init__()
        self.device = device
        self.start = time.perf_counter()

    def tick(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.append(time.perf_counter() - self.start)


def hardware(device: torch.device) -> str:
    """What a timing was measured on, e.g. "cpu: AMD EPYC, 2 threads" or "cuda: NVIDIA H200"."""
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"cpu: {model}, {torch.get_num_threads()} threads"


@torch.no_grad()
def measure_latency(simulator: Callable[..., torch.Tensor], images: torch.Tensor, T: int, device: torch.device,
                    prepare: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """[T] wall-clock seconds per sample to reach each t = 1..T, simulating one batch `images`
    (after one untimed step, so one-off start-up costs such as compilation are not counted)."""
    x = prepare(images.to(device))
    simulator(x, 1)
    clock = Clock(device)
    simulator(x, T, clock=clock)
    return torch.tensor(clock, dtype=torch.float64) / len(x)
