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

import pytest

from table_sync.function import handle_event
from table_sync.models import Settings
from table_sync_dev.local.paths import SAM_PYTHON
from table_sync_dev.local.seed import EmbeddedAws
from table_sync_dev.local.verify import differences, read_export, read_table
from tests.conftest import load_event
from tests.integration.conftest import unique_name

pytestmark = [
    pytest.mark.deploy,
    pytest.mark.skipif(
        not SAM_PYTHON.exists(), reason="aws-sam-cli is not installed: `make install` installs it"
    ),
]


@pytest.mark.parametrize("destination_type", ["dynamodb", "s3"])
def test_the_deployed_environment_is_valid_settings(
    aws: EmbeddedAws, destination_type: str
) -> None:
    """Before, template.yaml gave every deployment DESTINATION_KMS_KEY_ARN, and Settings
    refused it beside the default dynamodb:// destination: every run failed."""
    environment = aws.deployed(
        unique_name(), DestinationType=destination_type
    ).function_environment()
    settings = Settings.from_env(environment)
    assert settings.destination.uri.startswith(f"{destination_type}://")
    assert settings.destination_kms_key_arn == environment["DESTINATION_KMS_KEY_ARN"]


def test_a_deployment_with_default_parameters_makes_an_exact_copy(
    aws: EmbeddedAws, lambda_context
) -> None:
    deployed = aws.deployed(unique_name())
    environment, session = (
        deployed.function_environment(),
        deployed.function_credentials().session(),
    )

    summary = handle_event(
        load_event("scheduled-event.json"),
        lambda_context,
        environ=environment,
        base_session=session,
    )

    assert summary.status == "succeeded"
    copy = read_table(aws.account_b().client("dynamodb"), deployed.destination_table)
    assert differences(aws.expected, copy) == []
    # A backfill to the stack's own bucket, from the same deployment, is SSE-KMS under its key.
    bucket = deployed.bucket
    event = {**load_event("backfill-s3.json"), "destination": f"s3://{bucket}/exports/my-table"}
    backfill = handle_event(event, lambda_context, environ=environment, base_session=session)
    export = read_export(aws.account_b().client("s3"), bucket, backfill.location or "")
    assert differences(aws.expected, export.items) == []
    head = aws.account_b().client("s3").head_object(Bucket=bucket, Key=export.object_keys[0])
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"] == environment["DESTINATION_KMS_KEY_ARN"]
