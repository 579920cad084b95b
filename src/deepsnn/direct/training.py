"""Training the directly trained SNN (spatial or BPTT) and measuring its accuracy at one T."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from deepsnn.core.data import DATASETS, ImageDataset
from deepsnn.core.training import augment, batch_indices, to_float, train_epochs
from deepsnn.direct.spatial import SpikingConvNet, spike_count_loss
from deepsnn.core import distributed


def training_timesteps(T_train: int, jitter: int, generator: torch.Generator) -> int:
    """T for one batch: uniform in [T_train - jitter, T_train + jitter]. Seeing several T in
    training keeps the network from tuning itself to one T's quantisation, so accuracy holds
    up when it is evaluated at larger T."""
    if jitter == 0:
        return T_train
    return T_train - jitter + int(torch.randint(0, 2 * jitter + 1, (1,), generator=generator))


def train_spatial(model: SpikingConvNet, data: ImageDataset, cfg: dict[str, Any], generator: torch.Generator,
                  processes: distributed.Processes, progress: bool = True,
                  eval_images: int = 2000) -> list[dict[str, float]]:
    """Train `model` with cfg = params.yaml's train_spatial section; `generator` drives shuffling
    and augmentation. Returns one row per epoch; its test accuracy (at T_train) uses the first
    `eval_images` test images, to keep the curve cheap (eval_spatial measures the full set).

    `processes` (from `deepsnn.core.distributed.start`): every rank draws the global batch, its
    augmentation and T, and trains on its slice of the batch (one process: the whole batch);
    the returned rows count every rank's images."""
    device = processes.device
    model.to(device)
    trained = processes.wrap(model)
    train_x, train_y = data.train_images.to(device), data.train_labels.to(device)
    steps_per_epoch = -(-len(train_y) // cfg["batch_size"])
    flips = DATASETS[data.name].flips  # CIFAR-10: mirrored images keep their class; digits do not
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg["lr"], pct_start=0.15,
                                                   total_steps=cfg["epochs"] * steps_per_epoch)

    def train_step(idx: torch.Tensor) -> tuple[float, float, float]:
        x = augment(to_float(train_x[idx]), cfg["augment_shift"], flips, generator)
        T = training_timesteps(cfg["T_train"], cfg["T_train_jitter"], generator)
        x, y = processes.shard(x), processes.shard(train_y[idx])
        counts = trained(x, T, method=cfg["method"])
        loss = spike_count_loss(counts, y, T * model.max_count_per_step, cfg["loss"])
        optimizer.zero_grad(set_to_none=True)
        # DDP averages the ranks' gradients; weighting each slice's mean by its share of the
        # batch makes that the gradient of the global batch's mean (1.0 for equal slices)
        (loss * (processes.world_size * len(y) / len(idx))).backward()
        optimizer.step()
        schedule.step()
        return loss.item() * len(y), (counts.argmax(1) == y).sum().item(), len(y)

    def test_accuracy() -> float:  # at T_train
        return accuracy(model, data.test_images[:eval_images], data.test_labels[:eval_images], cfg["T_train"], device)

    return train_epochs(model, "train_spatial", cfg["epochs"], len(train_y), cfg["batch_size"], generator,
                        processes, train_step, test_accuracy, steps_per_epoch, progress_enabled=progress)


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
