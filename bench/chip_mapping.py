"""Whether a network of params.yaml maps onto SANA-FE's Loihi chip, from its shape alone (no training):
each spiking layer's neurons placed from a fresh core, as the chip stage places them, and the
synapses of its largest layer. Prints the mapping error and the layers that fit.

    python bench/chip_mapping.py --experiment conversion-cifar10    # the VGG-16
    python bench/chip_mapping.py --experiment direct-cifar10        # the vgg7
"""

from __future__ import annotations

import argparse

import torch

from deepsnn.chip.loihi import LoihiCosts, cores_needed
from deepsnn.chip.mapping import ChipMappingError, check_cores
from deepsnn.conversion.ann.networks import QCFS, build_ann
from deepsnn.core.data import DATASETS, IMAGE_SHAPES, ImageDataset
from deepsnn.core.params import read_params


def conversion_layers(cfg: dict, dataset: str) -> tuple[list[str], list[int], list[int]]:
    """(names, neurons, synapses into each) of the converted network's spiking layers and its output."""
    ann = build_ann(cfg, dataset).eval()
    shapes: dict[str, tuple[int, ...]] = {}
    hooks = [m.register_forward_hook(lambda m, i, o, n=n: shapes.__setitem__(n, tuple(o.shape[1:])))
             for n, m in ann.named_modules() if isinstance(m, QCFS)]
    channels, size = IMAGE_SHAPES[dataset]
    with torch.no_grad():
        out = ann(torch.zeros(1, channels, size, size))
    for h in hooks:
        h.remove()
    weights = [m for m in ann.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    names = [*shapes, "output"]
    neurons = [int(torch.Size(s).numel()) for s in shapes.values()] + [out.shape[1]]
    fan_in = [w.weight[0].numel() for w in weights]  # synapses per neuron (padding aside)
    synapses = [n * f for n, f in zip(neurons, fan_in)]
    return names, neurons, synapses


def direct_layers(cfg: dict, dataset: str) -> tuple[list[str], list[int], list[int]]:
    from deepsnn.direct.spatial import build_spatial_model

    channels, size = IMAGE_SHAPES[dataset]
    empty = torch.zeros(1, channels, size, size, dtype=torch.uint8)
    data = ImageDataset(empty, torch.zeros(1, dtype=torch.long), empty, torch.zeros(1, dtype=torch.long),
                        list(range(10)), dataset)
    model = build_spatial_model(cfg, data).eval()
    from deepsnn.evaluation.simulation import simulate_images
    from deepsnn.core.training import to_float

    sim = simulate_images(model.step_outputs, model.spiking_layers, empty, 1, 1, torch.device("cpu"), to_float, "shapes")
    names, neurons = sim.spikes["names"], sim.spikes["neurons"]
    weights = [*model.convs[1:], model.fc]
    synapses = [0] + [n * w.weight[0].numel() for n, w in zip(neurons[1:], weights)]
    return names, neurons, synapses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", default="conversion-cifar10")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args()
    pipeline, dataset = args.experiment.split("-", 1)
    params = read_params(["params.yaml", f"experiments/{args.experiment}.yaml"])
    section = params["train_ann" if pipeline == "conversion" else "train_spatial"]
    names, neurons, synapses = (conversion_layers if pipeline == "conversion" else direct_layers)(section, dataset)
    costs = LoihiCosts.read()
    print(f"{args.experiment} ({DATASETS[dataset].torchvision_name}): {sum(neurons):,} neurons in {len(names)} layers, "
          f"{sum(synapses):,} synapses; the chip: {costs.cores} cores of {costs.neurons_per_core:,} neurons")
    for name, n, s in zip(names, neurons, synapses):
        print(f"  {name}: {n:,} neurons, {cores_needed(n, costs)} cores, about {s:,} synapses in")
    try:
        check_cores(names, neurons, costs)
        print("fits the chip's cores")
    except ChipMappingError as err:
        print(f"does not map: {err}")


if __name__ == "__main__":
    main()
