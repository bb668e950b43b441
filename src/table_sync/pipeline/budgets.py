"""How fast a segment may read, and when its invocation must stop to resume later."""

from __future__ import annotations

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
