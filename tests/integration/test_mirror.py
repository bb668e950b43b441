"""The nightly mirror (issue 12): a run pays KMS requests and writes for what changed since the
copy was made, and the copy equals the source after every complete run."""

from __future__ import annotations

import json
from typing import Any

import pytest

from table_sync.handler import lambda_handler
from table_sync.models import Invocation, Settings
from table_sync.pipeline.budgets import RequestBudget
from table_sync.runs import run_step
from table_sync.sinks.dynamodb import DynamoDBSink
from table_sync_dev.local.context import LocalLambdaContext
from table_sync_dev.local.seed import EmbeddedAws, write_bulk_items
from table_sync_dev.local.server import MotoServer, RecordedCall
from table_sync_dev.local.verify import differences, read_table
from tests.integration.conftest import change_source, drive, drive_run

ITEMS = 2_000
PAGE = 200  # 10 pages; 2 an invocation (the scale itself: `make bench`, its nightly case)


def _count(calls: list[RecordedCall], name: str) -> int:
    return sum(1 for call in calls if call.name == name)


@pytest.fixture
def mirror(aws: EmbeddedAws, function_env: Any, monkeypatch: pytest.MonkeyPatch) -> EmbeddedAws:
    """A source of ITEMS items of this test's own (it changes them), a mirror by default."""
    write_bulk_items(aws, ITEMS)
    monkeypatch.setenv("STATE_TABLE", aws.state_table)
    monkeypatch.setenv("PAGE_SIZE", str(PAGE))
    return aws


@pytest.mark.items(0)
@pytest.mark.parametrize("segments", [1, 4])
def test_a_nightly_run_pays_only_for_what_changed(
    mirror: EmbeddedAws, moto_server: MotoServer, segments: int
) -> None:
    first, invocations = drive_run("night-1", segments)
    assert first["status"] == "succeeded"
    assert first["items_written"] == ITEMS
    assert first["kms_requests"] > 0
    assert invocations > segments  # a tiny time budget: several invocations a segment

    with moto_server.recording() as calls:
        second, _ = drive_run("night-2", segments)
    # Nothing changed: one Decrypt a segment, the key's proof (README, the guarantee).
    assert _count(calls, "kms:Decrypt") == second["kms_requests"] == segments
    assert _count(calls, "dynamodb:BatchWriteItem") == 0
    assert second["items_unchanged"] == ITEMS
    assert second["items_written"] == second["items_swept"] == 0

    ciphertexts = change_source(mirror, updates=100, inserts=50, deletes=50)
    with moto_server.recording() as calls:
        third, invocations = drive_run("night-3", segments)
    decrypted = [json.loads(c.body)["CiphertextBlob"] for c in calls if c.name == "kms:Decrypt"]
    assert sorted(decrypted) == sorted(ciphertexts)  # each changed or new ciphertext, once
    assert third["items_written"] == 150
    assert third["items_unchanged"] == ITEMS - 100 - 50
    assert third["items_swept"] == 50
    assert invocations > segments
    copy = read_table(mirror.account_b().client("dynamodb"), mirror.destination_table)
    assert differences(mirror.expected, copy) == []


@pytest.mark.items(40)
def test_a_run_killed_between_deletions_ends_exact_on_the_next(
    aws: EmbeddedAws, function_env: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fault injection (moto cannot crash a client): the sweep dies after its first batch of
    deletions. The same run, invoked again, finishes the sweep; the next run finds nothing to
    do. (A copy and its digest cannot disagree: the digest is written in the copy's own put.)"""
    monkeypatch.setenv("STATE_TABLE", aws.state_table)
    write_bulk_items(aws, 200)
    assert drive_run("before", 1)[0]["items_written"] == 240
    ddb = aws.account_a().client("dynamodb")
    gone = sorted(aws.expected)[::4]  # 60 deletions: three batches of deletes
    for key in gone:
        ddb.delete_item(TableName=aws.source_table, Key={"pk": {"S": key}})
        del aws.expected[key]

    original = DynamoDBSink._write_batch
    deletes = 0

    def dying_write_batch(self: DynamoDBSink, items: Any, *, delete: bool = False) -> None:
        nonlocal deletes
        if delete:
            deletes += 1
            if deletes == 2:
                raise RuntimeError("injected crash between deletions")
        original(self, items, delete=delete)

    monkeypatch.setattr(DynamoDBSink, "_write_batch", dying_write_batch)
    with pytest.raises(RuntimeError, match="injected crash"):
        drive_run("after", 1)
    copy = read_table(aws.account_b().client("dynamodb"), aws.destination_table)
    left = len(copy) - (240 - 60)
    assert 0 < left < 60  # some deletions went, not all

    summary, _ = drive_run("after", 1)  # the retry of the same run
    assert summary["status"] == "succeeded"
    assert summary["items_swept"] == left
    copy = read_table(aws.account_b().client("dynamodb"), aws.destination_table)
    assert differences(aws.expected, copy) == []
    again, _ = drive_run("next", 1)
    assert again["items_swept"] == again["items_written"] == 0
    assert again["kms_requests"] == 1  # only the key's proof


class FakeClock:
    """Time that passes only when the code sleeps: the budget is all that spaces requests out,
    as if every request took no time at all (the most a segment could ever ask for)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.mark.items(0)
def test_the_kms_budget_holds_across_four_segments(
    aws: EmbeddedAws,
    bulk_world: EmbeddedAws,
    function_env: Any,
    function_session: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """KMS_REQUESTS_PER_SECOND=20 across 4 segments, no cache (only requests in flight at once
    share their answer): the
    segments, started together as the state machine starts them, make 20 requests a second
    between them, within 5%, and report the time they waited."""
    rate, segments = 20.0, 4
    env = {
        **function_env,
        "SOURCE_TABLE_NAME": bulk_world.source_table,
        "STATE_TABLE": aws.state_table,
        "KMS_REQUESTS_PER_SECOND": str(rate),
        "KMS_CACHE_SIZE": "0",
        "DECRYPT_CONCURRENCY": "16",  # the count below assumes 16 requests a segment at once
        "TOTAL_SEGMENTS": str(segments),
        "SEGMENT": "0",
    }
    granted: list[list[float]] = []  # when each request was let through, by segment, from t=0
    original = RequestBudget.__call__

    def recording(self: RequestBudget) -> None:
        original(self)
        granted[-1].append(self._clock())

    monkeypatch.setattr(RequestBudget, "__call__", recording)
    waited = requests = 0
    for segment in range(segments):
        clock = FakeClock()
        granted.append([])
        settings = Settings.from_env(env, segment=segment)
        step = run_step(
            settings,
            Invocation(trigger="segment", run_id="budget", segment=segment, total_segments=4),
            base_session=function_session,
            role_session_name="budget",
            clock=clock,
            sleep=clock.sleep,
        )
        assert step.status == "segment-done"
        waited += step.kms_wait_ms
        requests += step.kms_requests
    times = sorted(t for segment in granted for t in segment)
    assert len(times) == requests > 300  # 16 threads a segment, 20 ciphertexts: some shared
    # While all four segments are decrypting, together they make the budget's rate, within 5%.
    busy = min(max(segment) for segment in granted)
    made = sum(1 for t in times if t <= busy)
    assert abs(made / busy - rate) <= 0.05 * rate
    for start in range(int(times[-1]) - 5):  # and no 5-second window ever has more
        in_window = sum(1 for t in times if start <= t < start + 5)
        assert in_window <= 1.05 * rate * 5
    assert waited / 1000 == pytest.approx(sum(max(segment) for segment in granted), rel=0.05)


@pytest.mark.items(0)
def test_a_dry_run_reports_what_the_next_run_would_do_and_changes_nothing(
    aws: EmbeddedAws, function_env: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STATE_TABLE", aws.state_table)
    write_bulk_items(aws, 200)
    drive_run("first", 1)
    before = read_table(aws.account_b().client("dynamodb"), aws.destination_table)
    change_source(aws, updates=6, inserts=4, deletes=5)

    dry, _ = drive({"trigger": "backfill", "run_id": "look", "dry_run": True})

    assert dry["dry_run"] is True
    assert dry["items_unchanged"] == 200 - 6 - 5
    assert dry["items_changed"] == 10  # would be written
    assert dry["kms_requests"] == 10  # a new ciphertext each
    assert dry["items_swept"] == 5  # would be deleted
    assert dry["items_written"] == 0
    cost = dry["estimated_cost_usd"]
    assert cost["kms"] == pytest.approx(10 * 0.03 / 10_000)
    assert cost["writes"] == pytest.approx((10 + 5) * 0.625 / 1_000_000)  # small items: 1 unit
    assert read_table(aws.account_b().client("dynamodb"), aws.destination_table) == before

    real, _ = drive({"trigger": "backfill", "run_id": "real"})
    assert (real["items_written"], real["items_swept"]) == (10, 5)
    assert real["estimated_cost_usd"] == cost
    copy = read_table(aws.account_b().client("dynamodb"), aws.destination_table)
    assert differences(aws.expected, copy) == []


@pytest.mark.items(40)
def test_full_decrypts_and_writes_every_item_again(aws: EmbeddedAws, function_env: Any) -> None:
    drive({"trigger": "backfill"})
    assert drive({"trigger": "backfill"})[0]["items_written"] == 0
    again, _ = drive({"trigger": "backfill", "full": True})
    assert again["items_written"] == again["items_scanned"] == 40
    assert again["kms_requests"] > 0


@pytest.mark.items(10)
def test_drift_in_a_table_copy_is_found_and_every_nth_run_repairs_it(
    aws: EmbeddedAws, function_env: Any, monkeypatch: pytest.MonkeyPatch, cli: Any
) -> None:
    """Before, a hand edit to the copy (its digest kept) was flagged by verify but never
    repaired: every run said succeeded and wrote nothing, and verify named no repair."""
    env = {**aws.lambda_env(STATE_TABLE=aws.state_table), "FULL_COPY_EVERY": "3"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    def night(n: int) -> dict[str, Any]:
        return lambda_handler({"trigger": "backfill", "id": f"night-{n}"}, LocalLambdaContext())

    assert night(1)["items_written"] == 10  # the first run is a full copy
    aws.account_b().client("dynamodb").update_item(
        TableName=aws.destination_table,
        Key={"pk": {"S": "customer#00001"}},
        UpdateExpression="SET #n = :v",
        ExpressionAttributeNames={"#n": "name"},
        ExpressionAttributeValues={":v": {"S": "edited by hand"}},
    )
    found = cli(env, "verify", "--json")
    assert found.exit_code == 1
    result = json.loads(found.stdout)
    assert result["different"] == ['{pk=S:"customer#00001"}']
    assert result["repair"].startswith(
        f"table-sync run --full --destination dynamodb://{aws.destination_table}"
    )

    assert [night(n)["items_written"] for n in (2, 3)] == [0, 0]  # not due: the edit stays
    repaired = night(4)  # the third run after the last full copy is the next full copy
    assert repaired["items_written"] == 10
    copy = read_table(aws.account_b().client("dynamodb"), aws.destination_table)
    assert differences(aws.expected, copy) == []
    assert cli(env, "verify").exit_code == 0


@pytest.mark.items(0)
def test_a_sweep_in_several_passes_deletes_exactly_what_the_source_lost(
    mirror: EmbeddedAws, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run that saw more keys than SWEEP_MEMORY_BYTES holds sweeps the copy in passes, each
    with one part of the seen keys (here 3 passes for 2,000 keys): every key of the copy is
    judged in exactly one pass, so the deleted items go and no other."""
    first, _ = drive_run("passes-1", 1, pages=5)
    assert first["status"] == "succeeded"
    monkeypatch.setattr("table_sync.source_keys.SWEEP_MEMORY_BYTES", ITEMS * 16 // 3 + 1)
    change_source(mirror, updates=0, inserts=0, deletes=30)
    second, _ = drive_run("passes-2", 1, pages=5)
    assert second["status"] == "succeeded"
    assert second["items_swept"] == 30
    copy = read_table(mirror.account_b().client("dynamodb"), mirror.destination_table)
    assert differences(mirror.expected, copy) == []
