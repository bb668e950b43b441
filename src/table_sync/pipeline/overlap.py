"""The segment's stages side by side: the next page is read while this one decrypts, and a page
is written while the next one decrypts. At most three pages are held at once (one being
written, one decrypting, one read ahead), and a checkpoint still covers only pages that reached
the destination: pages are committed one at a time, in order, by one thread."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import TypeVar

from table_sync.observability import logger

T = TypeVar("T")


def read_ahead(
    pages: Iterator[T], reader: ThreadPoolExecutor, after_read: Callable[[T], None]
) -> Iterator[T]:
    """``pages``, each read (and passed to ``after_read``, the read budget) on ``reader`` while
    the caller works on the one before; an error reading a page is raised where the page would
    have been."""

    def read() -> T | None:
        page = next(pages, None)
        if page is not None:
            after_read(page)
        return page

    ahead: Future[T | None] | None = reader.submit(read)
    try:
        while ahead is not None:
            page = ahead.result()
            if page is None:
                return
            ahead = reader.submit(read)
            yield page
    finally:
        if ahead is not None:  # the caller stopped early: let the read in flight finish
            wait([ahead])


class CommitBehind:
    """Commits pages on a thread of its own, one at a time and in order: ``submit`` first waits
    for the page before to be committed (raising its error), so at most one is in flight."""

    def __init__(self, committer: ThreadPoolExecutor, on_commit: Callable[[], None]) -> None:
        self._committer = committer
        self._on_commit = on_commit
        self._in_flight: Future[None] | None = None

    def submit(self, commit: Callable[[], None]) -> None:
        self.drain()
        self._in_flight = self._committer.submit(commit)

    def drain(self) -> None:
        """Wait for the page in flight to be committed; raise its error."""
        in_flight, self._in_flight = self._in_flight, None
        if in_flight is not None:
            in_flight.result()
            self._on_commit()

    def abandon(self) -> None:
        """The segment is failing for another reason: still let the page in flight reach the
        destination (so its checkpoint is saved), and log, not raise, its own failure."""
        in_flight, self._in_flight = self._in_flight, None
        if in_flight is None:
            return
        error = in_flight.exception()
        if error is not None:
            logger.warning(
                "the page being written when the segment failed was not committed either",
                extra={"error": type(error).__name__},
            )
