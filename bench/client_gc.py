"""The load generators' own garbage collector, kept out of the timed phases.

Why: a client that keeps a sample per request carries hundreds of thousands of
objects into a 10-minute phase, and each automatic full collection walks them
all with the GIL held. In ``bench/load.py`` (session 10) those pauses took
126-217 ms; the open loop sent nothing meanwhile, then sent every overdue
request at once, and the server shed what went past its 64 in flight: each
503 burst of the sustained phase on SQLite was one of them, to the millisecond
(timed with ``gc.callbacks``), while the server's event loop was idle.

>>> import gc
>>> with no_full_collections():
...     gc.get_threshold()[2] > 1_000_000
True
>>> gc.get_threshold()[2] > 1_000_000
False
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def no_full_collections() -> Iterator[None]:
    """Collect and freeze what exists, then allow only young-generation collections.

    Young collections stay (they free the cycles a request leaves, each over a few
    thousand new objects); the objects that survive them wait for the end of the phase.
    """
    gc.collect()
    gc.freeze()
    young, middle, old = gc.get_threshold()
    gc.set_threshold(young, middle, 2**30)
    try:
        yield
    finally:
        gc.set_threshold(young, middle, old)
        gc.unfreeze()
