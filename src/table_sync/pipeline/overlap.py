"""The segment's stages side by side: a page is written while the next one decrypts, and the
page after that is read while the first is still being written. The next read starts once a
page is decrypted, not before: reading a page while another decrypts and a third is written
would hold three pages, which costs memory (a parsed 1 MB page is several MB) and, measured,
gained next to nothing (bench/). At most three pages are held at once, briefly (a quiet page,
one with little to decrypt, is compared while the next two are read: see segment.py), and a
checkpoint still covers only pages that reached the destination: pages are committed one at a
time, in order, by one thread."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Generic, TypeVar

from table_sync.observability import logger

T = TypeVar("T")


class ReadAhead(Generic[T]):
    """``pages``, each read on ``reader`` (and passed to ``after_read``, the read budget, on
    that thread); the next pages' reads start when the caller says (``start``), and at the
    latest when it asks for a page. The reader is one thread, so reads queued together run one
    after another, each from where the last ended. An error reading a page is raised where the
    page would have been."""

    def __init__(
        self, pages: Iterator[T], reader: ThreadPoolExecutor, after_read: Callable[[T], None]
    ) -> None:
        self._pages = pages
        self._reader = reader
        self._after_read = after_read
        self._ahead: deque[Future[T | None]] = deque()
        self._done = False

    def _read(self) -> T | None:
        page = next(self._pages, None)
        if page is not None:
            self._after_read(page)
        return page

    def start(self, pages: int = 1) -> None:
        """Reads under way for the next ``pages`` pages (those not yet asked for)."""
        while len(self._ahead) < pages and not self._done:
            self._ahead.append(self._reader.submit(self._read))

    def __iter__(self) -> Iterator[T]:
        try:
            while True:
                self.start()
                page = self._ahead.popleft().result()
                if page is None:
                    self._done = True
                    return
                yield page
        finally:
            if self._ahead:  # the caller stopped early: let the reads finish
                wait(self._ahead)


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
