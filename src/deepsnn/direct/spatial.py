"""Direct SNN training, spatial approach: a 3-layer convolutional SNN whose gradients flow
through spike counts between layers, not through time.

Forward: the real spiking network is simulated step by step without an autograd graph (only one
membrane state per layer is alive, so memory is flat in T). Backward: each layer is treated as
its rate-domain equivalent, `rate = f(mean input current)`, with f's derivative taken from the
surrogate function (Lee et al. 2016; SpikeGrad, Thiele et al. 2019). Forward values are the
simulated spike counts exactly; only the gradient is approximate.

`method="bptt"` runs the same network as an ordinary multi-step SNN with the whole time loop in
the graph (backpropagation through time, memory grows with T): the reference method.

BatchNorm: in training, each conv layer is normalised with the statistics of its time-averaged
input current (the rate-domain pre-activation) and the resulting per-channel affine map is
applied to every timestep's current. At evaluation the running statistics make it a fixed
affine map that could be folded into the conv.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from spikingjelly.activation_based import functional
from torch import nn

from deepsnn.core.checkpoint import load_checkpoint, load_weights
from deepsnn.core.energy import SpikeCounter, SpikingLayer
from deepsnn.core.neurons import NeuronConfig, step

if TYPE_CHECKING:
    from deepsnn.core.data import ImageDataset

def bn_affine(bn: nn.BatchNorm2d, mean_current: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel (scale, shift) of `bn`, shaped [1, C, 1, 1].

    Training: batch statistics of `mean_current` (the time-averaged conv output), running
    statistics updated as nn.BatchNorm2d does. Evaluation: the running statistics."""
    if bn.training:
        assert mean_current is not None
        var, mean = torch.var_mean(mean_current, dim=(0, 2, 3), unbiased=False)
        with torch.no_grad():
            n = mean_current.numel() / mean_current.shape[1]
            bn.running_mean.lerp_(mean, bn.momentum)
            bn.running_var.lerp_(var * n / max(n - 1, 1), bn.momentum)
            bn.num_batches_tracked += 1
    else:
        mean, var = bn.running_mean, bn.running_var
    scale = bn.weight / torch.sqrt(var + bn.eps)
    shift = bn.bias - mean * scale
    return scale.view(1, -1, 1, 1), shift.view(1, -1, 1, 1)


def with_rate_gradient(rate: torch.Tensor, current: torch.Tensor, sg: nn.Module, onset: float) -> torch.Tensor:
    """`rate` in the forward pass (bit-exact); d rate / d current = surrogate'(current - onset)."""
    proxy = sg(current - onset)
    return rate.detach() + (proxy - proxy.detach())  # the bracket is exactly zero


class SpikingCNN(nn.Module):
    """conv(1->c) -> IF -> avgpool -> conv(c->2c) -> IF -> avgpool -> linear(->10) -> IF.

    Three learnable layers; the output layer's spike counts are the class scores. Input pixels
    are fed as a constant current every timestep (direct encoding), so the first layer's
    current is computed once. T is given at call time."""

    def __init__(self, channels: int = 32, num_classes: int = 10, in_channels: int = 1,
                 image_size: int = 28, neuron_config: NeuronConfig = NeuronConfig(), population: int = 1,
                 conv1_kernel: int = 3):
        super().__init__()
        self.neuron_config = neuron_config
        self.num_classes, self.population = num_classes, population
        # conv1 runs once per image (its input is constant), so a wider kernel is nearly free
        self.conv1 = nn.Conv2d(in_channels, channels, conv1_kernel, padding=conv1_kernel // 2, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, 2 * channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(2 * channels)
        self.fc = nn.Linear(2 * channels * (image_size // 4) ** 2, num_classes * population)
        self.pool = nn.AvgPool2d(2)
        self.sn1, self.sn2, self.sn3 = (neuron_config.build() for _ in range(3))

    def layer1_current(self, x: torch.Tensor) -> torch.Tensor:
        conv = self.conv1(x)
        scale, shift = bn_affine(self.bn1, conv)
        # channels_last from here on: ~8x faster pooling and faster convs on CPU, same values
        return (conv * scale + shift).contiguous(memory_format=torch.channels_last)

    def layer3_current(self, spikes2: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(spikes2).flatten(1))

    def class_counts(self, output: torch.Tensor) -> torch.Tensor:
        """Sum each class's population of output neurons: [..., classes * P] -> [..., classes]."""
        return output.unflatten(-1, (self.num_classes, self.population)).sum(-1)

    @property
    def max_count_per_step(self) -> int:
        """Most spikes a class can emit per timestep (its population size)."""
        return self.population

    @torch.no_grad()
    def _rate_of_constant_input(self, current: torch.Tensor, T: int) -> torch.Tensor:
        v, total = self.neuron_config.initial_potential(current), torch.zeros_like(current)
        for _ in range(T):
            total += step(v, current, self.neuron_config)
        return total / T

    def forward(self, x: torch.Tensor, T: int, method: str = "spatial") -> torch.Tensor:
        """Output spike counts per class [B, classes] after T timesteps (differentiable when training)."""
        if T < 1:
            raise ValueError(f"T must be >= 1, got {T}")
        if method == "spatial":
            return self._forward_spatial(x, T)
        if method == "bptt":
            return self._forward_bptt(x, T)
        raise ValueError(f"unknown method {method!r}; allowed: spatial, bptt")

    def _forward_spatial(self, x: torch.Tensor, T: int) -> torch.Tensor:
        onset, sg = self.neuron_config.rate_onset, self.sn1.surrogate_function
        current1 = self.layer1_current(x)
        # conv2's BN statistics come from layer 1's rate, so simulate layer 1 alone first
        # (cheap: its input is constant) unless running statistics are used.
        if self.bn2.training:
            rate1 = self._rate_of_constant_input(current1.detach(), T)
            conv2_mean = self.conv2(self.pool(with_rate_gradient(rate1, current1, sg, onset)))
            scale2, shift2 = bn_affine(self.bn2, conv2_mean)
        else:
            scale2, shift2 = bn_affine(self.bn2, None)
        out_steps, rate1, rate2, rate3 = self.simulate(x, T, current1=current1.detach(),
                                                       scale2=scale2.detach(), shift2=shift2.detach())
        if not torch.is_grad_enabled():
            return out_steps.sum(0)
        r1 = with_rate_gradient(rate1, current1, sg, onset)
        current2 = self.conv2(self.pool(r1)) * scale2 + shift2  # = time-average of layer 2's current
        r2 = with_rate_gradient(rate2, current2, sg, onset)
        r3 = with_rate_gradient(rate3, self.layer3_current(r2), sg, onset)
        return self.class_counts(r3 * T)

    @torch.no_grad()
    def simulate(self, x: torch.Tensor, T: int, current1: torch.Tensor | None = None,
                 scale2: torch.Tensor | None = None, shift2: torch.Tensor | None = None,
                 clock: list | None = None, counter: SpikeCounter | None = None,
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Step-by-step simulation. Returns the output spikes of every step [T, B, classes]
        and the firing rates of the three layers; `clock.tick()` is called after each step and
        `counter` (see `spiking_layers`) is handed each layer's spikes."""
        if current1 is None:
            current1 = self.layer1_current(x)
        if scale2 is None:
            scale2, shift2 = bn_affine(self.bn2, None)
        cfg = self.neuron_config
        v1 = cfg.initial_potential(current1)
        v2 = v3 = None
        total1 = torch.zeros_like(current1)
        total2 = total3 = None
        out_steps = []
        for _ in range(T):
            s1 = step(v1, current1, cfg)
            current2 = self.conv2(self.pool(s1)) * scale2 + shift2
            if v2 is None:
                v2, total2 = cfg.initial_potential(current2), torch.zeros_like(current2)
            s2 = step(v2, current2, cfg)
            current3 = self.layer3_current(s2)
            if v3 is None:
                v3, total3 = cfg.initial_potential(current3), torch.zeros_like(current3)
            s3 = step(v3, current3, cfg)
            total1 += s1
            total2 += s2
            total3 += s3
            out_steps.append(self.class_counts(s3))
            if counter is not None:
                for layer, spikes in enumerate((s1, s2, s3)):
                    counter.record(layer, spikes)
            if clock is not None:
                clock.tick()
        if counter is not None:
            counter.end_batch()
        return torch.stack(out_steps), total1 / T, total2 / T, total3 / T

    @property
    def spiking_layers(self) -> list[SpikingLayer]:
        """The three IF layers and the modules their spikes pass through (BatchNorm's per-channel
        affine map after conv2 does not change who is connected to whom)."""
        return [SpikingLayer("sn1", [self.pool, self.conv2]),
                SpikingLayer("sn2", [self.pool, nn.Flatten(), self.fc]),
                SpikingLayer("sn3", [])]

    def step_outputs(self, x: torch.Tensor, T: int, clock: list | None = None,
                     counter: SpikeCounter | None = None) -> torch.Tensor:
        """Output spikes of every step, [T, B, classes] (the evaluation simulator)."""
        return self.simulate(x, T, clock=clock, counter=counter)[0]

    def _forward_bptt(self, x: torch.Tensor, T: int) -> torch.Tensor:
        """Multi-step SNN, the whole time loop in the autograd graph."""
        functional.reset_net(self)
        current1 = self.layer1_current(x)
        spikes1 = self.sn1.multi_step_forward(current1.unsqueeze(0).expand(T, *current1.shape))
        pooled1 = self.pool(spikes1.flatten(0, 1))
        scale2, shift2 = bn_affine(self.bn2, self.conv2(pooled1.reshape(T, -1, *pooled1.shape[1:]).mean(0))
                                   if self.bn2.training else None)
        current2 = self.conv2(pooled1) * scale2 + shift2
        spikes2 = self.sn2.multi_step_forward(current2.reshape(T, -1, *current2.shape[1:]))
        current3 = self.layer3_current(spikes2.flatten(0, 1))
        spikes3 = self.sn3.multi_step_forward(current3.reshape(T, -1, current3.shape[-1]))
        return self.class_counts(spikes3.sum(0))


def spike_count_loss(counts: torch.Tensor, labels: torch.Tensor, max_count: int, kind: str = "count_mse") -> torch.Tensor:
    """Loss on output spike counts.

    count_ce (default): cross-entropy on the firing rates scaled to logits in [0, 10]
      (a 10-point margin is a probability of ~0.9995 for the true class); it needs no target
      counts and keeps pushing until the true class wins by a wide margin.
    count_mse: mean squared error between firing rates and target rates (1 for the true class,
      0 for the others), the classic spike-count loss of Lee et al. 2016 / Wu et al. 2019."""
    rates = counts / max_count  # in [0, 1]: max_count = T x output neurons per class
    if kind == "count_ce":
        return F.cross_entropy(rates * 10.0, labels)
    if kind == "count_mse":
        return F.mse_loss(rates, F.one_hot(labels, rates.shape[1]).to(rates.dtype))
    raise ValueError(f"unknown loss {kind!r}; allowed: count_ce, count_mse")


def build_spatial_model(cfg: dict, data: ImageDataset | None = None) -> SpikingCNN:
    """The model described by params.yaml's train_spatial section (shapes from the data set)."""
    neuron_config = NeuronConfig(cfg["neuron"], cfg["reset"], cfg["surrogate"], cfg["tau"],
                                 v_init=0.5 if cfg["initial_potential"] == "half" else 0.0)
    if data is None:
        return SpikingCNN(cfg["channels"], neuron_config=neuron_config, population=cfg["output_population"],
                          conv1_kernel=cfg["conv1_kernel"])
    _, in_channels, size, _ = data.train_images.shape
    return SpikingCNN(cfg["channels"], num_classes=len(data.classes), in_channels=in_channels,
                      image_size=size, neuron_config=neuron_config, population=cfg["output_population"],
                      conv1_kernel=cfg["conv1_kernel"])


def load_spatial_model(path, data: ImageDataset) -> tuple[SpikingCNN, dict]:
    """The SNN saved by train_spatial (eval mode, on CPU) and the params that made it."""
    checkpoint = load_checkpoint(path, written_by="train_spatial")
    model = build_spatial_model(checkpoint["params"]["train_spatial"], data)
    return load_weights(model, checkpoint, path, "train_spatial").eval(), checkpoint["params"]
