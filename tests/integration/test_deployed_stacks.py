"""Both templates deployed through the embedded AWS's CloudFormation, then a sync with what they
made: the function's environment exactly as CloudFormation resolves template.yaml, its execution
role, and AccountA's reader role from source-account/template.yaml.

template.yaml goes through SAM CLI's own transform first. moto 5.2's CloudFormation needs two
adaptations, made in the dev package (``table_sync_dev.local.stacks.for_moto``) and only for
it: conditions are resolved beforehand (moto fails on ``AWS::NoValue`` in a role's Policies),
and the resource types moto does not create (alarms, schedules, the event-invoke config, the
bucket policy, and the dashboard that names the alarms) are left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import boto3
import pytest

from table_sync.function import handle_event
from table_sync.models import Settings
from table_sync_dev.local.accounts import ACCOUNT_A, REGION, assume
from table_sync_dev.local.paths import ROOT, SAM_PYTHON
from table_sync_dev.local.seed import EmbeddedAws
from table_sync_dev.local.stacks import (
    FUNCTION_TEMPLATE,
    SOURCE_TEMPLATE,
    deploy,
    function_environment,
    load_template,
    physical_ids,
    sam_transform,
    upload_code,
)
from table_sync_dev.local.verify import differences, read_export, read_table
from tests.conftest import load_event

pytestmark = [
    pytest.mark.deploy,
    pytest.mark.skipif(
        not SAM_PYTHON.exists(), reason="aws-sam-cli is not installed: `make install` installs it"
    ),
]


@pytest.fixture(scope="module")
def function_template(world: EmbeddedAws) -> dict[str, Any]:
    """template.yaml as `sam deploy` sends it, with the code uploaded to AccountB's S3."""
    code = upload_code(world.account_b(), "deploy-artifacts", "table-sync.zip", ROOT / "src")
    return sam_transform(FUNCTION_TEMPLATE, code, REGION)


@dataclass(frozen=True)
class Deployed:
    environment: dict[str, str]  # the function's, as Lambda gives it to the runtime
    resources: dict[str, str]  # AccountB's stack: physical ids by logical id
    function_role_arn: str


def _deploy_both(
    aws: EmbeddedAws, function_template: dict[str, Any], **parameters: str
) -> Deployed:
    """AccountB's stack (the parameters a user must give, plus ``parameters``), then AccountA's
    reader role trusting the function role it made, as README's Deploying section orders it."""
    reader_role = aws.named("reader")
    outputs = deploy(
        aws.account_b(),
        aws.named("b"),
        function_template,
        {
            "SourceRoleArn": f"arn:aws:iam::{ACCOUNT_A}:role/{reader_role}",
            "SourceExternalId": aws.external_id or "",
            "SourceTableName": aws.source_table,
            "SourceKmsKeyArn": aws.key_arn,
            "EncryptedAttributes": "ssn,card,api_secret",
            **parameters,
        },
    )
    deploy(
        aws.account_a(),
        aws.named("a"),
        load_template(SOURCE_TEMPLATE),
        {
            "TrustedRoleArn": outputs["FunctionRoleArn"],
            "ExternalId": aws.external_id or "",
            "TableName": aws.source_table,
            "KmsKeyArn": aws.key_arn,
            "ReaderRoleName": reader_role,
        },
    )
    resources = physical_ids(aws.account_b(), aws.named("b"))
    return Deployed(
        function_environment(aws.account_b(), resources["SyncFunction"]),
        resources,
        outputs["FunctionRoleArn"],
    )


def _function_session(aws: EmbeddedAws, deployed: Deployed) -> boto3.Session:
    creds = assume(aws.endpoint, deployed.function_role_arn, session_name="table-sync")
    return boto3.Session(
        aws_access_key_id=creds.access_key_id,
        aws_secret_access_key=creds.secret_access_key,
        aws_session_token=creds.session_token,
        region_name=REGION,
    )


@pytest.mark.parametrize("destination_type", ["dynamodb", "s3"])
def test_the_deployed_environment_is_valid_settings(
    aws: EmbeddedAws, function_template: dict[str, Any], destination_type: str
) -> None:
    """Before, template.yaml gave every deployment DESTINATION_KMS_KEY_ARN, and Settings
    refused it beside the default dynamodb:// destination: every run failed."""
    deployed = _deploy_both(aws, function_template, DestinationType=destination_type)
    settings = Settings.from_env(deployed.environment)
    assert settings.destination.uri.startswith(f"{destination_type}://")
    assert settings.destination_kms_key_arn == deployed.environment["DESTINATION_KMS_KEY_ARN"]


def test_a_deployment_with_default_parameters_makes_an_exact_copy(
    aws: EmbeddedAws, function_template: dict[str, Any], lambda_context
) -> None:
    deployed = _deploy_both(aws, function_template)
    session = _function_session(aws, deployed)

    summary = handle_event(
        load_event("scheduled-event.json"),
        lambda_context,
        environ=deployed.environment,
        base_session=session,
    )

    assert summary.status == "succeeded"
    copy = read_table(aws.account_b().client("dynamodb"), deployed.resources["CopyTable"])
    assert differences(aws.expected, copy) == []
    # A backfill to the stack's own bucket, from the same deployment, is SSE-KMS under its key.
    bucket = deployed.resources["CopyBucket"]
    event = {**load_event("backfill-s3.json"), "destination": f"s3://{bucket}/exports/my-table"}
    backfill = handle_event(
        event, lambda_context, environ=deployed.environment, base_session=session
    )
    export = read_export(aws.account_b().client("s3"), bucket, backfill.location or "")
    assert differences(aws.expected, export.items) == []
    head = aws.account_b().client("s3").head_object(Bucket=bucket, Key=export.object_keys[0])
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"] == deployed.environment["DESTINATION_KMS_KEY_ARN"]
