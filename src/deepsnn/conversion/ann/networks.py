"""The ANNs that get converted, built to convert: Conv -> BN -> activation -> AvgPool, FX-traceable.

`vgg16` (32x32 images, CIFAR-10): 13 conv layers and 3 linear layers. `cnn3` (28x28 images, the
MNIST family): the direct pipeline's 3-layer shape, conv(5x5) -> pool -> conv -> pool -> linear. The activation is plain `nn.ReLU` or QCFS (Bu et al., ICLR
2022): a trainable clip-floor-shift quantiser whose L levels match what an IF neuron with
threshold lambda and initial potential lambda/2 can emit in L steps, which makes conversion
nearly lossless at low T.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from deepsnn.core.checkpoint import load_checkpoint, load_weights
from deepsnn.core.data import IMAGE_SHAPES
from deepsnn.core.errors import ConversionError

# numbers are conv widths, "A" is a 2x2 average pool (max pooling does not convert to spikes)
VGG16 = [64, 64, "A", 128, 128, "A", 256, 256, 256, "A", 512, 512, 512, "A", 512, 512, 512, "A"]


@dataclass(frozen=True)
class Architecture:
    convs: list  # conv widths and "A" pools, at width 1.0
    hidden: tuple[int, ...]  # widths of the hidden linear layers, at width 1.0
    first_kernel: int  # the first conv's kernel size (the later ones are 3x3)
    image_size: int  # the input images it is built for (height = width)


ARCHITECTURES = {
    "vgg16": Architecture(VGG16, hidden=(512, 512), first_kernel=3, image_size=32),
    "cnn3": Architecture([32, "A", 64, "A"], hidden=(), first_kernel=5, image_size=28),
}


class FloorSTE(torch.autograd.Function):
    """floor() forward, identity gradient backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        return torch.floor(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return grad


class QCFS(nn.Module):
    """Quantisation-clip-floor-shift activation: lambda * clamp(floor(x L / lambda + 1/2) / L, 0, 1).

    `threshold` (lambda) is learned; it becomes the IF neuron's firing threshold on conversion.
    With `quantize` False it is the same clip without the floor-shift (a ReLU with a learned
    ceiling, the floor-shift's expectation): the fast-learning warm-up of training."""

    def __init__(self, levels: int = 4, threshold: float = 2.0):
        # threshold 2: the clip sits near the top of a BatchNorm'd (unit-variance) input
        super().__init__()
        self.levels = levels
        self.quantize = True
        self.threshold = nn.Parameter(torch.tensor(float(threshold)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.quantize:
            scaled = FloorSTE.apply(x * (self.levels / self.threshold) + 0.5) / self.levels
        else:
            scaled = x / self.threshold
        return scaled.clamp(0.0, 1.0) * self.threshold

    def extra_repr(self) -> str:
        return f"levels={self.levels}, quantize={self.quantize}"


def set_quantize(model: nn.Module, quantize: bool) -> None:
    """Switch every QCFS activation of `model` between floor-shift quantised and plain clip."""
    for module in model.modules():
        if isinstance(module, QCFS):
            module.quantize = quantize


def build_ann(cfg: dict, dataset: str) -> VGG:
    """The network described by params.yaml's train_ann section for images of `dataset`."""
    arch = ARCHITECTURES[cfg["architecture"]]
    in_channels, size = IMAGE_SHAPES[dataset]
    return VGG(arch.convs, width=cfg["width"], act=cfg["activation"], levels=cfg["qcfs_levels"],
               in_channels=in_channels, image_size=size, hidden=arch.hidden, first_kernel=arch.first_kernel)


def activation(kind: str, levels: int) -> nn.Module:
    if kind == "relu":
        return nn.ReLU()
    if kind == "qcfs":
        return QCFS(levels)
    raise ValueError(f"unknown activation {kind!r}; allowed: relu, qcfs")


class VGG(nn.Module):
    """VGG-style network: `config`'s conv layers and pools, then `hidden` linear layers and the
    output layer; `width` scales every layer (1.0 = the real VGG-16 with the defaults)."""

    def __init__(self, config: list = VGG16, width: float = 1.0, num_classes: int = 10,
                 act: str = "relu", levels: int = 4, in_channels: int = 3, image_size: int = 32,
                 hidden: tuple[int, ...] = (512, 512), first_kernel: int = 3):
        super().__init__()
        layers: list[nn.Module] = []
        channels, size, kernel = in_channels, image_size, first_kernel
        for item in config:
            if item == "A":
                layers.append(nn.AvgPool2d(2))
                size //= 2
            else:
                out = max(1, round(item * width))
                layers += [nn.Conv2d(channels, out, kernel, padding=kernel // 2, bias=False), nn.BatchNorm2d(out),
                           activation(act, levels)]
                channels, kernel = out, 3
        self.features = nn.Sequential(*layers)
        classifier: list[nn.Module] = [nn.Flatten()]
        features = channels * size * size
        for h in hidden:
            out = max(1, round(h * width))
            classifier += [nn.Linear(features, out), activation(act, levels)]
            features = out
        self.classifier = nn.Sequential(*classifier, nn.Linear(features, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def check_convertible(model: nn.Module) -> None:
    """Fail before any work if the network has layers that do not convert to rate-coded spikes."""
    for name, module in model.named_modules():
        if isinstance(module, (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AdaptiveMaxPool2d)):
            raise ConversionError(f"layer {name} is {type(module).__name__}: max pooling does not convert to "
                             "rate-coded spikes; use nn.AvgPool2d")
        if isinstance(module, (nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh, nn.LeakyReLU)):
            raise ConversionError(f"layer {name} is {type(module).__name__}: only ReLU or QCFS activations convert")


def load_trained_ann(path) -> tuple[VGG, dict]:
    """The ANN saved by train_ann (eval mode, on CPU) and the params that made it."""
    checkpoint = load_checkpoint(path, written_by="train_ann")
    params = checkpoint["params"]
    model = load_weights(build_ann(params["train_ann"], params["dataset"]), checkpoint, path, "train_ann")
    return model.eval(), checkpoint["params"]
