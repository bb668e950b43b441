"""What the mirror's sweep knows of the source after a complete run: the keys the run's scan saw
(hashes from the :class:`~table_sync.state.KeyLedger`), and the source itself, to confirm that a
key it did not see is really gone before the copy of it is deleted."""

from __future__ import annotations

import heapq
import math
from array import array
from collections.abc import Sequence
from dataclasses import dataclass

from table_sync.aws.dynamodb import SourceTable
from table_sync.concurrency import map_concurrently
from table_sync.items import Item
from table_sync.state import Checkpoint, KeyLedger, MemoryLedger

# Memory for the seen keys' hashes during a sweep (8 bytes a key, 16 while they are gathered); a
# run that saw more keys sweeps in several passes over the copy, each holding the hashes of one
# part of the keys. The function has 512 MB (template.yaml).
SWEEP_MEMORY_BYTES = 256 * 1024 * 1024
SWEEP_BYTES_PER_KEY = 16
# The ledger's records (one a page) read side by side: one after another, a run of a million
# items waited a GetItem's latency about 440 times before its sweep began.
LEDGER_READ_CONCURRENCY = 16


@dataclass
class SourceKeys:
    table: SourceTable
    ledger: KeyLedger | MemoryLedger
    run_id: str
    # Every segment of the run, with the number of pages its checkpoint covers.
    pages: Sequence[tuple[int, int]]
    keys_seen: int = 0

    @classmethod
    def for_run(
        cls, table: SourceTable, ledger: KeyLedger | MemoryLedger, checkpoints: Sequence[Checkpoint]
    ) -> SourceKeys:
        """The keys every segment of a run saw, as far as its checkpoint goes."""
        return cls(
            table,
            ledger,
            checkpoints[0].run_id,
            [(c.segment, c.pages) for c in checkpoints],
            keys_seen=sum(c.items_scanned for c in checkpoints),
        )

    @property
    def parts(self) -> int:
        return max(1, math.ceil(self.keys_seen * SWEEP_BYTES_PER_KEY / SWEEP_MEMORY_BYTES))

    def seen(self, part: int, parts: int) -> array[int]:
        """The sorted hashes of the seen keys whose hash is ``part`` modulo ``parts``. Each
        page's record is sorted (:meth:`KeyLedger.record`), so the pages are merged, never
        sorted as a list of Python ints (about 60 bytes a key): 8 bytes a key for the result,
        and as much again for the pages while they are merged."""
        records = [(segment, page) for segment, pages in self.pages for page in range(1, pages + 1)]
        read = map_concurrently(
            lambda record: self.ledger.hashes(self.run_id, *record),
            records,
            LEDGER_READ_CONCURRENCY,
            "ledger",
        )
        runs = [
            hashes if parts == 1 else array("Q", (h for h in hashes if h % parts == part))
            for hashes in read
        ]
        return array("Q", heapq.merge(*runs))

    def absent(self, keys: Sequence[Item]) -> list[Item]:
        return self.table.absent(keys)
