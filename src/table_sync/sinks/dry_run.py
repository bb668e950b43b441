"""A dry run's destination: writes nothing, so a run proves access and ciphertexts only."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from table_sync.items import Item
from table_sync.sinks.base import Finalized, SinkState

if TYPE_CHECKING:
    from table_sync.source_keys import SourceKeys


class DryRunSink:
    location = None
    key_attributes: tuple[str, ...] = ()
    committed = True

    def prepare(self) -> None:
        return None

    def resume(self, state: SinkState) -> None:
        return None

    def digests(self, keys: Sequence[Item]) -> list[bytes | None]:
        return [None] * len(keys)  # no digests kept: every item is copied

    def write(self, items: Sequence[Item], digests: Sequence[bytes] | None = None) -> None:
        return None

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
        return Finalized()
