"""The garbage collector during a segment's page loop.

A segment's process holds, for the whole loop, what its start-up made: the modules, botocore's
service models, pydantic's schemas, the clients. CPython's full collections walk every object
the collector tracks, so each one walked all of that again, for nothing: measured on a pinned
segment of 10,000 items on the latency model, 6 full collections took 0.60 s of its 10.3 s of
CPU (bench/). :func:`start_up_frozen` moves what exists when the loop starts out of the
collector's way (``gc.freeze``, which the Python documentation describes for objects that live
as long as the process) and back when it ends (``gc.unfreeze``), so a warm invocation's
leftovers are collected as before. (Two segments side by side in one process would share it:
the first to end unfreezes for both, which costs the other only the saving.)
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def start_up_frozen() -> Iterator[None]:
    """Within the block, full collections skip every object that existed on entry."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
