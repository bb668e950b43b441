"""The interface every destination implements in full: no caller asks which sink it holds.

A segment step calls ``prepare`` (check the destination before the scan, so a missing table or
bucket fails before any KMS request), ``resume`` with the state its checkpoint kept, ``write``
once a page, and ``flush`` at the end of the step. A checkpoint is saved only while
``committed`` is true (everything written so far is in the destination), and keeps
``state()``. When every segment is done, ``finalize`` completes the copy from the states of all
the run's checkpoints: the S3 export's manifests, or the DynamoDB copy's sweep of deleted items.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from table_sync.items import Item

if TYPE_CHECKING:
    from table_sync.source_keys import SourceKeys

SinkState = Mapping[str, Any]


@dataclass(frozen=True)
class Finalized:
    """What finishing the copy did, for the run's summary."""

    items_swept: int = 0


class Sink(Protocol):
    @property
    def location(self) -> str | None:
        """Where the copy is (a table ARN, an export's S3 URI), once prepared."""
        ...

    @property
    def key_attributes(self) -> tuple[str, ...]:
        """The copy's key attributes, when the destination knows them (to name items)."""
        ...

    @property
    def committed(self) -> bool:
        """Whether every item written so far has reached the destination."""
        ...

    def prepare(self) -> None: ...

    def resume(self, state: SinkState) -> None: ...

    def digests(self, keys: Sequence[Item]) -> list[bytes | None]:
        """The digest each key's copy was made from (None: no copy, or none kept), to skip the
        items that have not changed (see changes.py). Reads in AccountB only."""
        ...

    def write(self, items: Sequence[Item], digests: Sequence[bytes] | None = None) -> int:
        """Write copies; ``digests`` (one per item) are kept with them where the sink keeps
        digests, in the same write. Returns the DynamoDB write units the writes used (0 for a
        destination that is not billed by them), for the summary's cost estimate."""
        ...

    def remove(self, keys: Sequence[Item]) -> int:
        """Remove the copies of these keys (items TRANSFORM now leaves out): deleted from a
        dynamodb:// copy, recorded as deleted in an incremental export, absent from a full
        one by itself. Returns the write units used, as ``write`` does."""
        ...

    def flush(self) -> None: ...

    def state(self) -> dict[str, Any]:
        """What a checkpoint keeps for ``resume`` and ``finalize`` (JSON-serialisable)."""
        ...

    def finalize(
        self,
        states: Sequence[SinkState],
        *,
        started_at: datetime,
        finished_at: datetime,
        source: SourceKeys | None = None,
    ) -> Finalized:
        """Complete the copy. A sink that deletes from its copy deletes only keys that
        ``source`` confirms are no longer in the source."""
        ...
