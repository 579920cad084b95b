"""What every stage CLI shares: clean one-line errors for bad params, data or models."""

from __future__ import annotations

import argparse
import sys
from typing import Callable

from deepsnn.core.errors import UserError


def run(main: Callable[[], None]) -> None:
    """Run a stage's main(); a user error prints one clear line and exits 1, no traceback."""
    try:
        main()
    except UserError as err:
        sys.exit(f"error: {err}")


def add_params_argument(parser: argparse.ArgumentParser) -> None:
    """--params FILE [FILE ...]: a later file's top-level keys replace an earlier one's."""
    parser.add_argument("--params", nargs="+", default=["params.yaml"],
                        help="params files, merged: a later file's top-level keys replace an earlier one's")
