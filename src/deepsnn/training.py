"""Training the directly trained SNN, and what training loops share: device, seeding, batching.

Data sets are small enough to live on the device as uint8 tensors (airbench-style): batches are
sliced, augmented and normalised there, with no DataLoader workers.
"""

from __future__ import annotations

import time
from typing import Any, Iterator

import torch
from torch import nn
from tqdm import tqdm

from deepsnn.data import ImageDataset
from deepsnn.spatial import SpikingCNN, spike_count_loss


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


def training_timesteps(T_train: int, jitter: int, generator: torch.Generator) -> int:
    """T for one batch: uniform in [T_train - jitter, T_train + jitter]. Seeing several T in
    training keeps the network from tuning itself to one T's quantisation, so accuracy holds
    up when it is evaluated at larger T."""
    if jitter == 0:
        return T_train
    return T_train - jitter + int(torch.randint(0, 2 * jitter + 1, (1,), generator=generator))


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 pixels -> [0, 1] floats (the first layer's BatchNorm does the normalisation)."""
    return images.float().div_(255.0)


def train_spatial(model: SpikingCNN, data: ImageDataset, cfg: dict[str, Any], generator: torch.Generator,
                  device: torch.device, progress: bool = True, eval_images: int = 2000) -> list[dict[str, float]]:
    """Train `model` with cfg = params.yaml's train_spatial section; `generator` drives shuffling
    and augmentation. Returns one row per epoch; its test accuracy (at T_train) uses the first
    `eval_images` test images, to keep the curve cheap (eval_spatial measures the full set)."""
    model.to(device)
    train_x, train_y = data.train_images.to(device), data.train_labels.to(device)
    steps_per_epoch = -(-len(train_y) // cfg["batch_size"])
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg["lr"], pct_start=0.15,
                                                   total_steps=cfg["epochs"] * steps_per_epoch)
    history = []
    for epoch in range(1, cfg["epochs"] + 1):
        model.train()
        start = time.perf_counter()
        loss_sum = correct = seen = 0.0
        bar = tqdm(batch_indices(len(train_y), cfg["batch_size"], generator), total=steps_per_epoch,
                   desc=f"train_spatial epoch {epoch}/{cfg['epochs']}", disable=not progress, leave=False)
        for idx in bar:
            x = random_translate(to_float(train_x[idx]), pad=cfg["augment_shift"], generator=generator)
            T = training_timesteps(cfg["T_train"], cfg["T_train_jitter"], generator)
            counts = model(x, T, method=cfg["method"])
            loss = spike_count_loss(counts, train_y[idx], T * model.max_count_per_step, cfg["loss"])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            loss_sum += loss.item() * len(idx)
            correct += (counts.argmax(1) == train_y[idx]).sum().item()
            seen += len(idx)
            bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{100 * correct / seen:.2f}")
        train_time = time.perf_counter() - start
        test_acc = accuracy(model, data.test_images[:eval_images], data.test_labels[:eval_images],
                            cfg["T_train"], device)
        row = {"epoch": epoch, "train_loss": loss_sum / seen, "train_accuracy": 100 * correct / seen,
               "test_accuracy": test_acc, "epoch_time_s": train_time}
        history.append(row)
        if progress:
            print(f"epoch {epoch}: loss {row['train_loss']:.4f}, train {row['train_accuracy']:.2f}%, "
                  f"test {test_acc:.2f}% at T={cfg['T_train']} (first {eval_images} images) ({train_time:.0f} s)",
                  flush=True)
    return history


@torch.no_grad()
def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, T: int,
             device: torch.device, batch_size: int = 1000) -> float:
    """Test accuracy (percent) of an SNN classifying by output spike count after T steps."""
    model.eval()
    correct = 0
    for idx in batch_indices(len(labels), batch_size):
        counts = model(to_float(images[idx].to(device)), T)
        correct += (counts.argmax(1) == labels[idx].to(device)).sum().item()
    return 100.0 * correct / len(labels)

