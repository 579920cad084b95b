"""Accuracy against timesteps: one simulation gives the whole curve.

A simulator is any function `(images, T, clock) -> per-step outputs [T, B, classes]`; it appends
the wall-clock time of each finished step to `clock`. The prediction after t steps is the
class with the largest accumulated output, so one run to T_max yields the prediction of every
sample at every t (kept as a [T_max, N] table, from which any T <= T_max is read off).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from tqdm import tqdm  # noqa: E402

from deepsnn.data import ImageDataset  # noqa: E402
from deepsnn.energy import SpikeCounter, SpikeStats, SpikingLayer  # noqa: E402
from deepsnn.io import atomic_path, atomic_save, write_json  # noqa: E402

Simulator = Callable[..., torch.Tensor]  # (images, T, clock=None, counter=None) -> [T, B, classes]


@dataclass
class Simulation:
    predictions: torch.Tensor  # [T, N] uint8: predicted class after t+1 steps
    seconds: torch.Tensor  # [T] float64: wall-clock to finish step t+1, summed over batches
    batch_size: int
    device: str
    spikes: dict | None = None  # SpikeCounter.state() of the run, if counted
    extra: dict = field(default_factory=dict)  # what else the stage wants kept (e.g. ANN accuracy, MACs)
    fingerprint: str = ""  # what produced it: inputs' bytes, settings, code (see `fingerprint`)

    @property
    def num_samples(self) -> int:
        return self.predictions.shape[1]

    @property
    def T(self) -> int:
        return self.predictions.shape[0]

    def truncated(self, T: int) -> Simulation:
        spikes = None if self.spikes is None else {
            **self.spikes, "spikes": self.spikes["spikes"][:, :T], "synops": self.spikes["synops"][:, :T]}
        return replace(self, predictions=self.predictions[:T], seconds=self.seconds[:T], spikes=spikes)

    def stats(self) -> SpikeStats:
        return SpikeStats.from_state(self.spikes, self.num_samples, self.extra["analog_macs"], self.extra["ann_macs"])


def fingerprint(files: list[str | Path], settings: dict) -> str:
    """sha256 over the bytes of `files`, the `settings` and this package's source code: equal
    fingerprints mean a stored simulation is still the simulation these inputs would give."""
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    package = Path(__file__).parent
    for path in [*map(Path, files), *sorted(package.glob("*.py"))]:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def save_simulation(sim: Simulation, path: str | Path) -> None:
    atomic_save(asdict(sim), path)


def simulate_or_reuse(path: str | Path, key: str, T: int, run: Callable[[], Simulation]) -> tuple[Simulation, bool]:
    """The stored simulation at `path` if it is valid for `key` and T, else `run()` (then stored).
    Returns it and whether it was reused."""
    sim = load_simulation(path, key, T)
    if sim is not None:
        print(f"reusing the stored simulation {path} (same model, data, settings and code; {sim.T} steps)")
        return sim, True
    sim = run()
    sim.fingerprint = key
    save_simulation(sim, path)
    return sim, False


def load_simulation(path: str | Path, key: str, T: int) -> Simulation | None:
    """The simulation stored at `path`, cut to T steps, if it has this fingerprint and at least T
    steps; None otherwise (then the caller simulates again, up to the new T)."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        sim = Simulation(**torch.load(path, map_location="cpu", weights_only=True))
    except Exception:  # unreadable or from an older layout: simulate again
        return None
    if sim.fingerprint != key or sim.T < T:
        return None
    return sim.truncated(T)


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


def predictions_from_steps(step_outputs: torch.Tensor) -> torch.Tensor:
    """[T, B, K] per-step outputs -> [T, B] class with the largest running sum (lowest index on ties)."""
    return step_outputs.cumsum(0).argmax(-1)


@torch.no_grad()
def simulate_dataset(simulator: Simulator, images: torch.Tensor, T: int, batch_size: int,
                     device: torch.device, prepare: Callable[[torch.Tensor], torch.Tensor],
                     desc: str = "simulate", counter: SpikeCounter | None = None) -> Simulation:
    """Run `simulator` for T steps over all `images` (uint8, batched, `prepare`d on device),
    counting spikes into `counter` if given."""
    predictions = torch.empty(T, len(images), dtype=torch.uint8)
    seconds = torch.zeros(T, dtype=torch.float64)
    for start in tqdm(range(0, len(images), batch_size), desc=desc, leave=False):
        x = prepare(images[start:start + batch_size].to(device))
        clock = Clock(device)
        steps = simulator(x, T, clock=clock, counter=counter)
        predictions[:, start:start + len(x)] = predictions_from_steps(steps).to(torch.uint8).cpu()
        seconds += torch.tensor(clock, dtype=torch.float64)
    return Simulation(predictions, seconds, batch_size, device.type,
                      spikes=None if counter is None else counter.state())


@torch.no_grad()
def measure_latency(simulator: Simulator, images: torch.Tensor, T: int, device: torch.device,
                    prepare: Callable[[torch.Tensor], torch.Tensor]) -> float:
    """Wall-clock seconds per sample to simulate T steps of one batch `images` (after one
    untimed step, so one-off start-up costs are not counted)."""
    x = prepare(images.to(device))
    simulator(x, 1)
    clock = Clock(device)
    simulator(x, T, clock=clock)
    return clock[-1] / len(x)


def simulate_test_set(simulator: Simulator, spiking_layers: list[SpikingLayer], data: ImageDataset,
                      prepare: Callable[[torch.Tensor], torch.Tensor], cfg: dict, T_eval: int,
                      device: torch.device, inputs: list[Path], stored: Path, desc: str,
                      extra: Callable[[], dict]) -> tuple[Simulation, bool, float]:
    """What both evaluation stages do: the test set simulated to max(horizon, T_eval) with spikes
    counted (or read off the simulation stored at `stored` if it is still valid for `inputs`, the
    batch size, the device and the code), then latency at T_eval measured on the first batch.
    `extra()` adds what the stage wants kept with a new simulation (MACs, ANN accuracy).
    Returns the simulation, whether it was reused, and the latency in seconds per sample."""
    T_max = max(cfg["horizon"], T_eval)

    def run() -> Simulation:
        counter = SpikeCounter(spiking_layers, T_max)
        sim = simulate_dataset(simulator, data.test_images, T_max, cfg["batch_size"], device, prepare,
                               desc=f"{desc} T<={T_max}", counter=counter)
        sim.extra = extra()
        return sim

    key = fingerprint(inputs, {"batch_size": cfg["batch_size"], "device": device.type})
    sim, reused = simulate_or_reuse(stored, key, T_max, run)
    latency = measure_latency(simulator, data.test_images[:cfg["batch_size"]], T_eval, device, prepare)
    return sim, reused, latency


def accuracy_curve(predictions: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """[T, N] predictions -> [T] accuracy in percent."""
    return (predictions.long() == labels.view(1, -1)).double().mean(1) * 100.0


def curve_table(sim: Simulation, labels: torch.Tensor) -> pd.DataFrame:
    """Tidy table per T: accuracy (%), latency (wall-clock seconds per sample to reach T in the
    full simulation), SynOps and estimated energy per sample to reach T."""
    stats = sim.stats()
    return pd.DataFrame({
        "T": range(1, sim.T + 1),
        "accuracy": accuracy_curve(sim.predictions, labels).numpy().round(4),
        "latency_s_per_sample": (sim.seconds / sim.num_samples).numpy(),
        "synops_per_sample": stats.synops_per_sample(sim.T).numpy(),
        "energy_uj_per_sample": stats.energy_uj_per_sample(sim.T).numpy(),
    })


def write_csv(table: pd.DataFrame, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")


def _save_png(fig, path: str | Path) -> None:
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def plot_accuracy_vs_T(table: pd.DataFrame, path: str | Path, title: str, T_eval: int,
                       reference: tuple[str, float] | None = None) -> None:
    """PNG of accuracy against T, with the T_eval point marked and an optional reference line."""
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    ax.plot(table["T"], table["accuracy"], marker=".", label="SNN")
    at = table.loc[table["T"] == T_eval, "accuracy"]
    if len(at):
        ax.scatter([T_eval], [at.iloc[0]], color="C3", zorder=3, label=f"T_eval={T_eval}: {at.iloc[0]:.2f}%")
    if reference is not None:
        ax.axhline(reference[1], color="gray", linestyle="--", label=f"{reference[0]}: {reference[1]:.2f}%")
    low = max(0.0, min(table["accuracy"].quantile(0.25), reference[1] if reference else 100) - 5)
    ax.set_ylim(low, 100)
    ax.set_xlabel("timesteps T")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    _save_png(fig, path)


def plot_spikes_and_energy(table: pd.DataFrame, layers: pd.DataFrame, path: str | Path, title: str,
                           T_eval: int, ann: tuple[float, float] | None = None) -> None:
    """PNG: firing rate per spiking layer at T_eval, and accuracy against energy per sample over T
    (with the ANN's point, (energy, accuracy), if given)."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4), dpi=120)
    left.barh(layers["layer"], layers["firing_rate"], color="C0")
    left.invert_yaxis()
    left.set_xlabel(f"firing rate at T={T_eval} (spikes per neuron per timestep)")
    left.set_title("Firing rate per layer")
    left.grid(alpha=0.3, axis="x")
    right.plot(table["energy_uj_per_sample"], table["accuracy"], marker=".", label="SNN, T = 1, 2, ...")
    at = table.loc[table["T"] == T_eval]
    if len(at):
        right.scatter(at["energy_uj_per_sample"], at["accuracy"], color="C3", zorder=3, label=f"T_eval={T_eval}")
    if ann is not None:
        right.scatter([ann[0]], [ann[1]], color="gray", marker="s", zorder=3, label="ANN")
    right.set_xscale("log")
    right.set_ylim(max(0.0, table["accuracy"].quantile(0.25) - 5), 100)
    right.set_xlabel("estimated energy per sample (µJ, 45 nm)")
    right.set_ylabel("test accuracy (%)")
    right.set_title("Accuracy against energy")
    right.grid(alpha=0.3)
    right.legend(loc="lower right")
    fig.suptitle(title)
    _save_png(fig, path)


def add_output_args(parser) -> None:
    """What every evaluation stage reads back and writes."""
    parser.add_argument("--simulation", type=Path, required=True,
                        help="stored simulation (per-sample predictions at every t): reused when still valid")
    parser.add_argument("--metrics", type=Path, required=True, help="metrics JSON to write")
    parser.add_argument("--curve", type=Path, required=True, help="CSV to write: per T accuracy, latency, energy")
    parser.add_argument("--layers", type=Path, required=True, help="CSV to write: spike statistics per layer")
    parser.add_argument("--plot", type=Path, required=True, help="PNG to write: accuracy vs T")
    parser.add_argument("--energy-plot", type=Path, required=True, help="PNG to write: firing rates, accuracy vs energy")


def write_evaluation(sim: Simulation, labels: torch.Tensor, T_eval: int, latency: float, args, title: str,
                     accuracy_key: str, started: float, device: torch.device, reused: bool,
                     extra: dict | None = None, reference: tuple[str, float] | None = None) -> float:
    """Write the curve and layer CSVs, the PNGs and the flat metrics JSON of one evaluation;
    returns the accuracy at T_eval. Metric keys do not depend on T, so `dvc metrics diff` lines up."""
    table = curve_table(sim, labels)
    stats = sim.stats()
    layers = pd.DataFrame(stats.layer_table(T_eval))
    at_T_eval = table.iloc[T_eval - 1]
    energy = stats.metrics(T_eval)
    write_csv(table, args.curve)
    write_csv(layers, args.layers)
    plot_accuracy_vs_T(table, args.plot, title, T_eval, reference=reference)
    ann_point = (energy["ann_energy_uj_per_sample"], reference[1]) if reference else None
    plot_spikes_and_energy(table, layers, args.energy_plot, title, T_eval, ann=ann_point)
    write_json({
        **(extra or {}),
        accuracy_key: round(float(at_T_eval["accuracy"]), 4),
        "T_eval": T_eval,
        "latency_s_per_sample": float(f"{latency:.4g}"),
        "latency_batch_size": min(sim.batch_size, sim.num_samples),
        "device": sim.device,
        "hardware": hardware(device),
        "test_samples": sim.num_samples,
        **energy,
        "simulated_T": sim.T,
        "simulation_time_s": round(float(sim.seconds[-1]), 1),
        "simulation_reused": reused,
        "eval_time_s": round(time.perf_counter() - started, 1),
    }, args.metrics)
    print(f"{accuracy_key} {at_T_eval['accuracy']:.2f}% at T_eval={T_eval}; {latency * 1e3:.3f} ms/sample "
          f"on {sim.device}; {energy['energy_uj_per_sample']:.3g} µJ/sample "
          f"({energy['energy_ratio']:.3g} of the ANN's)")
    return float(at_T_eval["accuracy"])
