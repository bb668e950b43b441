"""UnprocessedItems: retried with capped, jittered backoff, never dropped.

moto never returns UnprocessedItems, so a thin wrapper around the real (moto) client holds back
part of each request for a chosen number of calls, as DynamoDB does under load; the items it
does pass are really written.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from table_sync.errors import UnprocessedItemsError
from table_sync.sinks.dynamodb import DynamoDBSink
from table_sync_dev.local.seed import EmbeddedAws
from table_sync_dev.local.verify import differences, read_table


class CountsInFlight:
    """A wrapper around the real (moto) client that counts the calls it passes on, and the most
    of them in flight at once."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.calls = self.in_flight = self.most_in_flight = 0
        self._lock = threading.Lock()

    @contextmanager
    def flying(self) -> Iterator[None]:
        with self._lock:
            self.calls += 1
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            yield
        finally:
            with self._lock:
                self.in_flight -= 1

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


class HoldsBackItems(CountsInFlight):
    """Fault injection: the first ``failing_calls`` BatchWriteItem calls leave ``hold`` puts unprocessed."""

    def __init__(self, client: Any, *, hold: int, failing_calls: int) -> None:
        super().__init__(client)
        self._hold = hold
        self.failing_calls = failing_calls

    def batch_write_item(self, RequestItems: dict[str, list[Any]]) -> dict[str, Any]:
        with self._lock:
            failing = self.failing_calls > 0
            self.failing_calls -= 1
        with self.flying():
            ((table, requests),) = RequestItems.items()
            if not failing:
                return dict(self._client.batch_write_item(RequestItems=RequestItems))
            held = requests[-self._hold :]
            passed = requests[: -self._hold]
            if passed:
                self._client.batch_write_item(RequestItems={table: passed})
            return {"UnprocessedItems": {table: held}}


def test_unprocessed_items_are_retried_with_capped_backoff_until_written(aws: EmbeddedAws) -> None:
    client = HoldsBackItems(aws.account_b().client("dynamodb"), hold=3, failing_calls=6)
    sleeps: list[float] = []
    sink = DynamoDBSink(
        client,
        aws.destination_table,
        max_attempts=8,
        backoff_base=0.05,
        backoff_cap=0.4,
        sleep=sleeps.append,
        rng=lambda: 1.0,
    )
    sink.prepare()
    sink.write(list(aws.expected.values()))  # 40 items: requests of 25 and 15
    copy = read_table(aws.account_b().client("dynamodb"), aws.destination_table)
    assert differences(aws.expected, copy) == []
    assert sink.items_written == 40
    # The first request's held items took 6 retries: 0.05, 0.1, 0.2, then capped at 0.4.
    assert sleeps == [0.05, 0.1, 0.2, 0.4, 0.4, 0.4]


def test_jitter_spreads_delays_below_the_cap(aws: EmbeddedAws) -> None:
    client = HoldsBackItems(aws.account_b().client("dynamodb"), hold=1, failing_calls=3)
    sleeps: list[float] = []
    sink = DynamoDBSink(
        client,
        aws.destination_table,
        backoff_base=1.0,
        backoff_cap=2.0,
        sleep=sleeps.append,
        rng=iter([0.5, 0.25, 0.1]).__next__,
    )
    sink.prepare()
    sink.write(list(aws.expected.values())[:5])
    assert sleeps == [0.5, 0.5, 0.2]  # rng * min(cap, base * 2**n)


def test_items_still_unprocessed_after_the_last_attempt_fail_the_run_by_key(
    aws: EmbeddedAws,
) -> None:
    client = HoldsBackItems(aws.account_b().client("dynamodb"), hold=2, failing_calls=10**6)
    sleeps: list[float] = []
    sink = DynamoDBSink(client, aws.destination_table, max_attempts=4, sleep=sleeps.append)
    sink.prepare()
    items = sorted(aws.expected.values(), key=lambda i: i["pk"]["S"])[:10]
    with pytest.raises(UnprocessedItemsError) as raised:
        sink.write(items)
    error = raised.value
    assert error.keys == ['{pk=S:"customer#00008"}', '{pk=S:"customer#00009"}']
    assert f"2 item(s) were not written to {aws.destination_table} after 4 attempts" in str(error)
    assert len(sleeps) == 3
    assert client.calls == 4
    assert sink.items_written == 8


def test_a_pages_requests_run_concurrently_and_every_item_arrives(aws: EmbeddedAws) -> None:
    # 320 items: 13 requests, up to 4 at once; the first 5 calls hold back 2 items each.
    items = {
        f"{key}#{n}": {**item, "pk": {"S": f"{key}#{n}"}}
        for n in range(8)
        for key, item in aws.expected.items()
    }
    client = HoldsBackItems(aws.account_b().client("dynamodb"), hold=2, failing_calls=5)
    sleeps: list[float] = []
    sink = DynamoDBSink(
        client, aws.destination_table, concurrency=4, sleep=sleeps.append, rng=lambda: 0.0
    )
    sink.prepare()
    sink.write(list(items.values()))
    copy = read_table(aws.account_b().client("dynamodb"), aws.destination_table)
    assert differences(items, copy) == []
    assert sink.items_written == 320
    assert sink.retries == len(sleeps) == 5
    assert client.most_in_flight > 1


def test_a_failing_request_fails_the_page_after_the_others_finish(aws: EmbeddedAws) -> None:
    client = HoldsBackItems(aws.account_b().client("dynamodb"), hold=1, failing_calls=10**6)
    sink = DynamoDBSink(
        client, aws.destination_table, max_attempts=2, concurrency=4, sleep=lambda _: None
    )
    sink.prepare()
    with pytest.raises(UnprocessedItemsError):
        sink.write(list(aws.expected.values()))  # 25 + 15: one held item each, never written
    assert client.in_flight == 0
    assert sink.items_written == 38


class SlowReads(CountsInFlight):
    """Holds each BatchGetItem 50 ms (as a loaded table might); the answers are the real
    (moto) client's."""

    def batch_get_item(self, **params: Any) -> dict[str, Any]:
        with self.flying():
            time.sleep(0.05)
            return dict(self._client.batch_get_item(**params))


def test_the_copys_digests_are_read_read_concurrency_requests_at_once(aws: EmbeddedAws) -> None:
    """READ_CONCURRENCY, not WRITE_CONCURRENCY, bounds a page's digest reads: 1,000 keys are
    10 BatchGetItem requests, 3 of them in flight at once with writes one at a time."""
    client = SlowReads(aws.account_b().client("dynamodb"))
    sink = DynamoDBSink(client, aws.destination_table, concurrency=1, read_concurrency=3)
    sink.prepare()
    (key_attribute,) = sink.key_attributes
    keys = [{key_attribute: {"S": f"never-copied#{n}"}} for n in range(1_000)]
    assert sink.digests(keys) == [None] * 1_000
    assert client.calls == 10
    assert client.most_in_flight == 3
