"""What every stage CLI shares: clean one-line errors for bad params or bad data."""

from __future__ import annotations

import sys
from typing import Callable

from deepsnn.data import DataError
from deepsnn.params import ParamsError


def run(main: Callable[[], None]) -> None:
    """Run a stage's main(); a known user error prints one clear line and exits 2, no traceback."""
    try:
        main()
    except (ParamsError, DataError) as err:
        sys.exit(f"error: {err}")
