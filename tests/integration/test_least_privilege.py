"""The sync works with the roles the templates deploy, and nothing more, with moto's IAM
enforcement on: each test deploys both templates for its own view (``EmbeddedAws.deployed``)
and runs with the deployed function's environment and role.

moto matches DynamoDB and KMS policy statements only against ``Resource: "*"``, so the deployed
roles' DynamoDB and KMS statements are put on ``"*"`` for moto (same actions; the templates'
exact ARNs are checked by cfn-lint and checkov instead). S3 and STS statements keep their ARNs,
which moto matches.
"""

from __future__ import annotations

from typing import Any

import pytest

from table_sync.errors import DecryptError, SourceAccessError
from table_sync.models import Invocation, Settings
from table_sync.runs import apply_invocation, run_step
from table_sync_dev.local.seed import EmbeddedAws
from table_sync_dev.local.server import MotoServer
from table_sync_dev.local.stacks import put_role_policies, role_policies
from table_sync_dev.local.verify import differences, read_export, read_table
from tests.integration.conftest import unique_name

PREFIX = "exports/my-table"  # template.yaml's DestinationPrefix: the function's PutObject prefix


def _deployed(aws: EmbeddedAws, **parameters: str) -> EmbeddedAws:
    view = aws.deployed(unique_name(), **parameters)
    view.sessions()  # made now: with IAM enforced, moto's own keys could not assume the roles
    return view


@pytest.fixture
def deployed(aws: EmbeddedAws) -> EmbeddedAws:
    return _deployed(aws)


def _settings(aws: EmbeddedAws) -> Settings:
    """The deployed function's settings, as Lambda gives them to it."""
    return Settings.from_env(aws.function_environment())


def _run(aws: EmbeddedAws, server: MotoServer, invocation: Invocation | None = None) -> Any:
    invocation = invocation or Invocation(trigger="backfill")
    session = aws.function_credentials().session()
    settings = apply_invocation(_settings(aws), invocation)
    with server.iam_enforced():
        return run_step(
            settings,
            invocation,
            base_session=session,
            role_session_name="least-privilege",
        )


def _without(aws: EmbeddedAws, role_arn: str, *actions: str) -> None:
    """The deployed role's policies less ``actions`` (a permission taken away)."""
    account = (
        aws.account_a() if role_arn.split(":")[4] == aws.account_a().account_id else aws.account_b()
    )
    role = role_arn.rsplit("/", 1)[1]

    def kept(statement: dict[str, Any]) -> dict[str, Any]:
        listed = (
            statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        )
        return {**statement, "Action": [a for a in listed if a not in actions]}

    policies = role_policies(account, role)
    put_role_policies(
        account,
        role,
        {
            name: {**doc, "Statement": [s for s in map(kept, doc["Statement"]) if s["Action"]]}
            for name, doc in policies.items()
        },
    )


def test_the_deployed_roles_make_an_exact_copy(
    deployed: EmbeddedAws, moto_server: MotoServer
) -> None:
    summary = _run(deployed, moto_server, Invocation(trigger="schedule"))
    assert summary.items_written == 40
    copy = read_table(deployed.account_b().client("dynamodb"), deployed.destination_table)
    assert differences(deployed.expected, copy) == []


def test_a_backfill_into_the_stacks_bucket_needs_only_its_prefix(
    deployed: EmbeddedAws, moto_server: MotoServer
) -> None:
    destination = f"s3://{deployed.bucket}/{PREFIX}"
    summary = _run(deployed, moto_server, Invocation(trigger="backfill", destination=destination))
    assert summary.items_written == 40
    export = read_export(deployed.account_b().client("s3"), deployed.bucket, summary.location)
    assert differences(deployed.expected, export.items) == []


def test_enforcement_is_real_a_reader_without_decrypt_is_refused(
    deployed: EmbeddedAws, moto_server: MotoServer
) -> None:
    _without(deployed, deployed.reader_role_arn, "kms:Decrypt")
    with pytest.raises(DecryptError) as raised:
        _run(deployed, moto_server)
    assert raised.value.attribute in ("ssn", "card", "api_secret")
    assert raised.value.kind in ("AccessDeniedException", "403")


def test_a_reader_without_scan_is_refused(deployed: EmbeddedAws, moto_server: MotoServer) -> None:
    _without(deployed, deployed.reader_role_arn, "dynamodb:Scan")
    with pytest.raises(
        SourceAccessError, match=f"scan of source table {deployed.source_table} failed"
    ):
        _run(deployed, moto_server)


def test_a_function_role_that_may_not_assume_the_reader_fails_before_reading(
    deployed: EmbeddedAws, moto_server: MotoServer
) -> None:
    _without(deployed, deployed.function_role_arn, "sts:AssumeRole")
    with (
        moto_server.recording() as calls,
        pytest.raises(
            SourceAccessError, match=r"cannot assume SOURCE_ROLE_ARN .*table-sync-source-reader"
        ),
    ):
        _run(deployed, moto_server)
    assert "sts:AssumeRole" in {c.name for c in calls}
    assert not {c.name for c in calls} & {"dynamodb:Scan", "kms:Decrypt"}


def test_writes_outside_the_granted_prefix_are_refused(
    deployed: EmbeddedAws, moto_server: MotoServer
) -> None:
    elsewhere = Invocation(trigger="backfill", destination=f"s3://{deployed.bucket}/other")
    with pytest.raises(Exception, match=rf"PutObject s3://{deployed.bucket}/other/.*failed"):
        _run(deployed, moto_server, elsewhere)


def test_incremental_s3_exports_need_only_the_template_policies(
    aws: EmbeddedAws, moto_server: MotoServer
) -> None:
    """The chain of exports is kept in the state table and the change index, never read back
    from S3: the deployed function writes objects and reads none."""
    deployed = _deployed(aws, DestinationType="s3")
    assert _settings(deployed).incremental
    assert _run(deployed, moto_server).items_written == 40
    gone = sorted(deployed.expected)[0]
    deployed.account_a().client("dynamodb").delete_item(
        TableName=deployed.source_table, Key={"pk": {"S": gone}}
    )
    second = _run(deployed, moto_server)
    assert (second.items_written, second.items_swept) == (0, 1)


def _kms_statements(aws: EmbeddedAws) -> dict[str, list[str]]:
    """The function role's KMS statements of AccountB's own keys, by Sid: their actions."""
    policy = role_policies(aws.account_b(), aws.function_role_name)["table-sync"]
    return {
        s["Sid"]: s["Action"] if isinstance(s["Action"], list) else [s["Action"]]
        for s in policy["Statement"]
        if s["Sid"] in ("DeriveHashKey", "ReencryptAttributes", "ReencryptAttributesUnderStackKey")
    }


def test_protecting_the_copy_gets_only_its_kms_actions_and_only_when_on(
    aws: EmbeddedAws, moto_server: MotoServer
) -> None:
    """Issue 30: a keyed hash needs kms:GenerateMac on its key, re-encryption kms:GenerateDataKey
    on the attribute key (here the one the stack creates); neither is granted otherwise."""
    hmac_key = (
        aws.account_b()
        .client("kms")
        .create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"]["Arn"]
    )
    protecting = _deployed(
        aws,
        HashAttributes="card",
        HashKeyArn=hmac_key,
        ReencryptAttributes="ssn",
        CreateAttributeKey="true",
        DropAttributes="avatar",
    )
    assert _kms_statements(protecting) == {
        "DeriveHashKey": ["kms:GenerateMac"],
        "ReencryptAttributesUnderStackKey": ["kms:GenerateDataKey"],
    }
    environment = protecting.function_environment()
    assert (
        environment["DESTINATION_ATTRIBUTE_KEY_ARN"]
        == protecting.deployment.outputs["AttributeKeyArn"]
    )
    summary = _run(protecting, moto_server)
    assert summary.items_written == 40
    assert summary.destination_kms_requests == 2  # the hash key, and one data key
    copy = read_table(protecting.account_b().client("dynamodb"), protecting.destination_table)
    assert all(set(item["ssn"]) == {"B"} and "avatar" not in item for item in copy.values())

    _without(protecting, protecting.function_role_arn, "kms:GenerateMac")
    with pytest.raises(
        Exception, match=r"HASH_KEY_ARN: kms:GenerateMac failed: .* needs kms:GenerateMac on HASH"
    ):
        _run(protecting, moto_server, Invocation(trigger="backfill", full=True))


def test_a_deployment_without_protection_grants_none_of_its_kms_actions(
    deployed: EmbeddedAws,
) -> None:
    assert _kms_statements(deployed) == {}
    environment = deployed.function_environment()
    assert not {"HASH_KEY_ARN", "DESTINATION_ATTRIBUTE_KEY_ARN", "TRANSFORM"} & set(environment)
