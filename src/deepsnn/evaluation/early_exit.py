"""Per-image early exit (dynamic timesteps): each image stops at the first t where a label-free rule
on its own summed output holds, here that its top class leads the runner-up by at least a margin
(the confidence-based exit of SEENN-I, Li et al., NeurIPS 2023, and of dynamic confidence, Li et
al., ICCV 2023, on the summed output rather than a softmax). An image that never meets it runs to
T_max. Only the steps an image ran count: its spikes and SynOps up to its own exit.

The margin is chosen on held-out training images, never on the test set: the smallest candidate at
which, for at most `tolerance` percent of them, early exit stops before a fixed reference T with an
answer other than the network's own at that T (an image that runs past it only gets later answers).
Answers, not accuracy: the held-out images are the last training images, which
the network was trained on and nearly always gets right at any T, so their accuracy barely moves
with the margin, while the answers that early exit changes are the ones it would change on new images.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from deepsnn.evaluation.energy import SpikeStats, arithmetic_energy_uj

CANDIDATES = 200  # margins tried when choosing one and when drawing the curve (quantiles of the margins seen)


def margins(outputs: torch.Tensor) -> torch.Tensor:
    """[T, N, classes] summed outputs -> [T, N]: the top class's lead over the runner-up after each t."""
    top2 = outputs.topk(2, dim=-1).values
    return top2[..., 0] - top2[..., 1]


def exit_steps(lead: torch.Tensor, margin: float, T_max: int) -> torch.Tensor:
    """[N] the first t (1-based) <= T_max at which an image's lead reaches `margin`, else T_max."""
    reached = lead[:T_max] >= margin
    first = reached.int().argmax(0) + 1  # argmax finds the first True
    return torch.where(reached.any(0), first, torch.full_like(first, T_max))


def exit_predictions(outputs: torch.Tensor, exits: torch.Tensor) -> torch.Tensor:
    """[N] each image's predicted class at its own exit step."""
    return outputs[exits - 1, torch.arange(outputs.shape[1])].argmax(-1)


@dataclass(frozen=True)
class EarlyExit:
    """One margin's result on a set of images."""
    margin: float
    accuracy: float  # percent
    mean_T: float
    p95_T: float
    spikes: float  # per image, up to its exit
    synops: float
    energy_uj: float  # 45 nm arithmetic estimate, up to its exit
    exits: torch.Tensor  # [N] each image's exit step


def early_exit(outputs: torch.Tensor, labels: torch.Tensor, margin: float, T_max: int,
               stats: SpikeStats | None = None) -> EarlyExit:
    """Accuracy and cost of exiting at `margin` (at the latest at T_max) on images with these summed outputs."""
    exits = exit_steps(margins(outputs), margin, T_max)
    correct = exit_predictions(outputs, exits).eq(labels).double().mean().item() * 100
    spikes = synops = energy = float("nan")
    if stats is not None:
        per_spikes, per_synops = stats.until(exits)
        spikes, synops = per_spikes.mean().item(), per_synops.mean().item()
        energy = float(arithmetic_energy_uj(stats.analog_macs, synops))
    return EarlyExit(float(margin), correct, exits.double().mean().item(), exits.double().quantile(0.95).item(),
                     spikes, synops, energy, exits)


def candidate_margins(outputs: torch.Tensor, T_max: int) -> list[float]:
    """Margins worth trying, in increasing order: 0 and quantiles of the leads seen up to T_max."""
    lead = margins(outputs[:T_max]).flatten().double()
    quantiles = torch.quantile(lead, torch.linspace(0, 1, CANDIDATES, dtype=torch.float64)) if len(lead) else lead
    return sorted({0.0, *quantiles.tolist()})


def choose_margin(outputs: torch.Tensor, T_max: int, reference_T: int, tolerance: float) -> float:
    """The smallest candidate margin at which, on these (held-out) images, at most `tolerance` percent
    of them exit before T = `reference_T` with another answer than fixed T = `reference_T` gives; with
    none, the largest candidate (every image then runs to about T_max). Needs no labels."""
    reference_T = min(reference_T, T_max)
    reference = outputs[reference_T - 1].argmax(-1)
    lead = margins(outputs)
    candidates = candidate_margins(outputs, T_max)
    for margin in candidates:
        exits = exit_steps(lead, margin, T_max)
        changed = ((exits < reference_T) & exit_predictions(outputs, exits).ne(reference)).double().mean().item()
        if 100 * changed <= tolerance:
            return margin
    return candidates[-1]


def sweep(outputs: torch.Tensor, labels: torch.Tensor, T_max: int, stats: SpikeStats) -> list[EarlyExit]:
    """Early exit at every candidate margin: the accuracy-against-cost curve."""
    return [early_exit(outputs, labels, m, T_max, stats) for m in candidate_margins(outputs, T_max)]
