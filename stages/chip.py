"""DVC stage `chip`: run one experiment's SNN on SANA-FE's Loihi model (the first `chip.images` test
images at T_eval) beside the project's own simulator: predictions and outputs compared image by
image, SANA-FE's energy, time and event counts, and the analytical estimate of the same run.

A network the chip cannot hold is reported (the mapping error and the layers that fit), not run."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from deepsnn.chip.loihi import ChipLayers, LoihiCosts
from deepsnn.chip.mapping import ChipMappingError, check_cores, check_pipeline_start, from_chain, from_spiking_conv_net
from deepsnn.chip.params import CHIP
from deepsnn.chip.run import Schedule, analytic_uj, run_images, scheduled_counts
from deepsnn.core import cli
from deepsnn.core.data import load_prepared
from deepsnn.core.io import write_json
from deepsnn.core.params import load_params
from deepsnn.core.training import to_float
from deepsnn.evaluation.simulation import simulate_images

PARAMS = ["T_eval", "chip"]  # must match dvc.yaml


def load_network(experiment: str, snn_path: Path, data_path: Path):
    """(simulator's step_outputs, its spiking layers, prepare, chip-network builder, output accumulators,
    population, data) of the experiment's SNN."""
    pipeline = experiment.split("-", 1)[0]
    if pipeline == "conversion":
        from deepsnn.conversion.ann.training import normalizer
        from deepsnn.conversion.chain_simulator import ChainSimulator
        from deepsnn.conversion.snn import load_snn_alone

        snn, ann_params = load_snn_alone(snn_path)
        data = load_prepared(data_path, expected=ann_params["dataset"])
        simulator = ChainSimulator(snn)
        return (simulator.step_outputs, simulator.spiking_layers, normalizer(data.name),
                lambda example, limit: from_chain(simulator, example, limit), len(data.classes), 1, data)
    from deepsnn.direct.spatial import load_spatial_model

    data = load_prepared(data_path)
    model, _ = load_spatial_model(snn_path, data)
    return (model.step_outputs, model.spiking_layers, to_float,
            lambda example, limit: from_spiking_conv_net(model, example, limit), 0, model.population, data)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_params_argument(parser)
    parser.add_argument("--experiment", required=True, help="<pipeline>-<data set>, a key of chip.experiments")
    parser.add_argument("--data", type=Path, required=True, help="prepared data set (.pt)")
    parser.add_argument("--snn", type=Path, required=True, help="the experiment's SNN (convert's or train_spatial's)")
    parser.add_argument("--metrics", type=Path, required=True, help="metrics JSON to write")
    args = parser.parse_args(argv)
    start = time.perf_counter()

    params = load_params(args.params, CHIP)
    cfg, T = params["chip"], params["T_eval"]
    step_outputs, layers, prepare, build, accumulators, population, data = load_network(args.experiment, args.snn,
                                                                                          args.data)
    images, labels = data.test_images[:cfg["images"]], data.test_labels[:cfg["images"]]
    costs = LoihiCosts.read()
    device = torch.device("cpu")  # a handful of images; SANA-FE runs on the CPU anyway
    first = simulate_images(step_outputs, layers, images[:1], 1, 1, device, prepare, "chip: layer shapes")
    names = first.spikes["names"] + (["output"] if accumulators else [])
    neurons = first.spikes["neurons"] + ([accumulators] if accumulators else [])
    schedule = Schedule(T, len(names))
    metrics = {"experiment": args.experiment, "T": T, "images": len(images), "chip_steps": schedule.steps,
               "layers": len(names), "neurons": sum(neurons), "chip_cores": costs.cores}
    try:
        check_cores(names, neurons, costs)
        network = build(prepare(images[:1]), cfg["max_synapses"])
        check_pipeline_start(network)
    except ChipMappingError as err:
        print(f"does not map: {err}")
        write_json({**metrics, "maps": False, "mapping_error": str(err), "stage_time_s": round(time.perf_counter() - start, 1)},
                   args.metrics)
        return
    own = simulate_images(step_outputs, layers, images, schedule.steps, len(images), device, prepare,
                          f"chip: own simulator T<={schedule.steps}")
    currents = network.first_current(prepare(images)).detach()
    chip = run_images(network, costs, currents, T, population)
    own_outputs = own.outputs[T - 1].double()
    equal_predictions = chip["outputs"].argmax(1) == own_outputs.argmax(1)
    if accumulators:  # summed analog output: equal up to float32 rounding
        equal_outputs = torch.isclose(chip["outputs"], own_outputs, rtol=1e-4, atol=1e-4).all(1)
    else:  # spike counts: exactly
        equal_outputs = (chip["outputs"] == own_outputs).all(1)
    estimate = analytic_uj(costs, ChipLayers.of(layers, [tuple(s) for s in own.spikes["shapes"]], accumulators, costs),
                           own, schedule)
    own_spikes, own_synops = scheduled_counts(own, schedule)  # per layer, per image, on the chip's schedule
    energy_uj = chip["energy_j"]["total"] * 1e6
    metrics.update({
        "maps": True, "synapses": network.synapse_count,
        "predictions_equal": int(equal_predictions.sum()), "outputs_equal": int(equal_outputs.sum()),
        "accuracy": round(100.0 * float((chip["outputs"].argmax(1) == labels).float().mean()), 2),
        "energy_uj": round(energy_uj, 3),
        "energy_uj_parts": {k: round(v * 1e6, 3) for k, v in chip["energy_j"].items() if k != "total"},
        "analytic_energy_uj": round(estimate, 3), "analytic_over_chip": round(estimate / energy_uj, 4),
        "chip_time_ms": round(chip["sim_time_s"] * 1e3, 4),
        "synaptic_events": round(chip["synaptic_events"]), "neuron_updates": round(chip["neuron_updates"]),
        "spikes": round(chip["spikes"]), "messages": round(chip["messages"]),
        # the simulator's own counts of the same schedule (SynOps include synapses of zero weight,
        # which the chip does not hold), and how far the outputs are apart at most
        "simulator_spikes": round(float(own_spikes.sum())), "simulator_synops": round(float(own_synops.sum())),
        "max_output_difference": float(f"{float((chip['outputs'] - own_outputs).abs().max()):.3g}"),
        "build_s": round(chip["build_s"], 1), "run_s_per_image": round(chip["run_s"] / len(images), 2),
        "stage_time_s": round(time.perf_counter() - start, 1)})
    write_json(metrics, args.metrics)
    print(f"{args.experiment} on SANA-FE's Loihi at T={T}: {metrics['predictions_equal']}/{len(images)} predictions "
          f"and {metrics['outputs_equal']} outputs equal the simulator's; {energy_uj:.1f} uJ per image, "
          f"estimate {estimate:.1f} uJ ({metrics['analytic_over_chip']:.3f}x)")


if __name__ == "__main__":
    cli.run(main)
