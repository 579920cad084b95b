"""Direct SNN training, spatial approach: convolutional SNNs (the write-up's 3-layer network, a
deeper VGG-style one) whose gradients flow through spike counts between layers, not through time.

Forward: the real spiking network is simulated step by step without an autograd graph (only one
membrane state per layer is alive, so memory is flat in T). Backward: each layer is treated as
its rate-domain equivalent, `rate = f(mean input current)`, with f's derivative taken from the
surrogate function (Lee et al. 2016; SpikeGrad, Thiele et al. 2019). Forward values are the
simulated spike counts exactly; only the gradient is approximate.

`method="bptt"` runs the same network as an ordinary multi-step SNN with the whole time loop in
the graph (backpropagation through time, memory grows with T): the reference method.

BatchNorm: in training, each conv layer is normalised with the statistics of its time-averaged
input current (the rate-domain pre-activation) and the resulting per-channel affine map is
applied to every timestep's current (see SpikingConvNet). At evaluation the running statistics
make it a fixed affine map that could be folded into the conv.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from spikingjelly.activation_based import functional
from torch import nn

from deepsnn.core.checkpoint import CheckpointError, load_checkpoint, load_weights
from deepsnn.core.spiking import SpikeRecorder, SpikingLayer
from deepsnn.core.neurons import NeuronConfig, step, valued_as, with_rate_gradient
from deepsnn.core.distributed import channel_var_mean

if TYPE_CHECKING:
    from deepsnn.core.data import ImageDataset

def bn_affine(bn: nn.BatchNorm2d, mean_current: torch.Tensor | None,
              update_running: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel (scale, shift) of `bn`, shaped [1, C, 1, 1].

    Training: batch statistics of `mean_current` (the time-averaged conv output), running
    statistics updated as nn.BatchNorm2d does (unless `update_running` is false). Evaluation:
    the running statistics."""
    if bn.training:
        assert mean_current is not None
        var, mean, n = channel_var_mean(mean_current)  # over every rank's slice when data-parallel
        if update_running:
            with torch.no_grad():
                bn.running_mean.lerp_(mean, bn.momentum)
                bn.running_var.lerp_(var * n / max(n - 1, 1), bn.momentum)
                bn.num_batches_tracked += 1
    else:
        mean, var = bn.running_mean, bn.running_var
    scale = bn.weight / torch.sqrt(var + bn.eps)
    shift = bn.bias - mean * scale
    return scale.view(1, -1, 1, 1), shift.view(1, -1, 1, 1)


@dataclass(frozen=True)
class ConvLayer:
    """One spiking conv layer: conv (no bias) -> BatchNorm -> spiking neurons [-> 2x2 AvgPool]."""
    channels: int
    kernel: int = 3
    pool: bool = False


def architecture_layers(name: str, channels: int, conv1_kernel: int) -> list[ConvLayer]:
    """The conv layers of a named architecture; a linear spiking output layer follows them.
    cnn3: the write-up's 3-layer network (2 conv + output). vgg7: VGG-style, 7 conv layers in
    three stages of width c, 2c, 4c, each ending in an AvgPool, + output (8 spiking layers)."""
    c, k = channels, conv1_kernel
    if name == "cnn3":
        return [ConvLayer(c, k, pool=True), ConvLayer(2 * c, pool=True)]
    if name == "vgg7":
        return [ConvLayer(c, k), ConvLayer(c, pool=True), ConvLayer(2 * c), ConvLayer(2 * c, pool=True),
                ConvLayer(4 * c), ConvLayer(4 * c), ConvLayer(4 * c, pool=True)]
    raise ValueError(f"unknown architecture {name!r}; allowed: {', '.join(ARCHITECTURES)}")


ARCHITECTURES = ("cnn3", "vgg7")


class SpikingConvNet(nn.Module):
    """[conv -> BN -> IF (-> avgpool)] x L -> linear -> IF; the output layer's spike counts are
    the class scores. Input pixels are fed as a constant current every timestep (direct
    encoding), so the first layer's current is computed once. T is given at call time.

    BatchNorm in training: the statistics of a layer's time-averaged current (conv is linear,
    so that is conv(rate of the layer below)). They are needed before the layer can be
    simulated, so a pass of the rate-domain model the backward uses (each layer's rate is that
    of its time-averaged current held constant; exact for the first layer, whose input is
    constant) fixes each layer's affine map first; the simulation and both training methods
    then use the same maps, and the gradient flows through the batch statistics as in BN."""

    def __init__(self, layers: list[ConvLayer], num_classes: int = 10, in_channels: int = 1, image_size: int = 28,
                 neuron_config: NeuronConfig = NeuronConfig(), population: int = 1):
        super().__init__()
        self.neuron_config = neuron_config
        self.num_classes, self.population = num_classes, population
        self.pools = tuple(layer.pool for layer in layers)
        self.convs, self.bns = nn.ModuleList(), nn.ModuleList()
        for layer in layers:
            self.convs.append(nn.Conv2d(in_channels, layer.channels, layer.kernel, padding=layer.kernel // 2,
                                        bias=False))
            self.bns.append(nn.BatchNorm2d(layer.channels))
            in_channels = layer.channels
            image_size //= 2 if layer.pool else 1
        self.fc = nn.Linear(in_channels * image_size ** 2, num_classes * population)
        self.pool = nn.AvgPool2d(2)
        self.neurons = nn.ModuleList(neuron_config.build() for _ in range(len(layers) + 1))

    @property
    def depth(self) -> int:
        """Spiking layers, the output layer included."""
        return len(self.convs) + 1

    def first_current(self, x: torch.Tensor) -> torch.Tensor:
        conv = self.convs[0](x)
        scale, shift = bn_affine(self.bns[0], conv)
        # channels_last from here on: ~8x faster pooling and faster convs on CPU, same values
        return (conv * scale + shift).contiguous(memory_format=torch.channels_last)

    def synapses(self, layer: int, spikes: torch.Tensor) -> torch.Tensor:
        """What spikes (or rates) of spiking layer `layer` (0-based) feed the next layer's neurons
        through: [avgpool ->] conv (before its BN affine map), or flatten -> linear."""
        x = self.pool(spikes) if self.pools[layer] else spikes
        return self.convs[layer + 1](x) if layer + 1 < len(self.convs) else self.fc(x.flatten(1))

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

    @torch.no_grad()
    def affine_maps(self, current1: torch.Tensor, T: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(scale, shift) of every conv layer after the first. Training: batch statistics from
        the rate-domain pass (running statistics updated); evaluation: running statistics."""
        if not self.training:
            return [bn_affine(bn, None) for bn in self.bns[1:]]
        maps, rate = [], self._rate_of_constant_input(current1, T)
        for layer in range(1, len(self.convs)):
            conv = self.synapses(layer - 1, rate)
            maps.append(bn_affine(self.bns[layer], conv))
            if layer + 1 < len(self.convs):  # the last conv layer's rate feeds no BatchNorm
                rate = self._rate_of_constant_input(conv * maps[-1][0] + maps[-1][1], T)
        return maps

    def current(self, layer: int, inputs: torch.Tensor, maps: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        """Input current of spiking layer `layer` >= 1 from the spikes (or rates) of the layer below.
        In training with gradients, BN's affine map keeps its value in `maps` and takes the
        gradient of the batch statistics of these currents."""
        x = self.synapses(layer - 1, inputs)
        if layer == len(self.convs):
            return x
        scale, shift = maps[layer - 1]
        bn = self.bns[layer]
        if bn.training and torch.is_grad_enabled():
            batch_scale, batch_shift = bn_affine(bn, x, update_running=False)
            scale, shift = valued_as(scale, batch_scale), valued_as(shift, batch_shift)
        return x * scale + shift

    def forward(self, x: torch.Tensor, T: int, method: str = "spatial") -> torch.Tensor:
        """Output spike counts per class [B, classes] after T timesteps (differentiable when training)."""
        if T < 1:
            raise ValueError(f"T must be >= 1, got {T}")
        if method not in ("spatial", "bptt"):
            raise ValueError(f"unknown method {method!r}; allowed: spatial, bptt")
        current1 = self.first_current(x)
        maps = self.affine_maps(current1.detach(), T)
        return self._forward_spatial(current1, maps, T) if method == "spatial" else self._forward_bptt(current1, maps, T)

    def _forward_spatial(self, current1: torch.Tensor, maps: list, T: int) -> torch.Tensor:
        detached = [(scale.detach(), shift.detach()) for scale, shift in maps]
        out_steps, rates = self.simulate(None, T, current1=current1.detach(), maps=detached)
        if not torch.is_grad_enabled():
            return out_steps.sum(0)
        onset, sg = self.neuron_config.rate_onset, self.neurons[0].surrogate_function
        rate = with_rate_gradient(rates[0], current1, sg, onset)
        for layer in range(1, self.depth):  # time-averaged currents: the simulation's, exactly
            rate = with_rate_gradient(rates[layer], self.current(layer, rate, maps), sg, onset)
        return self.class_counts(rate * T)

    @torch.no_grad()
    def simulate(self, x: torch.Tensor | None, T: int, current1: torch.Tensor | None = None,
                 maps: list | None = None, clock: list | None = None, counter: SpikeRecorder | None = None,
                 ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Step-by-step simulation. Returns the output spikes of every step [T, B, classes] and
        the firing rate of every layer; `clock.tick()` is called after each step and `counter`
        (see `spiking_layers`) is handed each layer's spikes."""
        if current1 is None:
            current1 = self.first_current(x)
        if maps is None:
            maps = self.affine_maps(current1, T)
        cfg = self.neuron_config
        potentials: list[torch.Tensor | None] = [None] * self.depth
        totals: list[torch.Tensor | None] = [None] * self.depth
        out_steps = []
        for _ in range(T):
            spikes = []
            for layer in range(self.depth):
                current = current1 if layer == 0 else self.current(layer, spikes[-1], maps)
                if potentials[layer] is None:
                    potentials[layer], totals[layer] = cfg.initial_potential(current), torch.zeros_like(current)
                spikes.append(step(potentials[layer], current, cfg))
                totals[layer] += spikes[-1]
            out_steps.append(self.class_counts(spikes[-1]))
            if counter is not None:
                for layer, layer_spikes in enumerate(spikes):
                    counter.record(layer, layer_spikes)
            if clock is not None:
                clock.tick()
        if counter is not None:
            counter.end_batch()
        return torch.stack(out_steps), [total / T for total in totals]

    @property
    def spiking_layers(self) -> list[SpikingLayer]:
        """The spiking layers and the modules their spikes pass through (BatchNorm's per-channel
        affine map after a conv does not change who is connected to whom)."""
        layers = []
        for layer in range(len(self.convs)):
            downstream = [self.pool] if self.pools[layer] else []
            downstream += [self.convs[layer + 1]] if layer + 1 < len(self.convs) else [nn.Flatten(), self.fc]
            layers.append(SpikingLayer(f"sn{layer + 1}", downstream))
        return layers + [SpikingLayer(f"sn{self.depth}", [])]

    def ann_equivalent(self) -> nn.Sequential:
        """The same synapses as an ANN (for counting its MACs: activations cost none)."""
        modules: list[nn.Module] = []
        for conv, pool in zip(self.convs, self.pools):
            modules += [conv, self.pool] if pool else [conv]
        return nn.Sequential(*modules, nn.Flatten(), self.fc)

    def step_outputs(self, x: torch.Tensor, T: int, clock: list | None = None,
                     counter: SpikeRecorder | None = None) -> torch.Tensor:
        """Output spikes of every step, [T, B, classes] (the evaluation simulator)."""
        return self.simulate(x, T, clock=clock, counter=counter)[0]

    def _forward_bptt(self, current1: torch.Tensor, maps: list, T: int) -> torch.Tensor:
        """Multi-step SNN, the whole time loop in the autograd graph (SpikingJelly's neurons);
        BN's maps are the spatial method's (same forward), with the gradient of the batch
        statistics of the time-averaged currents."""
        functional.reset_net(self)
        spikes = self.neurons[0].multi_step_forward(current1.unsqueeze(0).expand(T, *current1.shape))
        for layer in range(1, self.depth):
            x = self.synapses(layer - 1, spikes.flatten(0, 1))
            x = x.reshape(T, -1, *x.shape[1:])
            if layer < len(self.convs):
                scale, shift = maps[layer - 1]
                if self.bns[layer].training:
                    batch_scale, batch_shift = bn_affine(self.bns[layer], x.mean(0), update_running=False)
                    scale, shift = valued_as(scale, batch_scale), valued_as(shift, batch_shift)
                x = x * scale + shift
            spikes = self.neurons[layer].multi_step_forward(x)
        return self.class_counts(spikes.sum(0))


def spike_count_loss(counts: torch.Tensor, labels: torch.Tensor, max_count: int, kind: str = "count_mse") -> torch.Tensor:
    """Loss on output spike counts.

    count_ce: cross-entropy on the firing rates scaled to logits in [0, 10]
      (a 10-point margin is a probability of ~0.9995 for the true class); it needs no target
      counts and keeps pushing until the true class wins by a wide margin.
    count_mse (params.yaml's): mean squared error between firing rates and target rates (1 for the
      true class, 0 for the others), the classic spike-count loss of Lee et al. 2016 / Wu et al. 2019."""
    rates = counts / max_count  # in [0, 1]: max_count = T x output neurons per class
    if kind == "count_ce":
        return F.cross_entropy(rates * 10.0, labels)
    if kind == "count_mse":
        return F.mse_loss(rates, F.one_hot(labels, rates.shape[1]).to(rates.dtype))
    raise ValueError(f"unknown loss {kind!r}; allowed: count_ce, count_mse")


def build_spatial_model(cfg: dict, data: ImageDataset | None = None) -> SpikingConvNet:
    """The model described by params.yaml's train_spatial section (input shape from the data set;
    without one, a 1x28x28 image and 10 classes)."""
    neuron_config = NeuronConfig(cfg["neuron"], cfg["reset"], cfg["surrogate"], cfg["tau"],
                                 v_init=0.5 if cfg["initial_potential"] == "half" else 0.0)
    layers = architecture_layers(cfg["architecture"], cfg["channels"], cfg["conv1_kernel"])
    shape = {"num_classes": 10, "in_channels": 1, "image_size": 28}
    if data is not None:
        _, in_channels, size, _ = data.train_images.shape
        shape = {"num_classes": len(data.classes), "in_channels": in_channels, "image_size": size}
    return SpikingConvNet(layers, neuron_config=neuron_config, population=cfg["output_population"], **shape)


def load_spatial_model(path, data: ImageDataset) -> tuple[SpikingConvNet, dict]:
    """The SNN saved by train_spatial (eval mode, on CPU) and the params that made it, for `data`,
    which must be the data set it was trained on."""
    checkpoint = load_checkpoint(path, written_by="train_spatial")
    trained_on = checkpoint["params"]["dataset"]
    if data.name != trained_on:
        raise CheckpointError(f"{path} was trained on {trained_on}, and the data file given holds {data.name}: "
                              f"evaluate it on data/{trained_on}.pt")
    model = build_spatial_model(checkpoint["params"]["train_spatial"], data)
    return load_weights(model, checkpoint, path, "train_spatial").eval(), checkpoint["params"]
