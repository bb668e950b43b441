"""What the mirror's sweep holds of the keys a run saw (source_keys.SourceKeys.seen): their
hashes, sorted, in 8 bytes a key, gathered in at most twice that. SWEEP_MEMORY_BYTES, and the
number of passes a sweep makes over the copy, are counted in those bytes; the function has
512 MB (template.yaml)."""

from __future__ import annotations

import random
import tracemalloc
from typing import Any

from table_sync.source_keys import SourceKeys
from table_sync.state import MemoryLedger

PAGES, PER_PAGE = 100, 2_000  # 200,000 keys, 2,000 a page as a 1 MB page of small items


def _seen_keys() -> tuple[SourceKeys, list[int]]:
    ledger, rng, every = MemoryLedger(), random.Random(7), []
    for page in range(1, PAGES + 1):
        hashes = [rng.getrandbits(64) for _ in range(PER_PAGE)]
        ledger.record("run-1", 0, page, hashes)
        every.extend(hashes)
    table: Any = None  # the source is not asked anything here
    return SourceKeys(table, ledger, "run-1", [(0, PAGES)], keys_seen=len(every)), every


def test_the_seen_keys_are_every_recorded_hash_sorted_in_each_part() -> None:
    keys, every = _seen_keys()
    assert list(keys.seen(0, 1)) == sorted(every)
    parts = [list(keys.seen(part, 3)) for part in range(3)]
    assert all(part == sorted(part) for part in parts)
    assert sorted(h for part in parts for h in part) == sorted(every)
    assert all(h % 3 == n for n, part in enumerate(parts) for h in part)


def test_gathering_the_seen_keys_takes_at_most_16_bytes_a_key() -> None:
    """It took about 70 (a list of Python ints, sorted): a mirror of ten million items would have
    needed 700 MB at its sweep, more than the function's 512 MB."""
    keys, every = _seen_keys()
    del every
    tracemalloc.start()
    try:
        seen = keys.seen(0, 1)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(seen) == PAGES * PER_PAGE
    assert peak <= 16 * len(seen) + 1_000_000  # the sorted array, and one copy while merging
