"""The segment's overlapped stages (pipeline/overlap.py): pages read ahead, commits behind.

The segment loop here is copy_segment's own shape (read ahead, decode, commit behind, drain at
the end), over plain pages, so what it holds and in which order it commits is visible. Slow
commits are a ``threading.Event`` the test sets: a fault moto cannot produce on cue.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from table_sync.pipeline.overlap import CommitBehind, ReadAhead


class Pages:
    """Pages 1..n, each counted when read; page ``fail_at`` fails to be read."""

    def __init__(self, n: int, fail_at: int | None = None) -> None:
        self.n, self.fail_at = n, fail_at
        self.read = 0
        self.threads: set[str] = set()

    def __iter__(self) -> Iterator[int]:
        for page in range(1, self.n + 1):
            self.threads.add(threading.current_thread().name)
            if page == self.fail_at:
                raise RuntimeError(f"scan of page {page} failed")
            self.read = page
            yield page


def run_segment(pages: Pages, commit_delay: threading.Event | None = None) -> dict[str, object]:
    committed: list[int] = []
    held: list[int] = []  # pages read but not yet committed, seen at each commit
    budget: list[int] = []
    with (
        ThreadPoolExecutor(1, thread_name_prefix="scan") as reader,
        ThreadPoolExecutor(1, thread_name_prefix="commit") as writer,
    ):
        behind = CommitBehind(writer, lambda: None)

        def commit(page: int) -> None:
            if commit_delay is not None:
                commit_delay.wait(5)
            held.append(pages.read - len(committed))
            committed.append(page)

        ahead = ReadAhead(iter(pages), reader, budget.append)
        for page in ahead:
            ahead.start()  # as copy_segment does, once the page is decoded
            behind.submit(lambda page=page: commit(page))  # type: ignore[misc]
        behind.drain()
    return {"committed": committed, "held": held, "budget": budget}


def test_every_page_is_committed_once_in_order_and_the_read_budget_sees_each() -> None:
    pages = Pages(20)
    result = run_segment(pages)
    assert result["committed"] == list(range(1, 21))
    assert result["budget"] == list(range(1, 21))
    assert pages.threads == {"scan_0"}  # read on the reader thread, never the caller's


def test_the_next_page_is_read_while_one_is_committed_but_never_more_than_three_held() -> None:
    release = threading.Event()
    pages = Pages(10)
    timer = threading.Timer(0.3, release.set)
    timer.start()
    result = run_segment(pages, commit_delay=release)
    timer.join()
    held = result["held"]
    assert isinstance(held, list)
    # While page 1's commit waited, the loop went on: page 2 decoded, page 3 read.
    assert held[0] == 3
    assert max(held) <= 3


def test_a_failed_read_is_raised_after_the_pages_before_it_are_committed() -> None:
    committed: list[int] = []

    def segment() -> None:
        with ThreadPoolExecutor(1) as reader, ThreadPoolExecutor(1) as writer:
            behind = CommitBehind(writer, lambda: None)
            try:
                for page in ReadAhead(iter(Pages(10, fail_at=4)), reader, lambda _: None):
                    behind.submit(lambda page=page: committed.append(page))  # type: ignore[misc]
                behind.drain()
            except BaseException:
                behind.abandon()
                raise

    with pytest.raises(RuntimeError, match="scan of page 4 failed"):
        segment()
    assert committed == [1, 2, 3]


def test_a_failed_commit_is_raised_by_the_next_submit_and_nothing_after_it_is_committed() -> None:
    committed: list[int] = []

    def commit(page: int) -> None:
        if page == 2:
            raise RuntimeError("write of page 2 failed")
        committed.append(page)

    with ThreadPoolExecutor(1) as writer:
        behind = CommitBehind(writer, lambda: None)
        behind.submit(lambda: commit(1))
        behind.submit(lambda: commit(2))
        with pytest.raises(RuntimeError, match="write of page 2 failed"):
            behind.submit(lambda: commit(3))
    assert committed == [1]


def test_a_segment_failing_elsewhere_still_commits_the_page_in_flight_and_logs_its_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    committed: list[int] = []
    release = threading.Event()

    def slow_commit() -> None:
        release.wait(5)
        committed.append(1)

    def failing_commit() -> None:
        release.wait(5)
        raise ValueError("secret-plaintext-in-a-message")

    with ThreadPoolExecutor(1) as writer:
        behind = CommitBehind(writer, lambda: None)
        behind.submit(slow_commit)
        threading.Timer(0.1, release.set).start()
        behind.abandon()  # a decode failed: the page in flight still reaches the destination
        assert committed == [1]

        release.clear()
        behind.submit(failing_commit)
        threading.Timer(0.1, release.set).start()
        with caplog.at_level(logging.WARNING):
            behind.abandon()
    (record,) = caplog.records
    assert record.error == "ValueError"  # type: ignore[attr-defined]
    assert "secret-plaintext" not in str(vars(record))  # the error's kind, never its message


def test_reads_queued_two_ahead_run_in_order_once_each_and_an_early_stop_waits_for_both() -> None:
    """A quiet streak (segment.QUIET_READ_AHEAD = 2): two reads queued on the one reader thread
    run one after another, each from where the last ended, so the scan never pauses while a
    page is compared; no page is read twice or skipped, and no more than two are read past the
    one in hand."""
    pages = Pages(9)
    seen: list[int] = []
    past: list[int] = []
    with ThreadPoolExecutor(1, thread_name_prefix="scan") as reader:
        ahead = ReadAhead(iter(pages), reader, lambda page: None)
        for page in ahead:
            ahead.start(2)
            time.sleep(0.02)  # the page is compared; the reads go on meanwhile
            past.append(pages.read - page)
            seen.append(page)
        assert seen == list(range(1, 10))
        assert max(past) == 2
        assert past[:7] == [2] * 7  # never paused: two ahead until the scan ran out

        pages = Pages(9)
        ahead = ReadAhead(iter(pages), reader, lambda page: None)
        for _page in ahead:
            ahead.start(2)
            break  # the run pauses (its time is near its end) with two reads queued
        assert pages.read == 3  # both finished before the loop let go; none left running
