"""Tables bigger than one invocation: checkpoints, segments, deletes, leases and retries."""

from __future__ import annotations

import copy
import gzip
import json
import time
from dataclasses import replace
from typing import Any

import pytest

from table_sync.errors import ConfigurationError
from table_sync.handler import lambda_handler
from table_sync.models import Invocation, Settings
from table_sync.runs import run_step
from table_sync.state import StateStore
from table_sync_dev.local.context import LocalLambdaContext
from table_sync_dev.local.seed import KEY_SCHEMA_PK, EmbeddedAws, create_table
from table_sync_dev.local.verify import differences, read_export, read_table
from tests.conftest import load_event
from tests.integration.conftest import BULK_ITEMS, BudgetContext, drive, unique_name

ITEMS = BULK_ITEMS  # 600 items in pages of PAGE: 25 pages
PAGE = 24


@pytest.fixture
def big(
    aws: EmbeddedAws,
    bulk_world: EmbeddedAws,
    function_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> EmbeddedAws:
    """This test's destination, state and bucket, reading the session's bulk table (which no
    test changes: one that deletes from its source makes its own copy)."""
    view = replace(
        aws,
        source_table=bulk_world.source_table,
        source_table_arn=bulk_world.source_table_arn,
        expected=copy.deepcopy(bulk_world.expected),
        stored=bulk_world.stored,
    )
    monkeypatch.setenv("SOURCE_TABLE_NAME", view.source_table)
    monkeypatch.setenv("STATE_TABLE", view.state_table)
    monkeypatch.setenv("PAGE_SIZE", str(PAGE))
    return view


def _s3(monkeypatch: pytest.MonkeyPatch, aws: EmbeddedAws) -> None:
    monkeypatch.setenv("DESTINATION", f"s3://{aws.bucket}/snap")
    monkeypatch.setenv("SOURCE_KEY_ATTRIBUTES", "pk")
    monkeypatch.setenv("S3_FILE_MAX_BYTES", "5000")  # several data files per segment


def _latest(aws: EmbeddedAws) -> dict[str, Any]:
    body = (
        aws.account_b().client("s3").get_object(Bucket=aws.bucket, Key="snap/latest.json")["Body"]
    )
    return dict(json.loads(body.read()))


def _copy(aws: EmbeddedAws, destination: str) -> dict[str, Any]:
    if destination == "dynamodb":
        return read_table(aws.account_b().client("dynamodb"), aws.destination_table)
    s3 = aws.account_b().client("s3")
    export = read_export(s3, aws.bucket, _latest(aws)["location"])
    lines = sum(e["itemCount"] for e in export.manifest)
    assert lines == len(export.items) == export.summary["itemCount"]  # no duplicate lines
    # The export's size is the whole run's: every invocation's and every segment's data files
    # (before the fix, a resumed run counted its last invocation and a segmented run 0).
    data_bytes = sum(
        len(gzip.decompress(s3.get_object(Bucket=aws.bucket, Key=key)["Body"].read()))
        for key in (e["dataFileS3Key"] for e in export.manifest)
    )
    assert export.summary["billedSizeBytes"] == data_bytes > 0
    return export.items


@pytest.mark.items(0)
@pytest.mark.parametrize("destination", ["dynamodb", "s3"])
@pytest.mark.parametrize("segments", [1, 4])
def test_tiny_time_budget_many_invocations_exact_copy(
    big: EmbeddedAws, destination: str, segments: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    if destination == "s3":
        _s3(monkeypatch, big)
    invocations = 0
    if segments == 1:
        summary, invocations = drive({"trigger": "backfill", "run_id": "run-one"})
    else:
        for segment in range(segments):
            step, count = drive(
                {
                    "trigger": "segment",
                    "run_id": "run-four",
                    "segment": segment,
                    "total_segments": segments,
                }
            )
            assert step["status"] == "segment-done"
            invocations += count
        summary = lambda_handler(
            {"trigger": "finalize", "run_id": "run-four", "total_segments": segments},
            LocalLambdaContext(),
        )
    assert summary["status"] == "succeeded"
    assert invocations >= 10  # 2 pages an invocation, 25 pages of PAGE items
    assert summary["items_scanned"] == summary["items_written"] == ITEMS
    assert differences(big.expected, _copy(big, destination)) == []


@pytest.mark.items(0)
@pytest.mark.parametrize("destination", ["dynamodb", "s3"])
def test_a_crash_between_write_and_checkpoint_loses_and_duplicates_nothing(
    big: EmbeddedAws, destination: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fault injection: the fourth checkpoint save dies after its page reached the destination."""
    if destination == "s3":
        _s3(monkeypatch, big)
    original = StateStore.save
    saves = 0

    def crashing_save(self: StateStore, checkpoint: Any) -> None:
        nonlocal saves
        saves += 1
        if saves == 4:
            raise RuntimeError("injected crash before the checkpoint")
        original(self, checkpoint)

    monkeypatch.setattr(StateStore, "save", crashing_save)
    event = {"trigger": "backfill", "run_id": "run-crash"}
    with pytest.raises(RuntimeError, match="injected crash"):
        drive(event, pages=50)
    summary, _ = drive(event, pages=50)  # the retry resumes from the last checkpoint
    assert summary["status"] == "succeeded"
    assert summary["items_scanned"] >= ITEMS  # the crashed page was scanned again
    assert differences(big.expected, _copy(big, destination)) == []


@pytest.mark.items(0)
def test_items_deleted_in_the_source_disappear_from_the_copy(
    big: EmbeddedAws, monkeypatch: pytest.MonkeyPatch
) -> None:
    own = big.isolated(unique_name())  # a source of its own: this test deletes from it
    big = replace(big, source_table=own.source_table, expected=own.expected)
    monkeypatch.setenv("SOURCE_TABLE_NAME", own.source_table)
    monkeypatch.setenv("SWEEP_DELETES", "true")
    assert drive({"trigger": "backfill", "run_id": "run-a"})[0]["status"] == "succeeded"
    gone = [f"item#{n:06d}" for n in (3, 300, 599)]
    ddb = big.account_a().client("dynamodb")
    for key in gone:
        ddb.delete_item(TableName=big.source_table, Key={"pk": {"S": key}})
        del big.expected[key]
    summary, _ = drive({"trigger": "backfill", "run_id": "run-b"})
    assert summary["items_swept"] == 3
    copy = read_table(big.account_b().client("dynamodb"), big.destination_table)
    assert differences(big.expected, copy) == []


@pytest.mark.items(0)
def test_two_overlapping_sweeping_runs_leave_an_exact_copy(
    big: EmbeddedAws, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 11 (2): a second sweeping run started while the first is half way through is
    skipped (the lease), and the copy ends exact after both."""
    monkeypatch.setenv("SWEEP_DELETES", "true")
    first = {"trigger": "backfill", "run_id": "run-first"}
    assert lambda_handler(first, BudgetContext(pages=3))["status"] == "continue"
    second = lambda_handler({"trigger": "backfill", "run_id": "run-second"}, BudgetContext())
    assert second["status"] == "skipped"
    assert second["held_by"] == "run-first"
    assert drive(first)[0]["status"] == "succeeded"
    assert drive({"trigger": "backfill", "run_id": "run-second"})[0]["status"] == "succeeded"
    copy = read_table(big.account_b().client("dynamodb"), big.destination_table)
    assert differences(big.expected, copy) == []


@pytest.mark.items(0)
def test_latest_always_names_a_complete_snapshot(
    big: EmbeddedAws, monkeypatch: pytest.MonkeyPatch
) -> None:
    _s3(monkeypatch, big)
    drive({"trigger": "backfill", "run_id": "run-first"})
    first = _latest(big)
    s3 = big.account_b().client("s3")
    event = {"trigger": "backfill", "run_id": "run-second"}
    while True:  # one invocation at a time: between them, latest is still the first snapshot
        summary = lambda_handler(event, BudgetContext(pages=3))
        pointer = _latest(big)
        s3.head_object(Bucket=big.bucket, Key=pointer["manifestSummaryKey"])  # complete
        if summary["status"] != "continue":
            break
        assert pointer == first
    assert pointer["exportId"] == "run-second"
    assert pointer["itemCount"] == ITEMS


@pytest.mark.items(5)
def test_a_second_start_refuses_while_a_run_holds_the_lease(
    aws: EmbeddedAws, function_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STATE_TABLE", aws.state_table)
    store = StateStore(aws.account_b().client("dynamodb"), aws.state_table)
    assert store.acquire_lease(f"dynamodb://{aws.destination_table}", "run-busy", 600).held
    summary = lambda_handler(load_event("scheduled-event.json"), LocalLambdaContext())
    assert summary["status"] == "skipped"
    assert summary["held_by"] == "run-busy"
    assert read_table(aws.account_b().client("dynamodb"), aws.destination_table) == {}


@pytest.mark.items(5)
def test_a_stale_lease_is_taken_over(
    aws: EmbeddedAws, function_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    monkeypatch.setenv("STATE_TABLE", aws.state_table)
    crashed = StateStore(
        aws.account_b().client("dynamodb"), aws.state_table, clock=lambda: time.time() - 7200
    )
    assert crashed.acquire_lease(f"dynamodb://{aws.destination_table}", "run-crashed", 600).held
    summary = lambda_handler(load_event("scheduled-event.json"), LocalLambdaContext())
    assert summary["status"] == "succeeded"
    assert (
        differences(
            aws.expected, read_table(aws.account_b().client("dynamodb"), aws.destination_table)
        )
        == []
    )
    # Released at the end: the next start gets it.
    store = StateStore(aws.account_b().client("dynamodb"), aws.state_table)
    assert store.acquire_lease(f"dynamodb://{aws.destination_table}", "run-next", 60).held


@pytest.mark.items(0)
def test_a_run_that_loses_its_lease_mid_run_stops_writing(
    big: EmbeddedAws, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Simulated: after the second checkpoint another run takes the lease (as it would once
    ours had lapsed); at its next checkpoint this run stops instead of racing it."""
    from table_sync.errors import DestinationError

    original = StateStore.save
    saves = 0

    def save_then_lose_the_lease(self: StateStore, checkpoint: Any) -> None:
        nonlocal saves
        original(self, checkpoint)
        saves += 1
        if saves == 2:
            later = StateStore(
                big.account_b().client("dynamodb"),
                big.state_table,
                clock=lambda: time.time() + 10_000,
            )
            assert later.acquire_lease(f"dynamodb://{big.destination_table}", "run-new", 600).held

    monkeypatch.setattr(StateStore, "save", save_then_lose_the_lease)
    with pytest.raises(DestinationError, match=r"lost the lease .* to run run-new"):
        lambda_handler({"trigger": "backfill", "run_id": "run-slow"}, BudgetContext(pages=50))
    assert saves == 2
    copied = read_table(big.account_b().client("dynamodb"), big.destination_table)
    assert len(copied) == 3 * PAGE  # pages 1-3 were written; nothing after the lease was lost


@pytest.mark.items(0)
def test_eventbridge_retries_of_the_same_event_resume_the_run(big: EmbeddedAws) -> None:
    event = load_event("scheduled-event.json")
    first = lambda_handler(event, BudgetContext(pages=3))
    assert first["status"] == "continue"
    assert first["pages"] == 3
    summary, _ = drive(event)  # EventBridge delivers the same event again
    assert summary["run_id"] == first["run_id"]
    assert summary["items_scanned"] == ITEMS  # resumed, not restarted
    assert summary["pages"] == 25


@pytest.mark.items(40)
@pytest.mark.parametrize("segments", [1, 4])
def test_read_capacity_budget_paces_each_segment(
    aws: EmbeddedAws, function_session: Any, segments: int
) -> None:
    """READ_CAPACITY_PER_SECOND is shared by the segments; time is simulated (clock and sleep
    injected), so nothing here waits."""
    now = [0.0]
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    consumed = 0.0
    for segment in range(segments):
        env = aws.settings_env(
            PAGE_SIZE="5",
            READ_CAPACITY_PER_SECOND="2",
            STATE_TABLE=aws.state_table,
            TOTAL_SEGMENTS=str(segments),
            SEGMENT=str(segment),
        )
        summary = run_step(
            Settings.from_env(env),
            Invocation(trigger="backfill", run_id=f"rcu-{segments}"),
            base_session=function_session,
            role_session_name="rcu-test",
            clock=lambda: now[0],
            sleep=sleep,
            run_id=f"rcu-{segments}",
        )
        consumed += summary.pages * 1.0  # moto reports 1.0 capacity unit a page
    # Each segment may use 2 / segments units a second: the simulated time spent is
    # consumed / (2 / segments).
    assert sum(waits) == pytest.approx(consumed / (2 / segments))


@pytest.mark.items(5)
def test_a_failed_run_releases_its_lease(
    aws: EmbeddedAws, function_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 11 (5): the lease was released only on success, so after a failure every start
    was skipped for LEASE_SECONDS."""
    from table_sync.errors import DecryptError
    from tests.integration.conftest import set_source_attribute, source_item

    monkeypatch.setenv("STATE_TABLE", aws.state_table)
    monkeypatch.setenv("ON_DECRYPT_ERROR", "fail")
    good = source_item(aws, "customer#00002")["ssn"]
    set_source_attribute(aws, "customer#00002", "ssn", {"S": "%%% not base64 %%%"})
    with pytest.raises(DecryptError):
        lambda_handler({"trigger": "backfill", "run_id": "run-fails"}, LocalLambdaContext())
    set_source_attribute(aws, "customer#00002", "ssn", good)  # the writer repaired it
    summary = lambda_handler({"trigger": "backfill", "run_id": "run-next"}, LocalLambdaContext())
    assert summary["status"] == "succeeded"
    copy = read_table(aws.account_b().client("dynamodb"), aws.destination_table)
    assert differences(aws.expected, copy) == []


@pytest.mark.items(5)
def test_a_skipped_cli_run_exits_75_and_says_who_holds_the_lease(aws: EmbeddedAws, cli) -> None:
    """Issue 11 (5): a skipped run exited 0, so under cron it looked like a success."""
    store = StateStore(aws.account_b().client("dynamodb"), aws.state_table)
    assert store.acquire_lease(f"dynamodb://{aws.destination_table}", "run-busy", 600).held
    result = cli(aws.lambda_env(STATE_TABLE=aws.state_table), "run", "--json")
    assert result.exit_code == 75
    assert json.loads(result.stdout)["status"] == "skipped"
    assert "skipped: run run-busy holds the lease" in result.stderr


@pytest.mark.items(0)
def test_the_cli_resumes_a_run_by_id(big: EmbeddedAws, cli) -> None:
    first = lambda_handler({"trigger": "backfill", "run_id": "run-resumed"}, BudgetContext())
    assert first["status"] == "continue"
    env = big.lambda_env(STATE_TABLE=big.state_table, SOURCE_TABLE_NAME=big.source_table)
    result = cli({**env, "PAGE_SIZE": str(PAGE)}, "run", "--run-id", "run-resumed", "--json")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["run_id"] == "run-resumed"
    assert summary["items_scanned"] == ITEMS  # resumed from the checkpoint, not restarted
    copy = read_table(big.account_b().client("dynamodb"), big.destination_table)
    assert differences(big.expected, copy) == []


@pytest.mark.items(0)
def test_a_parallel_backfill_from_shells_ends_complete(
    big: EmbeddedAws, cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 11 (6): each shell got a new run id, segments 1..N-1 were skipped (exit 0) and
    nothing could finalize. Now: N shells with one --run-id, then --finalize."""
    _s3(monkeypatch, big)
    env = {
        **big.lambda_env(STATE_TABLE=big.state_table, SOURCE_TABLE_NAME=big.source_table),
        "DESTINATION": f"s3://{big.bucket}/snap",
        "SOURCE_KEY_ATTRIBUTES": "pk",
        "S3_FILE_MAX_BYTES": "5000",
    }
    for segment in range(4):
        args = ["run", "--segments", "4", "--segment", str(segment), "--run-id", "run-shells"]
        step = cli(env, *args, "--json")
        assert step.exit_code == 0, step.stderr
        assert json.loads(step.stdout)["status"] == "segment-done"
    done = cli(env, "run", "--segments", "4", "--finalize", "--run-id", "run-shells", "--json")
    assert done.exit_code == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["status"] == "succeeded"
    assert summary["items_written"] == ITEMS
    assert _latest(big)["exportId"] == "run-shells"
    assert differences(big.expected, _copy(big, "s3")) == []


@pytest.mark.items(2)
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--segments", "4", "--segment", "1"], "--run-id: required with --segments"),
        (["--finalize", "--run-id", "r-1"], "--finalize: needs --run-id and --segments"),
        (["--run-id", "bad id!"], "--run-id: 1-80 of letters"),
    ],
)
def test_run_options_that_cannot_work_name_the_option(
    aws: EmbeddedAws, cli, args: list[str], message: str
) -> None:
    result = cli(aws.lambda_env(STATE_TABLE=aws.state_table), "run", *args)
    assert result.exit_code == 1
    assert message in result.stderr


@pytest.mark.items(0)
def test_a_run_resumed_with_another_destination_is_refused_before_any_write(
    big: EmbeddedAws, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before, the checkpoint (keyed by run id and segment only) resumed into the other
    destination: 'succeeded', and the new copy held only the pages after the checkpoint."""
    first = lambda_handler({"trigger": "backfill", "run_id": "moved"}, BudgetContext())
    assert first["status"] == "continue"
    other = big.named("elsewhere")
    monkeypatch.setenv("DESTINATION", f"s3://{big.bucket}/{other}")
    with pytest.raises(ConfigurationError) as refused:
        lambda_handler({"trigger": "backfill", "run_id": "moved"}, BudgetContext())
    message = str(refused.value)
    assert f"DESTINATION: run moved was made with 'dynamodb://{big.destination_table}'" in message
    assert f"'s3://{big.bucket}/{other}'" in message
    listed = big.account_b().client("s3").list_objects_v2(Bucket=big.bucket, Prefix=other)
    assert listed.get("KeyCount", 0) == 0  # nothing was written there


@pytest.mark.items(0)
def test_a_run_resumed_without_its_change_index_is_refused(
    big: EmbeddedAws, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before, it finished as an incremental export with no previousExportId and none of its
    deletions, and latest.json named it."""
    _s3(monkeypatch, big)
    index = big.named("index")
    create_table(big.account_b().client("dynamodb"), index, KEY_SCHEMA_PK)
    monkeypatch.setenv("CHANGE_INDEX_TABLE", index)
    first = lambda_handler({"trigger": "backfill", "run_id": "unindexed"}, BudgetContext())
    assert first["status"] == "continue"
    monkeypatch.delenv("CHANGE_INDEX_TABLE")
    with pytest.raises(
        ConfigurationError, match=f"CHANGE_INDEX_TABLE: run unindexed was made with '{index}'"
    ):
        lambda_handler({"trigger": "backfill", "run_id": "unindexed"}, BudgetContext())


@pytest.mark.items(0)
def test_a_finalize_with_fewer_segments_than_the_run_had_is_refused(big: EmbeddedAws) -> None:
    """Before, finalizing a four-segment run with total_segments 2 said succeeded over a copy
    of segments 0 and 1 only."""
    for segment in range(4):
        event = {"trigger": "segment", "run_id": "four", "segment": segment, "total_segments": 4}
        assert drive(event, pages=8)[0]["status"] == "segment-done"
    with pytest.raises(ConfigurationError, match="TOTAL_SEGMENTS: run four was made with '4'"):
        lambda_handler(
            {"trigger": "finalize", "run_id": "four", "total_segments": 2}, LocalLambdaContext()
        )
    done = lambda_handler(
        {"trigger": "finalize", "run_id": "four", "total_segments": 4}, LocalLambdaContext()
    )
    assert done["status"] == "succeeded"
    assert (
        differences(
            big.expected, read_table(big.account_b().client("dynamodb"), big.destination_table)
        )
        == []
    )
