"""Progress of long loops: a live tqdm bar on a terminal, sparse plain lines in a log.

DVC stage logs, `dvc queue logs` and CI are files, not terminals; tqdm would write every update
into them (carriage returns and all). There a loop prints one line at most every `LOG_INTERVAL_S`
seconds instead, and the loops print one summary line per epoch themselves.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm import tqdm

LOG_INTERVAL_S = 30.0
Item = TypeVar("Item")


def on_terminal() -> bool:
    return sys.stderr.isatty()


def progress(items: Iterable[Item], desc: str, total: int | None = None, enabled: bool = True,
             interval_s: float = LOG_INTERVAL_S) -> Iterator[Item]:
    """`items`, reporting progress: a tqdm bar on a terminal; elsewhere a line `desc: i/total`
    every `interval_s` seconds at most (none for a loop that finishes sooner)."""
    if not enabled:
        yield from items
        return
    if on_terminal():
        yield from tqdm(items, desc=desc, total=total, leave=False)
        return
    start = last = time.perf_counter()
    for done, item in enumerate(items, start=1):
        yield item
        now = time.perf_counter()
        if now - last >= interval_s:
            of = f"/{total}" if total is not None else ""
            print(f"{desc}: {done}{of} ({now - start:.0f} s)", file=sys.stderr, flush=True)
            last = now
