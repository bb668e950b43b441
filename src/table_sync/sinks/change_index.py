"""An s3:// copy's change index and chain of exports: what lets a run write only what changed
since the previous complete export, in the layout of DynamoDB's incremental export, with a full
snapshot every FULL_SNAPSHOT_EVERY runs.

The index (CHANGE_INDEX_TABLE: a DynamoDB table in AccountB with the source's key schema) holds
an entry per key exported: the digest of the item as it was exported (changes.py, computed from
the ciphertexts: no KMS request), the export that wrote it, and, once the source no longer holds
the key, a tombstone instead of the digest. An entry is trusted only once the export that wrote
it is complete (``export#<destination>#<run-id>`` in the state store, written after that
export's manifests). So a run that crashes, or is abandoned, leaves entries that the next run
ignores: what the abandoned run exported is exported again (and its deletions recorded again)
by the next complete export, and a loader that applies the complete exports in their chain
never misses a change. An index belongs to one destination (ExportChain.claim): a run whose
DESTINATION is another's is refused before it writes, since one destination's run settles and
removes the tombstones the other's next export still needs.

The chain (``exports#<destination>``) names the latest complete export, the full snapshot it
builds on and how many incremental exports followed that snapshot. A run plans its export at its
first step (full or incremental, after which export) and keeps the plan in its checkpoints; it
finishes only if no other export completed since it planned, so the chain has no forks.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from table_sync.errors import ConfigurationError, DestinationError
from table_sync.items import Item, key_of
from table_sync.sinks.dynamodb import DIGEST_ATTRIBUTE, DynamoDBSink
from table_sync.sinks.export_layout import parse_iso, whole_minute

if TYPE_CHECKING:
    from table_sync.source_keys import SourceKeys
    from table_sync.state import StateStore

EXPORT_ATTRIBUTE = "_table_sync_export"
DELETED_ATTRIBUTE = "_table_sync_deleted"
ExportType = Literal["FULL_EXPORT", "INCREMENTAL_EXPORT"]
# The layout the chain's exports are written in: 1, table-sync's own (``.checksum`` files, data
# files named by segment, incremental data beside its manifests); 2, DynamoDB's, file for file.
# A chain in an older layout continues with a full snapshot, so every export a loader reads from
# the newest full snapshot on is in one layout.
EXPORT_LAYOUT = 2


@dataclass(frozen=True)
class ExportPlan:
    """What a run's export is: a full snapshot, or the changes since export ``previous``."""

    export_type: ExportType = "FULL_EXPORT"
    # The latest complete export when the run planned (None: there was none), and its time (a
    # full export's exportTime, an incremental one's exportToTime): this one's exportFromTime.
    previous: str | None = None
    previous_time: str | None = None
    # The full snapshot the chain starts from (for a full snapshot: itself, named at finish).
    full: str | None = None
    # This export's place in the chain (1 for the first), and its full snapshot's.
    seq: int = 1
    full_seq: int = 1

    @property
    def incremental(self) -> bool:
        return self.export_type == "INCREMENTAL_EXPORT"

    @functools.cached_property
    def window_start(self) -> datetime:
        """An incremental export's exportFromTime: the previous export's time, in whole
        minutes (worked out once a plan: every line of the export carries it)."""
        return whole_minute(parse_iso(self.previous_time or ""))

    def to_state(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> ExportPlan:
        return cls(**state)


@dataclass
class ChainHead:
    latest: str
    latest_time: str
    full: str
    seq: int
    full_seq: int
    # EXPORT_LAYOUT of the chain's exports; a chain recorded before it was kept is layout 1.
    layout: int = 1

    @property
    def since_full(self) -> int:
        """How many incremental exports followed the full snapshot."""
        return self.seq - self.full_seq


class ExportChain:
    """The destination's chain of complete exports, in the state store."""

    def __init__(self, store: StateStore, destination: str) -> None:
        self._store = store
        self._destination = destination
        self._positions: dict[str, int | None] = {}

    def head(self) -> ChainHead | None:
        record = self._store.get(f"exports#{self._destination}")
        return ChainHead(**json.loads(record["chain"]["S"])) if record else None

    def plan(self, *, full_every: int, force_full: bool) -> ExportPlan:
        """The next export: a full snapshot when forced, when there is no complete export yet,
        when ``full_every - 1`` incremental exports followed the last full one, or when the
        chain's exports are in an older layout (EXPORT_LAYOUT)."""
        head = self.head()
        if head is None:
            return ExportPlan()
        seq = head.seq + 1
        if force_full or head.since_full + 1 >= full_every or head.layout < EXPORT_LAYOUT:
            return ExportPlan(
                previous=head.latest, previous_time=head.latest_time, seq=seq, full_seq=seq
            )
        return ExportPlan(
            "INCREMENTAL_EXPORT",
            previous=head.latest,
            previous_time=head.latest_time,
            full=head.full,
            seq=seq,
            full_seq=head.full_seq,
        )

    def claim(self, index_table: str) -> None:
        """The change index belongs to this destination, recorded in the state store on its
        first use (``change-index#<table>``). Shared, one destination's run would settle and
        remove a tombstone the other's next export still needs: a lost deletion."""
        record_id = f"change-index#{index_table}"
        record = self._store.get(record_id)
        if record is None:
            self._store.put(record_id, {"destination": {"S": self._destination}}, expires=False)
            return
        owner = record["destination"]["S"]
        if owner != self._destination:
            raise ConfigurationError(
                [
                    f"CHANGE_INDEX_TABLE: {index_table} is the change index of {owner}; "
                    f"DESTINATION {self._destination} needs one of its own (a table with the "
                    "source's key schema): a change index shared by two destinations loses "
                    "deletions"
                ]
            )

    def position(self, export_id: str) -> int | None:
        """``export_id``'s place in the chain, if it completed (None: it did not, or not
        for this destination). Cached: while this run holds the destination's lease, only
        this run can complete an export."""
        if export_id not in self._positions:
            record = self._store.get(f"export#{self._destination}#{export_id}")
            self._positions[export_id] = int(record["seq"]["N"]) if record else None
        return self._positions[export_id]

    def completed(self, export_id: str) -> tuple[int, int] | None:
        """A complete export's item count and exported deletions (None: not complete)."""
        record = self._store.get(f"export#{self._destination}#{export_id}")
        if record is None:
            return None
        return int(record.get("items", {}).get("N", "0")), int(
            record.get("swept", {}).get("N", "0")
        )

    def check(self, export_id: str, plan: ExportPlan) -> None:
        """Refuse to finish a run planned after an export that is no longer the latest."""
        head = self.head()
        latest = head.latest if head else None
        if latest != plan.previous:
            raise DestinationError(
                f"run {export_id} was planned to follow export {plan.previous or '(none)'}, but "
                f"export {latest} has completed since: this run cannot join the chain of "
                "exports; start a new run (its export will include this one's changes)"
            )

    def record(
        self, export_id: str, plan: ExportPlan, export_time: str, *, items: int, swept: int
    ) -> None:
        """Mark ``export_id`` complete (its index entries become trusted), with its item
        count and the deletions it exported, then make it the chain's head. Call after the
        export's manifests are written."""
        self._store.put(
            f"export#{self._destination}#{export_id}",
            {
                "export_type": {"S": plan.export_type},
                "seq": {"N": str(plan.seq)},
                "items": {"N": str(items)},
                "swept": {"N": str(swept)},
            },
            expires=False,
        )
        self._positions[export_id] = plan.seq
        head = ChainHead(
            latest=export_id,
            latest_time=export_time,
            full=(plan.full or export_id) if plan.incremental else export_id,
            seq=plan.seq,
            full_seq=plan.full_seq,
            layout=EXPORT_LAYOUT,
        )
        self._store.put(
            f"exports#{self._destination}",
            {"chain": {"S": json.dumps(asdict(head))}},
            expires=False,
        )


class ChangeIndex:
    """CHANGE_INDEX_TABLE: for each key, the digest of the item as last exported (see the
    module's docstring). Reads and writes in AccountB only."""

    def __init__(self, table: DynamoDBSink, chain: ExportChain, export_id: str) -> None:
        self._table = table
        self.chain = chain
        self._export_id = export_id

    @property
    def key_attributes(self) -> tuple[str, ...]:
        return self._table.key_attributes

    def prepare(self) -> None:
        try:
            self._table.prepare()
        except DestinationError as exc:
            raise DestinationError(f"CHANGE_INDEX_TABLE: {exc}") from exc
        self.chain.claim(self._table.table_name)

    def digests(self, keys: Sequence[Item], since: int) -> list[bytes | None]:
        """The digest each key's item had when a complete export at or after chain position
        ``since`` (the current full snapshot) wrote it. None: not exported since then (an item
        the full snapshot quarantined), deleted, or written by an export that did not
        complete."""
        found = self._table.read(keys, (DIGEST_ATTRIBUTE, EXPORT_ATTRIBUTE, DELETED_ATTRIBUTE))
        return [self._trusted(found.get(self._table.key_id(key)), since) for key in keys]

    def _trusted(self, entry: Item | None, since: int) -> bytes | None:
        if entry is None or DELETED_ATTRIBUTE in entry or DIGEST_ATTRIBUTE not in entry:
            return None
        export = entry.get(EXPORT_ATTRIBUTE, {}).get("S")
        if not export or export == self._export_id:
            return None
        position = self.chain.position(export)
        if position is None or position < since:
            return None
        return bytes(entry[DIGEST_ATTRIBUTE]["B"])

    def record(self, items: Sequence[Item], digests: Sequence[bytes]) -> int:
        """Index the items this export wrote; returns the write units used."""
        entries = [
            {
                **key_of(item, self.key_attributes),
                DIGEST_ATTRIBUTE: {"B": digest},
                EXPORT_ATTRIBUTE: {"S": self._export_id},
            }
            for item, digest in zip(items, digests, strict=True)
        ]
        self._table.write_batches(entries)
        return self._table.as_written(entries, None)[1]

    def forget(self, keys: Sequence[Item]) -> int:
        """A tombstone for each of ``keys``, deleted by this export; returns the write units."""
        self._table.write_batches([self._tombstone(key) for key in keys])
        return len(keys)

    def _tombstone(self, key: Item) -> Item:
        return {**key, DELETED_ATTRIBUTE: {"BOOL": True}, EXPORT_ATTRIBUTE: {"S": self._export_id}}

    def sweep(self, source: SourceKeys, emit: Callable[[list[Item]], None]) -> int:
        """Find the keys the source no longer holds, pass them to ``emit`` (the export's delete
        lines) and leave a tombstone for each; returns how many. An entry the run did not see
        is confirmed absent in the source first (never a deletion of an item still there); a
        tombstone left by an export that completed is dropped (its deletion is exported)."""
        deleted = 0
        for unseen in self._table.unseen(
            source, (EXPORT_ATTRIBUTE, DELETED_ATTRIBUTE), what="CHANGE_INDEX_TABLE: "
        ):
            settled: list[Item] = []
            pending: list[Item] = []
            for entry in unseen:
                (settled if self._settled(entry) else pending).append(
                    key_of(entry, self.key_attributes)
                )
            gone = source.absent(pending)
            emit(gone)
            self._table.write_batches([self._tombstone(key) for key in gone])
            self._table.write_batches(settled, delete=True)
            deleted += len(gone)
        return deleted

    def _settled(self, entry: Item) -> bool:
        """A tombstone whose deletion a complete export holds."""
        export = entry.get(EXPORT_ATTRIBUTE, {}).get("S")
        return (
            DELETED_ATTRIBUTE in entry
            and bool(export)
            and export != self._export_id
            and self.chain.position(str(export)) is not None
        )
