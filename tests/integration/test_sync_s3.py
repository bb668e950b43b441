"""The sync into S3 in DynamoDB's Export layout, checked by reading it back and by Import from S3."""

from __future__ import annotations

import time
from typing import Any

import boto3
import pytest

from table_sync.errors import DestinationError
from table_sync.handler import lambda_handler
from table_sync.models import Invocation, Settings
from table_sync.runs import run_step
from table_sync_dev.local.accounts import ACCOUNT_B
from table_sync_dev.local.seed import DESTINATION_BUCKET, EmbeddedAws
from table_sync_dev.local.server import MotoServer
from table_sync_dev.local.verify import differences, read_export, read_table
from tests.conftest import load_event

PREFIX = "exports/my-table"


def test_backfill_to_s3_writes_an_export_that_imports(
    aws: EmbeddedAws, function_env, lambda_context
) -> None:
    summary = lambda_handler(load_event("backfill-s3.json"), lambda_context)

    s3 = aws.account_b().client("s3")
    bucket = DESTINATION_BUCKET  # the bucket the event names (its run id keeps the export apart)
    base = f"{PREFIX}/AWSDynamoDB/{summary['run_id']}"
    assert summary["location"] == f"s3://{bucket}/{base}/"
    export = read_export(s3, bucket, summary["location"])
    assert differences(aws.expected, export.items) == []

    names = {key.removeprefix(base + "/") for key in export.object_keys}
    assert {
        "_started",
        "manifest-files.json",
        "manifest-files.md5",
        "manifest-summary.json",
        "manifest-summary.md5",
    } <= names
    data = [n for n in names if n.startswith("data/")]
    assert data
    assert all(n.endswith(".json.gz") for n in data)

    # No DynamoDB write units and no write cost for an S3 copy (before, the summary priced the
    # export's items as DynamoDB puts).
    assert summary["items_changed"] == 40
    assert summary["write_units"] == 0
    assert summary["estimated_cost_usd"]["writes"] == 0
    assert export.summary["itemCount"] == 40
    assert export.summary["outputFormat"] == "DYNAMODB_JSON"
    assert export.summary["s3SseAlgorithm"] == "AES256"
    assert export.summary["tableArn"] == aws.source_table_arn
    assert export.summary["s3Bucket"] == bucket
    for entry in export.manifest:
        assert set(entry) == {"itemCount", "md5Checksum", "etag", "dataFileS3Key"}
    for key in export.object_keys:
        assert s3.head_object(Bucket=bucket, Key=key)["ServerSideEncryption"] == "AES256"

    # DynamoDB's Import from S3 (moto's import_table) loads the data files as they are.
    ddb = aws.account_b().client("dynamodb")
    arn = ddb.import_table(
        S3BucketSource={"S3Bucket": bucket, "S3KeyPrefix": f"{base}/data/"},
        InputFormat="DYNAMODB_JSON",
        InputCompressionType="GZIP",
        TableCreationParameters={
            "TableName": aws.named("imported"),
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            "BillingMode": "PAY_PER_REQUEST",
        },
    )["ImportTableDescription"]["ImportArn"]
    for _ in range(50):
        status = ddb.describe_import(ImportArn=arn)["ImportTableDescription"]
        if status["ImportStatus"] != "IN_PROGRESS":
            break
        time.sleep(0.1)
    assert status["ImportStatus"] == "COMPLETED", status.get("FailureMessage")
    assert status["ImportedItemCount"] == 40
    assert differences(aws.expected, read_table(ddb, aws.named("imported"))) == []


def _settings(aws: EmbeddedAws, **env: str) -> Settings:
    return Settings.from_env(aws.settings_env(DESTINATION=f"s3://{aws.bucket}/{PREFIX}", **env))


def _recorded_puts(session: boto3.Session) -> list[str]:
    keys: list[str] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        key = params["Key"]
        keys.append(
            key.rsplit("/AWSDynamoDB/", 1)[1].split("/", 1)[1] if "/AWSDynamoDB/" in key else key
        )

    session.events.register("before-parameter-build.s3.PutObject", record)
    return keys


def test_manifests_are_written_last_and_files_roll_over(
    aws: EmbeddedAws, function_session: boto3.Session
) -> None:
    puts = _recorded_puts(function_session)
    settings = _settings(aws, S3_FILE_MAX_BYTES="1024", PAGE_SIZE="10")
    summary = run_step(
        settings,
        Invocation(trigger="backfill"),
        base_session=function_session,
        role_session_name="test",
    )
    assert puts[0] == "_started"
    assert puts[-5:] == [
        "manifest-files.json",
        "manifest-files.md5",
        "manifest-summary.json",
        "manifest-summary.md5",
        f"{PREFIX}/latest.json",  # the pointer moves only once the snapshot is complete
    ]
    data_files = [p for p in puts if p.startswith("data/")]
    assert len(data_files) > 1  # a 1 KiB limit splits 40 items over several files
    export = read_export(aws.account_b().client("s3"), aws.bucket, summary.location or "")
    assert len(export.manifest) == len(data_files)
    assert sum(e["itemCount"] for e in export.manifest) == 40
    assert differences(aws.expected, export.items) == []


def test_a_run_that_dies_midway_never_looks_complete(
    aws: EmbeddedAws, function_session: boto3.Session
) -> None:
    """Fault injection (moto cannot fail a PutObject on demand): the third data file fails."""
    data_puts = 0

    def fail_third_data_file(params: dict[str, Any], **_: Any) -> None:
        nonlocal data_puts
        if "/data/" in params["Key"]:
            data_puts += 1
            if data_puts == 3:
                raise RuntimeError("injected crash while writing a data file")

    function_session.events.register("before-parameter-build.s3.PutObject", fail_third_data_file)
    with pytest.raises(RuntimeError, match="injected crash"):
        run_step(
            _settings(aws, S3_FILE_MAX_BYTES="1024", PAGE_SIZE="10"),
            Invocation(trigger="backfill"),
            base_session=function_session,
            role_session_name="test",
        )
    s3 = aws.account_b().client("s3")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=aws.bucket).get("Contents", [])]
    assert any(k.endswith("/_started") for k in keys)
    assert not any(k.endswith("manifest-summary.json") for k in keys)
    assert not any(k.endswith("manifest-files.json") for k in keys)


def test_sse_kms_when_a_destination_key_is_set(
    aws: EmbeddedAws, function_session: boto3.Session
) -> None:
    key_arn = aws.account_b().client("kms").create_key()["KeyMetadata"]["Arn"]
    assert f":{ACCOUNT_B}:" in key_arn
    summary = run_step(
        _settings(aws, DESTINATION_KMS_KEY_ARN=key_arn),
        Invocation(trigger="backfill"),
        base_session=function_session,
        role_session_name="test",
    )
    s3 = aws.account_b().client("s3")
    export = read_export(s3, aws.bucket, summary.location or "")
    assert export.summary["s3SseAlgorithm"] == "KMS"
    assert export.summary["s3SseKmsKeyId"] == key_arn
    for key in export.object_keys:
        head = s3.head_object(Bucket=aws.bucket, Key=key)
        assert head["ServerSideEncryption"] == "aws:kms"
        assert head["SSEKMSKeyId"] == key_arn


def test_missing_bucket_fails_before_the_scan(
    aws: EmbeddedAws, function_session: boto3.Session, moto_server: MotoServer
) -> None:
    settings = Settings.from_env(aws.settings_env(DESTINATION="s3://no-such-bucket-here/x"))
    with (
        moto_server.recording() as calls,
        pytest.raises(DestinationError, match=r"no-such-bucket-here.*NoSuchBucket"),
    ):
        run_step(
            settings,
            Invocation(trigger="backfill"),
            base_session=function_session,
            role_session_name="test",
        )
    names = [c.name for c in calls]
    assert "s3:PutObject" in names  # the _started marker was refused
    assert "dynamodb:Scan" not in names
    assert "kms:Decrypt" not in names
