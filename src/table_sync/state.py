"""The run-state store in AccountB (STATE_TABLE): checkpoints, segment progress and the lease.

One DynamoDB table keyed by ``id`` (S):

* ``lease#<destination>``: which run may write the destination, until ``expires_at``. Taken
  with a conditional write, so two runs never write the same destination at once; a crashed
  run's lease simply expires and the next run takes it over.
* ``run#<run-id>#segment#<n>``: where segment n of a run stands: the scan's LastEvaluatedKey,
  its counts, its sink's state (the S3 data files it has written) and whether it is done. Saved
  after the
  destination write it covers, so a crash between the two repeats that page (idempotently:
  puts of the same items, or the same data-file name overwritten) and loses nothing.
* ``run#<run-id>#segment#<n>#keys#<page>#<chunk>``: the hashes of the keys page n scanned, for
  the mirror's sweep (:class:`KeyLedger`).
* ``exports#<destination>`` and ``export#<destination>#<run-id>``: an s3:// copy's chain of
  complete exports, full and incremental (``sinks/change_index.ExportChain``); never expire.
"""

from __future__ import annotations

import json
import sys
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from table_sync.aws.clients import caller_client
from table_sync.aws.errors import response_item, translated
from table_sync.errors import DestinationError
from table_sync.items import Item, from_json_item, to_json_item

if TYPE_CHECKING:
    import boto3
    from mypy_boto3_dynamodb import DynamoDBClient

    from table_sync.models import Settings

RETENTION_SECONDS = 30 * 24 * 3600


@dataclass
class Checkpoint:
    run_id: str
    segment: int
    total_segments: int
    last_evaluated_key: Item | None = None
    done: bool = False
    pages: int = 0
    items_scanned: int = 0
    items_decrypted: int = 0
    attributes_decrypted: int = 0
    items_written: int = 0
    items_quarantined: int = 0
    items_unchanged: int = 0
    # Items whose copy is (or in a dry run, would be) written, and their write capacity units.
    items_changed: int = 0
    write_units: int = 0
    kms_requests: int = 0
    kms_throttles: int = 0
    kms_wait_ms: int = 0
    # Items TRANSFORM left out of the copy; AccountB's KMS requests (HASH_KEY_ARN,
    # DESTINATION_ATTRIBUTE_KEY_ARN).
    items_filtered: int = 0
    destination_kms_requests: int = 0
    # What the sink needs to resume and to finalize (Sink.state()).
    sink: dict[str, Any] = field(default_factory=dict)
    started_at: str = ""
    # The settings that shape the run's copy, by variable (runs.run_shape): a resume or a
    # finalize with other values is refused. Empty in checkpoints written before it was kept.
    shape: dict[str, str] = field(default_factory=dict)

    COUNTS = (
        "pages",
        "items_scanned",
        "items_decrypted",
        "attributes_decrypted",
        "items_written",
        "items_quarantined",
        "items_unchanged",
        "items_changed",
        "write_units",
        "kms_requests",
        "kms_throttles",
        "kms_wait_ms",
        "items_filtered",
        "destination_kms_requests",
    )

    @classmethod
    def combined(cls, checkpoints: list[Checkpoint]) -> Checkpoint:
        """The whole run: every segment's counts added up, from the earliest start."""
        first = checkpoints[0]
        total = cls(
            run_id=first.run_id,
            segment=0,
            total_segments=first.total_segments,
            done=all(c.done for c in checkpoints),
            started_at=min(c.started_at for c in checkpoints),
        )
        for name in cls.COUNTS:
            setattr(total, name, sum(int(getattr(c, name)) for c in checkpoints))
        return total


@dataclass(frozen=True)
class Lease:
    held: bool
    holder: str
    expires_at: int


class StateStore:
    def __init__(
        self, client: DynamoDBClient, table_name: str, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._client = client
        self.table_name = table_name
        self._clock = clock

    @classmethod
    def for_settings(cls, settings: Settings, destination: boto3.Session) -> StateStore | None:
        """STATE_TABLE's store, unless none is configured or this is a dry run (which writes
        nothing, state included)."""
        if not settings.state_table or settings.dry_run:
            return None
        return cls(caller_client(destination, "dynamodb"), settings.state_table)

    # -- lease -------------------------------------------------------------------------------

    def acquire_lease(self, destination: str, run_id: str, seconds: int) -> Lease:
        """Take (or extend) the destination's lease for ``run_id``; free or expired leases are
        taken over. Returns who holds it now."""
        now = int(self._clock())
        expires = now + seconds
        try:
            with self._translated("take the lease", passing="ConditionalCheckFailedException"):
                self._client.put_item(
                    TableName=self.table_name,
                    Item={
                        "id": {"S": f"lease#{destination}"},
                        "run_id": {"S": run_id},
                        "expires_at": {"N": str(expires)},
                        "ttl": {"N": str(expires + RETENTION_SECONDS)},
                    },
                    ConditionExpression=(
                        "attribute_not_exists(id) OR expires_at < :now OR run_id = :run"
                    ),
                    ExpressionAttributeValues={":now": {"N": str(now)}, ":run": {"S": run_id}},
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
            return Lease(True, run_id, expires)
        except ClientError as exc:  # only ConditionalCheckFailedException passes: held elsewhere
            old = response_item(exc) or self._get(f"lease#{destination}") or {}
            return Lease(
                False,
                old.get("run_id", {}).get("S", "?"),
                int(old.get("expires_at", {}).get("N", "0")),
            )

    def release_lease(self, destination: str, run_id: str) -> None:
        """Give the lease up, if ``run_id`` still holds it (else another run does: keep it)."""
        with self._translated("release the lease", ignoring="ConditionalCheckFailedException"):
            self._client.delete_item(
                TableName=self.table_name,
                Key={"id": {"S": f"lease#{destination}"}},
                ConditionExpression="run_id = :run",
                ExpressionAttributeValues={":run": {"S": run_id}},
            )

    # -- checkpoints ------------------------------------------------------------------------

    def load(self, run_id: str, segment: int) -> Checkpoint | None:
        item = self._get(self._segment_id(run_id, segment))
        if item is None:
            return None
        data = json.loads(item["state"]["S"])
        lek = data.pop("last_evaluated_key", None)
        if "files" in data:  # written before sinks kept their own state
            data["sink"] = {"files": data.pop("files")}
        return Checkpoint(**data, last_evaluated_key=from_json_item(lek) if lek else None)

    def save(self, checkpoint: Checkpoint) -> None:
        data = {k: v for k, v in vars(checkpoint).items() if k != "last_evaluated_key"}
        if checkpoint.last_evaluated_key:
            data["last_evaluated_key"] = to_json_item(checkpoint.last_evaluated_key)
        with self._translated("save the checkpoint"):
            self._client.put_item(
                TableName=self.table_name,
                Item={
                    "id": {"S": self._segment_id(checkpoint.run_id, checkpoint.segment)},
                    "state": {"S": json.dumps(data, separators=(",", ":"))},
                    "ttl": {"N": str(int(self._clock()) + RETENTION_SECONDS)},
                },
            )

    def segments(self, run_id: str, total_segments: int) -> list[Checkpoint | None]:
        return [self.load(run_id, n) for n in range(total_segments)]

    # -- full copies (FULL_COPY_EVERY) --------------------------------------------------------

    def runs_since_full_copy(self, destination: str) -> int | None:
        """Complete runs into ``destination`` since its last full copy (None: none recorded)."""
        record = self._get(f"copies#{destination}")
        return int(record["since_full"]["N"]) if record else None

    def record_complete_run(self, destination: str, *, full: bool) -> None:
        """Count a complete run: a full copy starts the count again."""
        since = 0 if full else (self.runs_since_full_copy(destination) or 0) + 1
        self.put(f"copies#{destination}", {"since_full": {"N": str(since)}}, expires=False)

    def source_items(self, source_table: str) -> int | None:
        """How many items the last complete run scanned in ``source_table`` (None: no run has
        recorded it): what the CLI's progress line expects a run to scan."""
        record = self._get(f"source#{source_table}")
        return int(record["items"]["N"]) if record and "items" in record else None

    def record_source_items(self, source_table: str, items: int) -> None:
        self.put(f"source#{source_table}", {"items": {"N": str(items)}}, expires=False)

    # -- other records (see KeyLedger) ------------------------------------------------------

    def put(self, record_id: str, attributes: dict[str, Any], *, expires: bool = True) -> None:
        """Save a record; it expires after RETENTION_SECONDS unless ``expires`` is false."""
        item = {"id": {"S": record_id}, **attributes}
        if expires:
            item["ttl"] = {"N": str(int(self._clock()) + RETENTION_SECONDS)}
        with self._translated("save run records"):
            self._client.put_item(TableName=self.table_name, Item=item)

    def get(self, record_id: str) -> dict[str, Any] | None:
        return self._get(record_id)

    # -- helpers ----------------------------------------------------------------------------

    @staticmethod
    def _segment_id(run_id: str, segment: int) -> str:
        return f"run#{run_id}#segment#{segment}"

    def _get(self, key: str) -> dict[str, Any] | None:
        with self._translated("read the state"):
            response = self._client.get_item(
                TableName=self.table_name, Key={"id": {"S": key}}, ConsistentRead=True
            )
        return response.get("Item")

    def _translated(
        self, what: str, *, passing: str | None = None, ignoring: str | None = None
    ) -> Any:
        """Errors become DestinationError naming STATE_TABLE, but for the expected codes
        (``passing`` and ``ignoring``, as in :func:`translated`)."""
        return translated(
            DestinationError,
            lambda code: f"cannot {what} in STATE_TABLE {self.table_name}: {code}",
            passing=passing,
            ignoring=ignoring,
        )


# A state item holds up to 400 KB: key hashes go in chunks of at most this many (8 bytes each).
KEYS_PER_CHUNK = 40_000


class KeyLedger:
    """The keys a run has seen in the source, as 64-bit hashes, one record per scanned page
    (``run#<run-id>#segment#<n>#keys#<page>#<chunk>``) in the state store. A page's record is
    written before the checkpoint that covers the page, so every page a checkpoint counts has
    its keys here; a page repeated after a crash rewrites the same record. The mirror's sweep
    deletes from the copy only keys that are not here (and that the source confirms it no
    longer holds): a record with extra keys can only keep an item, never delete one."""

    def __init__(self, store: StateStore) -> None:
        self._store = store

    def record(self, run_id: str, segment: int, page: int, hashes: list[int]) -> None:
        packed = array("Q", sorted(hashes))
        if sys.byteorder != "big":
            packed.byteswap()
        chunks = max(1, -(-len(packed) // KEYS_PER_CHUNK))
        for chunk in range(chunks):
            part = packed[chunk * KEYS_PER_CHUNK : (chunk + 1) * KEYS_PER_CHUNK]
            self._store.put(
                self._id(run_id, segment, page, chunk),
                {"hashes": {"B": part.tobytes()}, "chunks": {"N": str(chunks)}},
            )

    def hashes(self, run_id: str, segment: int, page: int) -> array[int]:
        """A page's key hashes (empty if the page left no record)."""
        result: array[int] = array("Q")
        chunk, chunks = 0, 1
        while chunk < chunks:
            item = self._store.get(self._id(run_id, segment, page, chunk))
            if item is None:
                break
            part = array("Q", item["hashes"]["B"])
            if sys.byteorder != "big":
                part.byteswap()
            result.extend(part)
            chunks = int(item["chunks"]["N"])
            chunk += 1
        return result

    @staticmethod
    def _id(run_id: str, segment: int, page: int, chunk: int) -> str:
        return f"run#{run_id}#segment#{segment}#keys#{page}#{chunk}"


class MemoryLedger:
    """A dry run's :class:`KeyLedger`: the same records, kept in memory (a dry run writes no
    state, and runs in one invocation)."""

    def __init__(self) -> None:
        self._pages: dict[tuple[str, int, int], array[int]] = {}

    def record(self, run_id: str, segment: int, page: int, hashes: list[int]) -> None:
        self._pages[(run_id, segment, page)] = array("Q", sorted(hashes))

    def hashes(self, run_id: str, segment: int, page: int) -> array[int]:
        return self._pages.get((run_id, segment, page), array("Q"))
