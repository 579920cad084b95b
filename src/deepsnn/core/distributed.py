"""Data-parallel training over several processes, launched by torchrun (DistributedDataParallel).

One process is the default and runs exactly the single-process code (no process group, no
wrapper). Under `torchrun --nproc-per-node N`, every rank holds the whole in-memory data set,
draws the same shuffling, augmentation and T as a single process would (same seed, same
generator calls) and trains on its slice of each global batch; DDP averages the gradients. So
the params that define an experiment (global batch size, lr, seed) mean the same for any N, and
N processes follow one process's trajectory up to float rounding. Only rank 0 writes outputs.

BatchNorm sees global batch statistics (SyncBatchNorm's semantics): `channel_var_mean` sums
over every rank's slice, so the normalisation does not depend on N either. nn.BatchNorm2d layers
become `GlobalBatchNorm2d` under several processes (PyTorch's SyncBatchNorm runs on GPUs only;
this one also runs with gloo on CPU, which is how the tests check it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from deepsnn.core.errors import UserError
from deepsnn.core.training import pick_device


@dataclass(frozen=True)
class Processes:
    """This process's place among the training processes."""
    rank: int
    world_size: int
    device: torch.device

    @property
    def is_writer(self) -> bool:
        """Rank 0 alone prints progress and writes outputs."""
        return self.rank == 0

    def shard(self, tensor: torch.Tensor) -> torch.Tensor:
        """This rank's contiguous slice of a global batch (sizes differ by at most one)."""
        return tensor if self.world_size == 1 else tensor.tensor_split(self.world_size)[self.rank]

    def wrap(self, model: nn.Module) -> nn.Module:
        """`model` for training: DistributedDataParallel under several processes, else itself.
        Its nn.BatchNorm2d layers are made global first (in place: `model` keeps its weights and
        state_dict keys). Buffers are not broadcast: running statistics agree already."""
        if self.world_size == 1:
            return model
        use_global_batch_norm(model)
        ids = [self.device.index] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=ids, broadcast_buffers=False)

    def sum(self, values: list[float]) -> list[float]:
        """Element-wise sum over all ranks (for epoch statistics)."""
        if self.world_size == 1:
            return values
        total = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(total)
        return total.tolist()


class GlobalBatchNorm2d(nn.BatchNorm2d):
    """nn.BatchNorm2d whose training statistics cover every rank's slice of the batch."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return super().forward(x)
        x = x.float()  # as autocast runs batch_norm: statistics in float32
        var, mean, n = channel_var_mean(x)
        with torch.no_grad():
            self.running_mean.lerp_(mean, self.momentum)
            self.running_var.lerp_(var * n / max(n - 1, 1), self.momentum)
            self.num_batches_tracked += 1
        scale = self.weight * torch.rsqrt(var + self.eps)
        return x * scale.view(1, -1, 1, 1) + (self.bias - mean * scale).view(1, -1, 1, 1)


def use_global_batch_norm(model: nn.Module) -> None:
    """Make every nn.BatchNorm2d in `model` a GlobalBatchNorm2d (same parameters and buffers)."""
    for module in model.modules():
        if type(module) is nn.BatchNorm2d:
            module.__class__ = GlobalBatchNorm2d


def start(batch_size: int, key: str) -> Processes:
    """Join the process group torchrun set up (WORLD_SIZE > 1), or run as the only process.
    `batch_size` (the global batch, params key `key`) must give every rank at least one image."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return Processes(0, 1, pick_device())
    if batch_size < world_size:
        raise UserError(f"{key}: {batch_size} is the global batch; it must be at least the number of "
                        f"processes ({world_size}) so that every rank gets an image")
    local_rank = int(os.environ["LOCAL_RANK"])
    if torch.cuda.is_available():
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", device_id=device)
    else:
        device = torch.device("cpu")
        dist.init_process_group("gloo")
    return Processes(dist.get_rank(), world_size, device)


def stop(processes: Processes) -> None:
    if processes.world_size > 1 and dist.is_initialized():
        dist.destroy_process_group()


def channel_var_mean(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Per-channel biased variance and mean of x [N, C, H, W] over N, H, W, and the number of
    values each channel had: over the slices of every rank when training runs in several
    processes (differentiably, as SyncBatchNorm does)."""
    count = x.numel() / x.shape[1]
    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return *torch.var_mean(x, dim=(0, 2, 3), unbiased=False), count
    from torch.distributed.nn.functional import all_reduce  # differentiable all_reduce
    c = x.shape[1]
    local = torch.cat([x.sum(dim=(0, 2, 3)), (x * x).sum(dim=(0, 2, 3)), x.new_full((1,), count)])
    sums = all_reduce(local)
    count = float(sums[-1])
    mean = sums[:c] / count
    return sums[c:2 * c] / count - mean * mean, mean, count
