"""Python's cyclic garbage collector, paused while a command starts.

Start-up creates tens of thousands of objects that live until exit (modules, classes,
functions, field tables) and no garbage cycles, yet every 700 allocations the collector
scans the young ones again: ~50 collections, ~5-10 ms of a 10-packet ``pcapip analyze``
(issue 12: start-up < 0.15 s). The read loop runs without it for the same reason
(``pcapip.flows.run``).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_off() -> Iterator[None]:
    """No cyclic collection inside the block; the collector's state is restored after it
    (on when it was on), so long-running commands and in-process callers keep theirs."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()
