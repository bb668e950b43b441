"""S3 incremental exports (issue 12, part 3): with a change index, a run writes only what
changed since the previous complete export, in the layout of DynamoDB's incremental export,
and a loader that applies the chain of exports in order onto the last full snapshot gets the
source. The loader here is the test's own, written from the documented format only."""

from __future__ import annotations

import base64
import gzip
import json
import os
from typing import Any

import boto3
import pytest

from table_sync.compare import json_lines
from table_sync.errors import ConfigurationError, DestinationError
from table_sync.items import Item, from_json_item
from table_sync.models import Settings
from table_sync.sinks.s3 import S3ExportSink
from table_sync.verify import verify_copy
from table_sync_dev.local.seed import KEY_SCHEMA_PK, EmbeddedAws, create_table, write_bulk_items
from table_sync_dev.local.server import MotoServer
from table_sync_dev.local.verify import differences
from tests.integration.conftest import change_source, drive_run

ITEMS = 600
PAGE = 100
PREFIX = "exports/nightly"


def _get(s3: Any, bucket: str, key: str) -> bytes:
    return bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def _lines(s3: Any, bucket: str, summary: dict[str, Any]) -> list[dict[str, Any]]:
    manifest = json_lines(_get(s3, bucket, summary["manifestFilesS3Key"]).decode())
    lines = []
    for entry in map(json.loads, manifest):
        data = json_lines(gzip.decompress(_get(s3, bucket, entry["dataFileS3Key"])).decode())
        assert len(data) == entry["itemCount"]
        lines += map(json.loads, data)
    assert len(lines) == summary["itemCount"]
    return lines


def _type(summary: dict[str, Any]) -> str:
    """A summary's exportType: DynamoDB writes none in a full export."""
    return str(summary.get("exportType", "FULL_EXPORT"))


def load(s3: Any, bucket: str, prefix: str) -> tuple[dict[str, Item], list[dict[str, Any]]]:
    """Follow ``latest.json`` back through ``previousExportId`` to a FULL_EXPORT, then apply the
    exports in order: a full export's ``Item`` lines make the table; an incremental export's
    line puts its ``NewImage``, or deletes its ``Keys`` when it has no image. Returns the table
    (by pk) and the chain's manifest summaries, oldest first."""
    pointer = json.loads(_get(s3, bucket, f"{prefix}/latest.json"))
    chain = [json.loads(_get(s3, bucket, pointer["manifestSummaryKey"]))]
    while _type(chain[0]) == "INCREMENTAL_EXPORT":
        previous = f"{prefix}/AWSDynamoDB/{chain[0]['previousExportId']}/manifest-summary.json"
        chain.insert(0, json.loads(_get(s3, bucket, previous)))
    assert _type(chain[0]) == "FULL_EXPORT"
    table: dict[str, Item] = {}
    for summary in chain:
        for line in _lines(s3, bucket, summary):
            if "Item" in line:
                item = from_json_item(line["Item"])
                table[item["pk"]["S"]] = item
            elif "NewImage" in line:
                table[line["Keys"]["pk"]["S"]] = from_json_item(line["NewImage"])
            else:
                table.pop(line["Keys"]["pk"]["S"], None)
    return table, chain


def _crash_in(monkeypatch: pytest.MonkeyPatch, method: str, run_id: str) -> None:
    """Fault injection (moto cannot crash a client): run ``run_id`` dies as the S3 sink's
    ``method`` is called; the sink is whole again afterwards."""

    def dying(self: S3ExportSink, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError(f"injected crash in {method}")

    with monkeypatch.context() as patch:
        patch.setattr(S3ExportSink, method, dying)
        with pytest.raises(RuntimeError, match="injected crash"):
            drive_run(run_id, 1)


@pytest.fixture
def exports(aws: EmbeddedAws, function_env: Any, monkeypatch: pytest.MonkeyPatch) -> EmbeddedAws:
    """An s3:// copy with a change index (the source's key schema, in AccountB), a full
    snapshot every third run."""
    index = aws.named("change-index")
    create_table(aws.account_b().client("dynamodb"), index, KEY_SCHEMA_PK)
    monkeypatch.setenv("DESTINATION", f"s3://{aws.bucket}/{PREFIX}")
    monkeypatch.setenv("CHANGE_INDEX_TABLE", index)
    monkeypatch.setenv("STATE_TABLE", aws.state_table)
    monkeypatch.setenv("FULL_SNAPSHOT_EVERY", "3")
    return aws


def _decrypted(calls: list[Any]) -> list[str]:
    return sorted(json.loads(c.body)["CiphertextBlob"] for c in calls if c.name == "kms:Decrypt")


@pytest.mark.items(0)
def test_an_incremental_export_holds_the_changes_and_loads_onto_the_snapshot(
    exports: EmbeddedAws,
    moto_server: MotoServer,
    monkeypatch: pytest.MonkeyPatch,
    function_session: boto3.Session,
) -> None:
    write_bulk_items(exports, ITEMS)
    monkeypatch.setenv("PAGE_SIZE", str(PAGE))
    s3 = exports.account_b().client("s3")

    first, _ = drive_run("night-1", 2)
    assert first["items_written"] == ITEMS
    table, chain = load(s3, exports.bucket, PREFIX)
    assert [_type(s) for s in chain] == ["FULL_EXPORT"]
    assert chain[0]["itemCount"] == ITEMS
    assert differences(exports.expected, table) == []

    with moto_server.recording() as calls:
        second, _ = drive_run("night-2", 2)
    # Nothing changed: each of the two segments proves the key with one Decrypt, of a
    # ciphertext the source holds.
    proofs = _decrypted(calls)
    held = {base64.b64encode(item["ssn"]["B"]).decode() for item in exports.stored.values()}
    assert len(proofs) == 2
    assert set(proofs) <= held
    table, chain = load(s3, exports.bucket, PREFIX)
    assert [_type(s) for s in chain] == ["FULL_EXPORT", "INCREMENTAL_EXPORT"]
    assert chain[1]["itemCount"] == 0
    assert second["items_unchanged"] == ITEMS

    ciphertexts = change_source(exports, updates=100, inserts=50, deletes=50)
    deleted = sorted(exports.stored)[ITEMS - 50 :]
    with moto_server.recording() as calls:
        third, invocations = drive_run("night-3", 2)
    assert invocations > 3  # several invocations a segment
    assert _decrypted(calls) == sorted(ciphertexts)  # only the 150 changed or new items
    table, chain = load(s3, exports.bucket, PREFIX)
    assert [_type(s) for s in chain] == ["FULL_EXPORT"] + ["INCREMENTAL_EXPORT"] * 2
    assert chain[2]["previousExportId"] == "night-2"
    assert chain[2]["exportFromTime"] == chain[1]["exportToTime"]
    lines = _lines(s3, exports.bucket, chain[2])
    assert len(lines) == 200  # exactly the changes
    images = {line["Keys"]["pk"]["S"] for line in lines if "NewImage" in line}
    removed = {line["Keys"]["pk"]["S"] for line in lines if "NewImage" not in line}
    assert images == {k for k in exports.expected if k.startswith("new#")} | set(
        sorted(exports.stored)[:100]
    )
    assert removed == set(deleted)
    assert all(int(line["Metadata"]["WriteTimestampMicros"]["N"]) > 0 for line in lines)
    assert differences(exports.expected, table) == []
    assert third["items_swept"] == 50
    # `table-sync verify` reads the chain too (the key schema from the change index).
    comparison, where = verify_copy(
        Settings.from_env(os.environ), base_session=function_session, role_session_name="verify"
    )
    assert where.endswith("/AWSDynamoDB/night-3/")
    assert comparison.matches, comparison

    # The third run after a full snapshot is a full snapshot again: it stands alone.
    fourth, _ = drive_run("night-4", 2)
    assert fourth["kms_requests"] > 0  # a full snapshot decrypts everything again
    table, chain = load(s3, exports.bucket, PREFIX)
    assert [_type(s) for s in chain] == ["FULL_EXPORT"]
    assert chain[0]["itemCount"] == ITEMS
    assert differences(exports.expected, table) == []


@pytest.mark.items(40)
def test_an_abandoned_export_is_carried_by_the_next_complete_one(
    exports: EmbeddedAws, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fault injection (moto cannot crash a client): a run dies at the worst moment for the
    index, after its items and tombstones are in the index but before its manifests exist,
    and is never resumed. The next run's export holds that run's changes; the dead run can
    then never join the chain; finishing a complete run again changes nothing. (Small pages
    and data files, so that the dead run has checkpoints: a run that crashes before its first
    one simply starts again when invoked again.)"""
    monkeypatch.setenv("PAGE_SIZE", "10")
    monkeypatch.setenv("S3_FILE_MAX_BYTES", "1024")
    s3 = exports.account_b().client("s3")
    drive_run("base", 1)
    change_source(exports, updates=5, inserts=3, deletes=4)

    _crash_in(monkeypatch, "_write_manifests", "abandoned")

    summary, _ = drive_run("next", 1)
    assert summary["status"] == "succeeded"
    table, chain = load(s3, exports.bucket, PREFIX)
    assert [_type(s) for s in chain] == ["FULL_EXPORT", "INCREMENTAL_EXPORT"]
    assert chain[1]["itemCount"] == 5 + 3 + 4
    assert differences(exports.expected, table) == []

    with pytest.raises(DestinationError, match="cannot join the chain"):
        drive_run("abandoned", 1)
    again, _ = drive_run("next", 1)
    assert again["status"] == "succeeded"
    assert load(s3, exports.bucket, PREFIX)[1] == chain


@pytest.mark.items(20)
def test_a_change_index_belongs_to_one_destination(
    exports: EmbeddedAws, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before, two prefixes sharing one CHANGE_INDEX_TABLE both said succeeded, and the first
    one's run settled a deletion's tombstone that the second one's chain then never got."""
    first, _ = drive_run("first-prefix", 1)
    assert first["status"] == "succeeded"
    other = f"s3://{exports.bucket}/exports/other"
    monkeypatch.setenv("DESTINATION", other)
    index = os.environ["CHANGE_INDEX_TABLE"]
    with pytest.raises(ConfigurationError) as refused:
        drive_run("second-prefix", 1)
    assert str(refused.value).endswith(
        f"CHANGE_INDEX_TABLE: {index} is the change index of s3://{exports.bucket}/{PREFIX}; "
        f"DESTINATION {other} needs one of its own (a table with the source's key schema): a "
        "change index shared by two destinations loses deletions"
    )
    s3 = exports.account_b().client("s3")
    assert s3.list_objects_v2(Bucket=exports.bucket, Prefix="exports/other").get("KeyCount") == 0


@pytest.mark.items(40)
def test_a_run_that_crashed_after_its_chain_record_finishes_on_resume(
    exports: EmbeddedAws, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fault injection (moto cannot crash a client): the process dies between the export's
    chain record and latest.json. Before, the resumed run found 'already complete', reported
    items_swept 0 although it exported the deletions, and never wrote latest.json."""
    assert drive_run("full", 1)[0]["status"] == "succeeded"
    ddb = exports.account_a().client("dynamodb")
    gone = sorted(exports.expected)[:5]
    for key in gone:
        ddb.delete_item(TableName=exports.source_table, Key={"pk": {"S": key}})
        del exports.expected[key]

    _crash_in(monkeypatch, "_write_pointer", "incremental")  # after the chain record

    resumed, _ = drive_run("incremental", 1)
    assert resumed["status"] == "succeeded"
    assert resumed["items_swept"] == 5  # the deletions this export holds
    s3 = exports.account_b().client("s3")
    pointer = json.loads(_get(s3, exports.bucket, f"{PREFIX}/latest.json"))
    assert pointer["exportId"] == "incremental"
    table, chain = load(s3, exports.bucket, PREFIX)
    assert [_type(s) for s in chain] == ["FULL_EXPORT", "INCREMENTAL_EXPORT"]
    assert differences(exports.expected, table) == []
