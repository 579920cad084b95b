"""Training and evaluating the CIFAR-10 ANN that gets converted (VGG-16).

Same habits as the SNN loop (data on the device, augmentation in batches there), plus
flips, random shifts, label smoothing, SGD Nesterov with a one-cycle schedule and channels_last.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from deepsnn.core.data import DATASETS, ImageDataset
from deepsnn.core import distributed
from deepsnn.core.training import augment, batch_indices, to_float, train_epochs
from deepsnn.conversion.ann.networks import set_quantize


def normalizer(dataset: str):
    """uint8 NCHW -> float normalised with the data set's pixel statistics, channels_last
    (faster convs on CPU). The ANN and its SNN see the same inputs."""
    mean, std = DATASETS[dataset].mean, DATASETS[dataset].std

    def prepare(images: torch.Tensor) -> torch.Tensor:
        m = torch.tensor(mean, device=images.device).view(1, -1, 1, 1)
        s = torch.tensor(std, device=images.device).view(1, -1, 1, 1)
        return ((to_float(images) - m) / s).contiguous(memory_format=torch.channels_last)
    return prepare


def has_native_bf16(device: torch.device) -> bool:
    """A GPU with bf16 arithmetic (Ampere and later), or a CPU with bf16 instructions (AVX512-BF16
    or AMX). oneDNN also reports bf16 on plain AVX-512 CPUs, where it is emulated: on such an
    Intel Xeon here a bf16 training step ran at 0.42x the fp32 one (bench/ann_training.py)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    return torch.ops.mkldnn._is_mkldnn_bf16_supported() and bool(_cpu_flags() & {"avx512_bf16", "amx_bf16"})


def _cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def autocast(device: torch.device, precision: str):
    """bf16 autocast of the convs and matmuls for precision bf16, or for auto where the hardware has
    bf16 (`resolved_precision`); a no-op otherwise. The model is evaluated in float32."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=resolved_precision(device, precision) == "bf16")


def resolved_precision(device: torch.device, precision: str) -> str:
    """fp32 or bf16: what train_ann.precision means on `device` (auto: bf16 where it is native)."""
    return "bf16" if precision == "bf16" or (precision == "auto" and has_native_bf16(device)) else "fp32"


def optimizer_and_loss(model: nn.Module, cfg: dict[str, Any]) -> tuple[torch.optim.SGD, nn.CrossEntropyLoss]:
    """train_ann's optimizer (SGD, Nesterov momentum 0.9, weight decay; lr set by the schedule) and loss."""
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg["lr"], momentum=0.9, nesterov=True,
                                weight_decay=cfg["weight_decay"])
    return optimizer, nn.CrossEntropyLoss(label_smoothing=cfg["label_smoothing"])


def train_ann(model: nn.Module, data: ImageDataset, cfg: dict[str, Any], generator: torch.Generator,
              processes: distributed.Processes, progress: bool = True,
              eval_images: int = 2000) -> list[dict[str, float]]:
    """Train a CIFAR ANN with cfg = params.yaml's train_ann section; `generator` drives shuffling
    and augmentation. Returns one row per epoch; the per-epoch test accuracy uses the first
    `eval_images` test images (the full set is evaluated once, at the end, by the caller).

    `processes` (from `deepsnn.core.distributed.start`): every rank draws the global batch and
    its augmentation and trains on its slice (one process: the whole batch); the returned rows
    count every rank's images."""
    device = processes.device
    model.to(device).to(memory_format=torch.channels_last)
    trained = processes.wrap(model)
    prepare = normalizer(data.name)
    flips = DATASETS[data.name].flips
    train_x, train_y = data.train_images.to(device), data.train_labels.to(device)
    # The last partial batch of each epoch is dropped: fixed shapes, so torch.compile compiles once.
    steps_per_epoch = max(1, len(train_y) // cfg["batch_size"])
    # Compiling fuses BatchNorm and the activation's elementwise work into the convs' neighbours
    # (bench/ann_training.py measures it). `model` shares the weights and stays eager for evaluation.
    forward = torch.compile(trained) if cfg["compile"] else trained
    optimizer, criterion = optimizer_and_loss(model, cfg)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg["lr"], pct_start=0.25,
                                                   anneal_strategy="linear",
                                                   total_steps=cfg["epochs"] * steps_per_epoch)

    def before_epoch(epoch: int) -> None:
        # Rounding to L levels from the first step slowed VGG-16 down (29% train accuracy after one
        # epoch): the clip alone learns like a ReLU, and the last epochs adapt the network to the
        # rounding the SNN reproduces. (torch.compile recompiles once at the switch.)
        set_quantize(model, epoch > cfg["qcfs_clip_epochs"])

    def train_step(idx: torch.Tensor) -> tuple[float, float, float]:
        x = augment(train_x[idx], cfg["augment_shift"], flips, generator)
        x, y = processes.shard(x), processes.shard(train_y[idx])
        with autocast(device, cfg["precision"]):
            logits = forward(prepare(x))
            loss = criterion(logits.float(), y)
        optimizer.zero_grad(set_to_none=True)
        # DDP averages the ranks' gradients: weighted by slice, the global batch's mean (x1.0 if equal)
        (loss * (processes.world_size * len(y) / len(idx))).backward()
        optimizer.step()
        schedule.step()
        return loss.item() * len(y), (logits.argmax(1) == y).sum().item(), len(y)

    def test_accuracy() -> float:
        return ann_accuracy(model, data.test_images[:eval_images], data.test_labels[:eval_images], prepare, device)

    return train_epochs(model, "train_ann", cfg["epochs"], len(train_y), cfg["batch_size"], generator, processes,
                        train_step, test_accuracy, steps_per_epoch, before_epoch, progress)


@torch.no_grad()
def ann_accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, prepare: Callable,
                 device: torch.device, batch_size: int = 500) -> float:
    """Test accuracy (percent) of an ANN, float32; `prepare` (from `normalizer`) makes its inputs."""
    model.eval()
    correct = 0
    for idx in batch_indices(len(labels), batch_size):
        correct += (model(prepare(images[idx].to(device))).argmax(1) == labels[idx].to(device)).sum().item()
    return 100.0 * correct / len(labels)
