from __future__ import annotations

from pathlib import Path

import boto3
import pytest

from table_sync.errors import ConfigurationError
from table_sync.models import DynamoDBDestination, Invocation, S3Destination, Settings
from table_sync.runs import apply_invocation, run_step

BASE = {
    "SOURCE_ROLE_ARN": "arn:aws:iam::111111111111:role/table-sync-source-reader",
    "SOURCE_KMS_KEY_ARN": "arn:aws:kms:eu-west-1:111111111111:key/0d1b2c3d-aaaa-bbbb-cccc-1234567890ab",
    "ENCRYPTED_ATTRIBUTES": "ssn, card",
    "DESTINATION": "dynamodb://my-table-copy",
    "QUARANTINE": "dynamodb://table-sync-quarantine",
}


def test_defaults_follow_the_runbook() -> None:
    settings = Settings.from_env(BASE)
    assert settings.source_table_name == "my-table"
    assert settings.source_session_duration == 900
    assert settings.encrypted_attributes == ("ssn", "card")
    assert settings.destination == DynamoDBDestination(table_name="my-table-copy")
    assert settings.dry_run is False
    assert settings.page_size is None


def test_region_and_arns_are_derived_from_the_key_and_role() -> None:
    settings = Settings.from_env(BASE)
    assert settings.kms_region == settings.table_region == "eu-west-1"
    assert settings.source_account == "111111111111"
    assert settings.source_table_arn == "arn:aws:dynamodb:eu-west-1:111111111111:table/my-table"
    moved = Settings.from_env({**BASE, "SOURCE_REGION": "us-east-2"})
    assert moved.table_region == "us-east-2"
    assert moved.kms_region == "eu-west-1"


def test_empty_values_count_as_unset() -> None:
    """CloudFormation passes an empty parameter as an empty string."""
    settings = Settings.from_env({**BASE, "SOURCE_EXTERNAL_ID": "", "PAGE_SIZE": ""})
    assert settings.source_external_id is None
    assert settings.page_size is None


def test_s3_destination_and_prefix_normalisation() -> None:
    settings = Settings.from_env({**BASE, "DESTINATION": "s3://copy-bucket/exports/my-table/"})
    assert settings.destination == S3Destination(bucket="copy-bucket", prefix="exports/my-table")
    assert settings.destination.uri == "s3://copy-bucket/exports/my-table"
    bare = Settings.from_env({**BASE, "DESTINATION": "s3://copy-bucket"})
    assert bare.destination == S3Destination(bucket="copy-bucket", prefix="")


def test_the_s3_key_is_kept_beside_a_dynamodb_destination_for_a_backfill_to_s3() -> None:
    """template.yaml names its copy key for every deployment: a dynamodb:// function's
    backfill may write to the stack's bucket, and an s3:// QUARANTINE is written with it too."""
    key = "arn:aws:kms:eu-west-1:222222222222:key/copy-key"
    settings = Settings.from_env({**BASE, "DESTINATION_KMS_KEY_ARN": key})
    assert settings.destination_kms_key_arn == key
    table = {
        **BASE,
        "DESTINATION_KMS_KEY_ARN": key,
        "STATE_TABLE": "state",
        "SWEEP_DELETES": "true",
    }
    assert Settings.from_env(table).mirror  # template.yaml's dynamodb:// function sweeps
    backfill = apply_invocation(
        Settings.from_env(table),
        Invocation(trigger="backfill", destination="s3://copy-bucket/exports"),
    )
    assert backfill.destination_kms_key_arn == key
    assert backfill.mirror is False  # the copy table's SWEEP_DELETES does not follow it to S3


def test_overrides_win_over_the_environment() -> None:
    settings = Settings.from_env(BASE, source_table_name="other-table", page_size=10)
    assert settings.source_table_name == "other-table"
    assert settings.page_size == 10


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ConfigurationError) as raised:
        Settings.from_env({"SOURCE_SESSION_DURATION": "3601", "DESTINATION": "s3://x"})
    names = [p.split(":")[0] for p in raised.value.problems]
    # ENCRYPTED_ATTRIBUTES too: before, it appeared only once the others were fixed.
    assert names == [
        "SOURCE_ROLE_ARN",
        "SOURCE_SESSION_DURATION",
        "SOURCE_KMS_KEY_ARN",
        "DESTINATION",
        "ENCRYPTED_ATTRIBUTES",
    ]


def test_attributes_format_needs_encrypted_attributes() -> None:
    settings = {k: v for k, v in BASE.items() if k != "ENCRYPTED_ATTRIBUTES"}
    with pytest.raises(ConfigurationError, match="ENCRYPTED_ATTRIBUTES: required but not set"):
        Settings.from_env(settings)
    assert Settings.from_env({**settings, "ITEM_FORMAT": "credstash"}).encrypted_attributes == ()


def test_kms_encryption_context_is_a_json_object_of_strings() -> None:
    settings = Settings.from_env(
        {**BASE, "KMS_ENCRYPTION_CONTEXT": '{"purpose": "x", "pk": "${pk}"}'}
    )
    assert settings.kms_encryption_context == {"purpose": "x", "pk": "${pk}"}
    for bad, message in [
        ("[1]", "KMS_ENCRYPTION_CONTEXT: must be a JSON object"),
        ('{"a": 1}', "KMS_ENCRYPTION_CONTEXT.a: Input should be a valid string"),
        ("{", "KMS_ENCRYPTION_CONTEXT: must be a JSON object"),
    ]:
        with pytest.raises(ConfigurationError, match=message):
            Settings.from_env({**BASE, "KMS_ENCRYPTION_CONTEXT": bad})


def test_quarantine_target_defaults_beside_an_s3_destination() -> None:
    without = {k: v for k, v in BASE.items() if k != "QUARANTINE"}
    settings = Settings.from_env({**without, "DESTINATION": "s3://copy-bucket/exports"})
    assert settings.quarantine_target == S3Destination(
        bucket="copy-bucket", prefix="exports/quarantine"
    )
    with pytest.raises(ConfigurationError, match="QUARANTINE: required with a dynamodb://"):
        Settings.from_env(without)
    assert Settings.from_env({**without, "ON_DECRYPT_ERROR": "fail"}).quarantine_target is None


@pytest.mark.parametrize("duration", ["900", "3600"])
def test_session_duration_bounds_are_inclusive(duration: str) -> None:
    assert Settings.from_env({**BASE, "SOURCE_SESSION_DURATION": duration})


def test_alias_arn_is_accepted_for_the_key() -> None:
    alias = "arn:aws:kms:eu-west-1:111111111111:alias/my-table"
    assert Settings.from_env({**BASE, "SOURCE_KMS_KEY_ARN": alias}).source_kms_key_arn == alias


def test_key_attributes_cannot_be_encrypted() -> None:
    with pytest.raises(ConfigurationError, match="ENCRYPTED_ATTRIBUTES: key attribute"):
        Settings.from_env({**BASE, "SOURCE_KEY_ATTRIBUTES": "pk,ssn"})


def test_backoff_cap_must_not_be_below_base() -> None:
    with pytest.raises(ConfigurationError, match="WRITE_BACKOFF_CAP_SECONDS"):
        Settings.from_env(
            {**BASE, "WRITE_BACKOFF_BASE_SECONDS": "2", "WRITE_BACKOFF_CAP_SECONDS": "1"}
        )


def test_external_id_is_not_in_the_repr() -> None:
    settings = Settings.from_env({**BASE, "SOURCE_EXTERNAL_ID": "very-secret-id"})
    assert "very-secret-id" not in repr(settings)


def test_no_region_anywhere_is_a_configuration_error_naming_aws_region(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The state store's client is the first one made: without a region it must not escape as
    # botocore's NoRegionError. No request is sent: the client cannot even be created.
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    settings = Settings.from_env({**BASE, "STATE_TABLE": "table-sync-state"})
    session = boto3.Session(aws_access_key_id="AKIAUNIT", aws_secret_access_key="unit")
    with pytest.raises(ConfigurationError, match="AWS_REGION"):
        run_step(
            settings, Invocation(trigger="backfill"), base_session=session, role_session_name="t"
        )


def test_sweeping_deletes_needs_the_lease_of_a_state_table() -> None:
    """Issue 11 (2): two runs sweeping one copy without a lease deleted each other's items
    (3,000 items, 1,600 left); the setting was accepted before."""
    with pytest.raises(ConfigurationError) as raised:
        Settings.from_env({**BASE, "SWEEP_DELETES": "true"})
    assert raised.value.problems == [
        "SWEEP_DELETES: requires STATE_TABLE: deleting from the copy needs the destination's "
        "lease, or two runs delete each other's items"
    ]
    assert Settings.from_env({**BASE, "SWEEP_DELETES": "true", "STATE_TABLE": "state"})


def test_plaintext_types_are_declared_per_attribute() -> None:
    settings = Settings.from_env({**BASE, "PLAINTEXT_TYPES": "ssn:S, card:B"})
    assert settings.plaintext_types == {"ssn": "S", "card": "B"}
    assert Settings.from_env(BASE).plaintext_types == {}  # auto: UTF-8 text is S, else B
    for bad, message in [
        ("ssn", "PLAINTEXT_TYPES: must be attribute:type pairs"),
        ("ssn:X", "PLAINTEXT_TYPES.ssn: Input should be 'S', 'B' or 'auto'"),
        ("photo:B", "PLAINTEXT_TYPES: photo not decrypted with ITEM_FORMAT=attributes"),
    ]:
        with pytest.raises(ConfigurationError, match=message):
            Settings.from_env({**BASE, "PLAINTEXT_TYPES": bad})


def test_incremental_exports_are_for_an_s3_copy_with_a_state_table() -> None:
    s3 = {**BASE, "DESTINATION": "s3://copies/exports", "CHANGE_INDEX_TABLE": "index"}
    with pytest.raises(ConfigurationError) as raised:
        Settings.from_env(s3)
    assert raised.value.problems == [
        "CHANGE_INDEX_TABLE: requires STATE_TABLE: the chain of exports, the keys a run saw and "
        "the destination's lease are kept there"
    ]
    settings = Settings.from_env({**s3, "STATE_TABLE": "state"})
    assert settings.incremental
    assert settings.mirror
    assert settings.full_snapshot_every == 7
    # A backfill into a dynamodb:// copy keeps the setting unused: that copy is a mirror.
    table = Settings.from_env({**BASE, "CHANGE_INDEX_TABLE": "index", "STATE_TABLE": "state"})
    assert not table.incremental
    with pytest.raises(ConfigurationError, match="FULL_SNAPSHOT_EVERY"):
        Settings.from_env({**s3, "STATE_TABLE": "state", "FULL_SNAPSHOT_EVERY": "0"})


def test_full_copy_every_needs_the_state_table_that_counts_the_runs() -> None:
    with pytest.raises(ConfigurationError, match="FULL_COPY_EVERY: requires STATE_TABLE"):
        Settings.from_env({**BASE, "FULL_COPY_EVERY": "7"})
    assert (
        Settings.from_env({**BASE, "FULL_COPY_EVERY": "7", "STATE_TABLE": "state"}).full_copy_every
        == 7
    )
    # A backfill into S3 from a table copy's function keeps working: S3 has FULL_SNAPSHOT_EVERY.
    s3 = {**BASE, "FULL_COPY_EVERY": "7", "DESTINATION": "s3://copy-bucket/p"}
    assert Settings.from_env(s3).full_copy_every == 7
