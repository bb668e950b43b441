"""How fast a segment may read, and when its invocation must stop to resume later."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from table_sync.models import Settings


class ReadBudget:
    """READ_CAPACITY_PER_SECOND: after each page, wait until the read capacity consumed so far
    (ReturnConsumedCapacity) is within the budget for the time elapsed. Each of N segments
    paces itself to 1/N of it. Without the setting it never waits."""

    def __init__(
        self, per_second: float | None, clock: Callable[[], float], sleep: Callable[[float], None]
    ) -> None:
        self._per_second = per_second
        self._clock = clock
        self._sleep = sleep
        self._start = clock()
        self.consumed = 0.0
        self.waited = 0.0

    @classmethod
    def for_settings(
        cls, settings: Settings, clock: Callable[[], float], sleep: Callable[[float], None]
    ) -> ReadBudget:
        total = settings.total_segments or 1
        rate = settings.read_capacity_per_second
        return cls(rate / total if rate else None, clock, sleep)

    def consume(self, units: float) -> None:
        if self._per_second is None:
            return
        self.consumed += units
        ahead = self.consumed / self._per_second - (self._clock() - self._start)
        if ahead > 0:
            self.waited += ahead
            self._sleep(ahead)


class RequestBudget:
    """KMS_REQUESTS_PER_SECOND: a run's Decrypt requests, at most this many a second, so a sync
    never takes AccountA's shared KMS quota from its own applications. Each of N segments paces
    itself to 1/N of it. Request n of a segment may start no earlier than n / rate seconds after
    the segment's first (the requests are spread evenly: no burst); callable from any number of
    threads at once."""

    def __init__(
        self, per_second: float, clock: Callable[[], float], sleep: Callable[[float], None]
    ) -> None:
        self._interval = 1.0 / per_second
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next: float | None = None
        self.waited = 0.0

    @classmethod
    def for_settings(
        cls, settings: Settings, clock: Callable[[], float], sleep: Callable[[float], None]
    ) -> RequestBudget | None:
        rate = settings.kms_requests_per_second
        if rate is None:
            return None
        return cls(rate / (settings.total_segments or 1), clock, sleep)

    def __call__(self) -> None:
        """Wait for the next request's turn."""
        with self._lock:
            now = self._clock()
            turn = now if self._next is None else max(self._next, now)
            self._next = turn + self._interval
            wait = turn - now
            if wait > 0:
                self.waited += wait
        if wait > 0:
            self._sleep(wait)


@dataclass(frozen=True)
class Deadline:
    """The invocation's time budget: near once less than RESUME_MARGIN_SECONDS is left. Only a
    run that can resume (it keeps checkpoints) ever stops early."""

    remaining_ms: Callable[[], int] | None
    margin_seconds: int
    resumable: bool

    def near(self) -> bool:
        return (
            self.resumable
            and self.remaining_ms is not None
            and self.remaining_ms() < self.margin_seconds * 1000
        )
