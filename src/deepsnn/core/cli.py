"""What every stage CLI shares: clean one-line errors for bad params, data or models, and Ctrl-C."""

from __future__ import annotations

import argparse
import sys
from typing import Callable

from deepsnn.core.errors import UserError


def run(main: Callable[[], None]) -> None:
    """Run a stage's main(); a user error prints one clear line and exits 1, no traceback. Ctrl-C
    prints one line and exits 130, as a shell does for an interrupted command: outputs are written
    atomically (whole or not at all) at the end, and DVC records nothing for a failed stage."""
    try:
        main()
    except UserError as err:
        sys.exit(f"error: {err}")
    except KeyboardInterrupt:
        print("\ninterrupted: the stage stopped before it finished; no output file is half-written",
              file=sys.stderr)
        sys.exit(130)


def add_params_argument(parser: argparse.ArgumentParser) -> None:
    """--params FILE [FILE ...]: params.yaml, then an experiment's file of differences (merged key by key)."""
    parser.add_argument("--params", nargs="+", default=["params.yaml"],
                        help="params.yaml, then the experiment's file of what differs from it (merged key by key)")
