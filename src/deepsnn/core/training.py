"""What the training loops of both pipelines share: device, seeding, batching, augmentation.

Data sets are small enough to live on the device as uint8 tensors (airbench-style): batches are
sliced, augmented and normalised there, with no DataLoader workers.
"""

from __future__ import annotations

from typing import Iterator

import torch



def pick_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


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


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 pixels -> [0, 1] floats (the first layer's BatchNorm does the normalisation)."""
    return images.float().div_(255.0)
