"""Destinations in AccountB, one module each, behind one small interface."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from table_sync.items import Item


class Sink(Protocol):
    """Where decrypted items go.

    ``prepare`` checks the destination before the scan starts (so a missing table or bucket fails
    before any KMS request); ``write`` takes one page; ``finish`` makes the copy complete.
    """

    @property
    def location(self) -> str | None: ...

    @property
    def key_attributes(self) -> tuple[str, ...]: ...

    @property
    def items_written(self) -> int: ...

    @property
    def pending(self) -> bool:
        """Items written to a buffer but not yet to the destination (no checkpoint now)."""
        ...

    @property
    def files(self) -> list[dict[str, Any]]:
        """What a checkpoint must remember to finish the copy later (S3 data files)."""
        ...

    def restore(self, files: list[dict[str, Any]]) -> None: ...

    def flush(self) -> None: ...

    def prepare(self) -> None: ...

    def write(self, items: Sequence[Item]) -> None: ...

    def finish(self, *, started_at: datetime, finished_at: datetime) -> None: ...


class DryRunSink:
    """Writes nothing: a dry run scans and decrypts, to prove access and ciphertexts."""

    location = None
    key_attributes: tuple[str, ...] = ()
    items_written = 0
    pending = False
    files: list[dict[str, Any]] = []  # noqa: RUF012 - never mutated

    def restore(self, files: list[dict[str, Any]]) -> None:
        return None

    def flush(self) -> None:
        return None

    def prepare(self) -> None:
        return None

    def write(self, items: Sequence[Item]) -> None:
        return None

    def finish(self, *, started_at: datetime, finished_at: datetime) -> None:
        return None
