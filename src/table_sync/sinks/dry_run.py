"""A dry run's destination: writes nothing; reports what a real run would write and delete."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from table_sync.errors import DestinationError
from table_sync.items import Item
from table_sync.observability import logger
from table_sync.sinks.base import Finalized, SinkState
from table_sync.sinks.dynamodb import DynamoDBSink

if TYPE_CHECKING:
    from table_sync.source_keys import SourceKeys


class DryRunSink:
    """Writes nothing. With the real destination beside it (``inner``, a dynamodb:// copy), it
    reads the copies' digests, so the dry run decrypts what a real run would, and counts the
    deletions a real run's sweep would make, deleting none."""

    location = None
    committed = True

    def __init__(self, inner: DynamoDBSink | None = None) -> None:
        self._inner = inner

    @property
    def key_attributes(self) -> tuple[str, ...]:
        return self._inner.key_attributes if self._inner is not None else ()

    def prepare(self) -> None:
        if self._inner is None:
            return
        try:
            self._inner.prepare()
        except DestinationError as exc:  # no copy yet: a real run would copy everything
            logger.warning("dry run: the destination cannot be read", extra={"error": str(exc)})
            self._inner = None

    def resume(self, state: SinkState) -> None:
        return None

    def digests(self, keys: Sequence[Item]) -> list[bytes | None]:
        if self._inner is None:
            return [None] * len(keys)  # no copy to compare with: every item would be copied
        return self._inner.digests(keys)

    def write(self, items: Sequence[Item], digests: Sequence[bytes] | None = None) -> int:
        """Nothing written; the write units a real run would use."""
        if self._inner is None:
            return 0
        return self._inner.as_written(items, digests)[1]

    def remove(self, keys: Sequence[Item]) -> int:
        """Nothing deleted; the write units a real run's deletes would use."""
        return len(keys) if self._inner is not None else 0

    def flush(self) -> None:
        return None

    def state(self) -> dict[str, Any]:
        return {}

    def finalize(
        self,
        states: Sequence[SinkState],
        *,
        started_at: datetime,
        finished_at: datetime,
        source: SourceKeys | None = None,
    ) -> Finalized:
        if self._inner is None or source is None:
            return Finalized()
        return Finalized(items_swept=self._inner.sweep(source, delete=False))
