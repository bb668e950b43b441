"""The sync works when the roles hold only the runbook's actions, with moto's IAM enforcement on.

moto matches DynamoDB and KMS policy statements only against ``Resource: "*"``, so these tests
scope the reader role by action (exactly the seed's four actions) rather than by ARN; the
templates scope by ARN as well. S3 statements are matched by ARN, so the function's PutObject
statement keeps its exact bucket ARN.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from table_sync.errors import DecryptError, SourceAccessError
from table_sync.models import Invocation, Settings
from table_sync.runs import run_step
from table_sync_dev.local.accounts import REGION
from table_sync_dev.local.seed import KEY_SCHEMA_PK, EmbeddedAws, create_table
from table_sync_dev.local.server import MotoServer
from table_sync_dev.local.verify import differences, read_table
from tests.integration.conftest import unique_name

SEED_ACTIONS = ["dynamodb:GetItem", "dynamodb:Query", "dynamodb:Scan", "kms:Decrypt"]


def _put_policy(aws: EmbeddedAws, role: str, statements: list[dict[str, Any]]) -> None:
    """Replace the reader role's (AccountA) or the function role's (AccountB) policy."""
    account = aws.account_a() if role == aws.reader_role_name else aws.account_b()
    account.client("iam").put_role_policy(
        RoleName=role,
        PolicyName="source-read" if role == aws.reader_role_name else "table-sync",
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": statements}),
    )


def _allow(actions: list[str], resource: str = "*") -> dict[str, Any]:
    return {"Effect": "Allow", "Action": actions, "Resource": resource}


@pytest.fixture
def scoped(aws: EmbeddedAws) -> EmbeddedAws:
    """Roles of the test's own. Reader role: the seed's actions only. Function role: AssumeRole
    plus the destination writes."""
    aws = aws.with_own_roles(unique_name())
    _put_policy(aws, aws.reader_role_name, [_allow(SEED_ACTIONS)])
    _put_policy(
        aws,
        aws.function_role_name,
        [
            _allow(["sts:AssumeRole"], aws.reader_role_arn),
            _allow(["dynamodb:DescribeTable", "dynamodb:BatchGetItem", "dynamodb:BatchWriteItem"]),
            _allow(["s3:PutObject"], f"arn:aws:s3:::{aws.bucket}/*"),
        ],
    )
    return aws


def _run(aws: EmbeddedAws, server: MotoServer, **env: str) -> Any:
    settings = Settings.from_env(aws.settings_env(**env))
    creds = aws.function_credentials()
    session = boto3.Session(
        aws_access_key_id=creds.access_key_id,
        aws_secret_access_key=creds.secret_access_key,
        aws_session_token=creds.session_token,
        region_name=REGION,
    )
    with server.iam_enforced():
        return run_step(
            settings,
            Invocation(trigger="backfill"),
            base_session=session,
            role_session_name="least-privilege",
        )


def test_sync_works_with_only_the_seed_actions(
    scoped: EmbeddedAws, moto_server: MotoServer
) -> None:
    summary = _run(scoped, moto_server)
    assert summary.items_written == 40
    copy = read_table(scoped.account_b().client("dynamodb"), scoped.destination_table)
    assert differences(scoped.expected, copy) == []


def test_s3_sync_works_with_only_put_object_on_the_bucket(
    scoped: EmbeddedAws, moto_server: MotoServer
) -> None:
    summary = _run(scoped, moto_server, DESTINATION=f"s3://{scoped.bucket}/p")
    assert summary.items_written == 40


def test_enforcement_is_real_a_reader_without_decrypt_is_refused(
    scoped: EmbeddedAws, moto_server: MotoServer
) -> None:
    _put_policy(scoped, scoped.reader_role_name, [_allow(SEED_ACTIONS[:3])])
    with pytest.raises(DecryptError) as raised:
        _run(scoped, moto_server)
    assert raised.value.attribute in ("ssn", "card", "api_secret")
    assert raised.value.kind in ("AccessDeniedException", "403")


def test_a_reader_without_scan_is_refused(scoped: EmbeddedAws, moto_server: MotoServer) -> None:
    _put_policy(scoped, scoped.reader_role_name, [_allow(["dynamodb:GetItem", "kms:Decrypt"])])
    with pytest.raises(
        SourceAccessError, match=f"scan of source table {scoped.source_table} failed"
    ):
        _run(scoped, moto_server)


def test_a_function_role_that_may_not_assume_the_reader_fails_before_reading(
    scoped: EmbeddedAws, moto_server: MotoServer
) -> None:
    _put_policy(scoped, scoped.function_role_name, [_allow(["dynamodb:DescribeTable"])])
    with (
        moto_server.recording() as calls,
        pytest.raises(
            SourceAccessError, match=r"cannot assume SOURCE_ROLE_ARN .*table-sync-source-reader"
        ),
    ):
        _run(scoped, moto_server)
    assert {c.name for c in calls} == {"sts:AssumeRole"}


def test_writes_outside_the_granted_bucket_are_refused(
    scoped: EmbeddedAws, moto_server: MotoServer
) -> None:
    other = "some-other-bucket-b"
    scoped.account_b().client("s3").create_bucket(
        Bucket=other, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
    )
    with pytest.raises(Exception, match=r"PutObject s3://some-other-bucket-b/.*failed"):
        _run(scoped, moto_server, DESTINATION=f"s3://{other}/p")


# The function role's DynamoDB actions in template.yaml: the copy table's (DescribeTable,
# BatchGetItem, BatchWriteItem, Scan), the change index's (the same) and the state table's
# (GetItem, PutItem, DeleteItem). S3: PutObject only (no GetObject or ListBucket).
TEMPLATE_FUNCTION_DYNAMODB_ACTIONS = [
    "dynamodb:DescribeTable",
    "dynamodb:BatchGetItem",
    "dynamodb:BatchWriteItem",
    "dynamodb:Scan",
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:DeleteItem",
]


def test_incremental_s3_exports_need_only_the_template_actions(
    scoped: EmbeddedAws, moto_server: MotoServer
) -> None:
    """The chain of exports is kept in the state table and the change index, never read back
    from S3: the function writes objects and reads none."""
    index = scoped.named("change-index")
    create_table(scoped.account_b().client("dynamodb"), index, KEY_SCHEMA_PK)
    _put_policy(
        scoped,
        scoped.function_role_name,
        [
            _allow(["sts:AssumeRole"], scoped.reader_role_arn),
            _allow(TEMPLATE_FUNCTION_DYNAMODB_ACTIONS),
            _allow(["s3:PutObject"], f"arn:aws:s3:::{scoped.bucket}/*"),
        ],
    )
    env = {
        "DESTINATION": f"s3://{scoped.bucket}/p",
        "CHANGE_INDEX_TABLE": index,
        "STATE_TABLE": scoped.state_table,
    }
    assert _run(scoped, moto_server, **env).items_written == 40
    gone = sorted(scoped.expected)[0]
    scoped.account_a().client("dynamodb").delete_item(
        TableName=scoped.source_table, Key={"pk": {"S": gone}}
    )
    second = _run(scoped, moto_server, **env)
    assert (second.items_written, second.items_swept) == (0, 1)
