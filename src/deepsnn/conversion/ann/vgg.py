"""VGG-16 for CIFAR-10, built to convert: Conv -> BN -> activation -> AvgPool, FX-traceable.

13 conv layers and 3 linear layers. The activation is plain `nn.ReLU` or QCFS (Bu et al., ICLR
2022): a trainable clip-floor-shift quantiser whose L levels match what an IF neuron with
threshold lambda and initial potential lambda/2 can emit in L steps, which makes conversion
nearly lossless at low T.
"""

from __future__ import annotations

import torch
from torch import nn

from deepsnn.core.checkpoint import load_checkpoint, load_weights
from deepsnn.core.errors import ConversionError

# numbers are conv widths, "A" is a 2x2 average pool (max pooling does not convert to spikes)
VGG16 = [64, 64, "A", 128, 128, "A", 256, 256, 256, "A", 512, 512, 512, "A", 512, 512, 512, "A"]


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


def build_vgg(cfg: dict) -> VGG:
    """The network described by params.yaml's train_ann section."""
    return VGG(width=cfg["width"], act=cfg["activation"], levels=cfg["qcfs_levels"])


def activation(kind: str, levels: int) -> nn.Module:
    if kind == "relu":
        return nn.ReLU()
    if kind == "qcfs":
        return QCFS(levels)
    raise ValueError(f"unknown activation {kind!r}; allowed: relu, qcfs")


class VGG(nn.Module):
    """VGG for 32x32 images; `width` scales every layer (1.0 = the real VGG-16)."""

    def __init__(self, config: list = VGG16, width: float = 1.0, num_classes: int = 10,
                 act: str = "relu", levels: int = 4, in_channels: int = 3, image_size: int = 32):
        super().__init__()
        layers: list[nn.Module] = []
        channels, size = in_channels, image_size
        for item in config:
            if item == "A":
                layers.append(nn.AvgPool2d(2))
                size //= 2
            else:
                out = max(1, round(item * width))
                layers += [nn.Conv2d(channels, out, 3, padding=1, bias=False), nn.BatchNorm2d(out),
                           activation(act, levels)]
                channels = out
        self.features = nn.Sequential(*layers)
        hidden = max(1, round(512 * width))
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(channels * size * size, hidden), activation(act, levels),
            nn.Linear(hidden, hidden), activation(act, levels),
            nn.Linear(hidden, num_classes),
        )

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


def load_trained_vgg(path) -> tuple[VGG, dict]:
    """The ANN saved by train_ann (eval mode, on CPU) and the params that made it."""
    checkpoint = load_checkpoint(path, written_by="train_ann")
    model = load_weights(build_vgg(checkpoint["params"]["train_ann"]), checkpoint, path, "train_ann")
    return model.eval(), checkpoint["params"]
