"""What the training loops of both pipelines share: device, seeding, batching, augmentation.

Data sets are small enough to live on the device as uint8 tensors (airbench-style): batches are
sliced, augmented and normalised there, with no DataLoader workers.
"""

from __future__ import annotations

import resource
import time
from typing import TYPE_CHECKING, Callable, Iterator

import torch
from torch import nn

from deepsnn.core.progress import progress

if TYPE_CHECKING:
    from deepsnn.core.distributed import Processes


def pick_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def peak_memory_mib(device: torch.device) -> float:
    """This process's peak memory so far, MiB: the CUDA allocator's peak on a GPU; on CPU the peak
    resident set (everything the process held: libraries, data set, model, activations)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def seed_everything(seed: int) -> torch.Generator:
    """Seed torch's global RNG (call before building the model: it draws the initial weights)
    and return a generator for shuffling and augmentation."""
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def batch_indices(n: int, batch_size: int, generator: torch.Generator | None = None) -> Iterator[torch.Tensor]:
    """Index batches over n items: shuffled with `generator`, in order without one."""
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    yield from order.split(batch_size)


def random_translate(images: torch.Tensor, pad: int, generator: torch.Generator) -> torch.Tensor:
    """Shift each image by up to `pad` pixels in x and y (zero fill), independently per image."""
    if pad == 0:
        return images
    b, c, h, w = images.shape
    padded = torch.nn.functional.pad(images, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=generator).to(images.device)
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=generator).to(images.device)
    rows = (dy[:, None] + torch.arange(h, device=images.device))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=images.device))[:, None, None, :]
    return padded[torch.arange(b, device=images.device)[:, None, None, None],
                  torch.arange(c, device=images.device)[None, :, None, None], rows, cols]


def random_flip(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Mirror each image left-right with probability 1/2."""
    flip = (torch.rand(len(images), generator=generator) < 0.5).to(images.device)
    return torch.where(flip.view(-1, 1, 1, 1), images.flip(3), images)


def augment(images: torch.Tensor, shift: int, flips: bool, generator: torch.Generator) -> torch.Tensor:
    """A training batch's augmentation: random shifts by up to `shift` pixels (zero fill: random
    crops of the padded image), then left-right mirroring where the data set allows it (its
    `flips`). No random draws for what is switched off, so a run without flips is unchanged."""
    images = random_translate(images, pad=shift, generator=generator)
    return random_flip(images, generator) if flips else images


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 pixels -> [0, 1] floats (the first layer's BatchNorm does the normalisation)."""
    return images.float().div_(255.0)


# One training step on the batch with these indices: (loss summed over the batch, correct, images),
# this rank's part of the batch
TrainStep = Callable[[torch.Tensor], tuple[float, float, float]]


def train_epochs(model: nn.Module, name: str, epochs: int, n: int, batch_size: int, generator: torch.Generator,
                 processes: Processes, train_step: TrainStep, test_accuracy: Callable[[], float],
                 steps_per_epoch: int | None = None, before_epoch: Callable[[int], None] | None = None,
                 progress_enabled: bool = True) -> list[dict[str, float]]:
    """The epoch loop of both training stages: each epoch shuffles the n training images with
    `generator`, runs `train_step` on every batch (only the first `steps_per_epoch`, if given),
    sums the statistics over the ranks and measures `test_accuracy()`. Returns one row per epoch
    (counting every rank's images); the writer rank prints one line per epoch."""
    steps = steps_per_epoch or -(-n // batch_size)
    show = progress_enabled and processes.is_writer
    history = []
    for epoch in range(1, epochs + 1):
        model.train()
        if before_epoch is not None:
            before_epoch(epoch)
        start = time.perf_counter()
        loss_sum = correct = seen = 0.0
        batches = zip(range(steps), batch_indices(n, batch_size, generator))
        for _, idx in progress(batches, f"{name} epoch {epoch}/{epochs}", total=steps, enabled=show):
            batch_loss, batch_correct, batch_seen = train_step(idx)
            loss_sum, correct, seen = loss_sum + batch_loss, correct + batch_correct, seen + batch_seen
        train_time = time.perf_counter() - start
        loss_sum, correct, seen = processes.sum([loss_sum, correct, seen])
        row = {"epoch": epoch, "train_loss": loss_sum / seen, "train_accuracy": 100 * correct / seen,
               "test_accuracy": test_accuracy(), "epoch_time_s": train_time}
        history.append(row)
        if show:
            print(f"{name} epoch {epoch}: loss {row['train_loss']:.4f}, train {row['train_accuracy']:.2f}%, "
                  f"test {row['test_accuracy']:.2f}% ({train_time:.0f} s)", flush=True)
    return history
