"""Calls that run side by side: a page's write requests, its digest reads, the sweep's lookups."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def map_concurrently(
    call: Callable[[T], R], args: Sequence[T], concurrency: int, name: str
) -> list[R]:
    """``call`` on every argument, up to ``concurrency`` at once, results in order. Every call
    finishes before the first error (in order) is raised, so no request is left in flight."""
    if concurrency == 1 or len(args) < 2:
        return [call(arg) for arg in args]
    with ThreadPoolExecutor(min(concurrency, len(args)), thread_name_prefix=name) as pool:
        futures = [pool.submit(call, arg) for arg in args]
    return [future.result() for future in futures]
