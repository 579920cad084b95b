"""params.yaml's `chip` section: which experiments run on SANA-FE's Loihi model, and how many images."""

from __future__ import annotations

from typing import Any

from deepsnn.core.params import Int, ParamsError, Pipeline, SECTIONS


class ExperimentNames:
    """A mapping of experiment names (<pipeline>-<data set>, as in experiments/) to their data set."""

    def check(self, key: str, value: Any) -> dict[str, str]:
        if not isinstance(value, dict):
            raise ParamsError(f"{key}: expected a mapping of experiment (<pipeline>-<data set>) to its data set, "
                              f"got {value!r}")
        for name, dataset in value.items():
            pipeline = str(name).split("-", 1)[0]
            if pipeline not in SECTIONS or name != f"{pipeline}-{dataset}":
                raise ParamsError(f"{key}.{name}: expected <pipeline>-<data set>: <data set> with a pipeline of "
                                  f"{', '.join(SECTIONS)} (e.g. conversion-mnist: mnist), got {name}: {dataset}")
        return value


def check_listed(params: dict[str, Any]) -> None:
    for name, dataset in params["chip"]["experiments"].items():
        pipeline = name.split("-", 1)[0]
        if dataset not in params[pipeline]:
            raise ParamsError(f"chip.experiments.{name}: {pipeline} does not run on {dataset} (params.yaml's "
                              f"{pipeline}: {params[pipeline]}); allowed: "
                              f"{', '.join(f'{pipeline}-{d}' for d in params[pipeline]) or 'none'}")


CHIP = Pipeline("chip", {
    "chip": {
        "experiments": ExperimentNames(),  # one `chip@<experiment>` stage each
        "images": Int(min=1),  # first test images run on the chip model (each takes seconds to minutes)
        "max_synapses": Int(min=1),  # a layer with more synapses is refused before the chip is built (memory)
    },
}, relations=check_listed)
