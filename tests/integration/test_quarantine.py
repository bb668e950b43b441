"""Items that cannot be decrypted: quarantined by key, attribute and reason; the run goes on."""

from __future__ import annotations

import json

import pytest

from table_sync.handler import lambda_handler
from table_sync.models import Settings
from table_sync.verify import verify_copy
from table_sync_dev.local.seed import EmbeddedAws, encrypt_value
from table_sync_dev.local.verify import differences, read_export, read_table
from tests.conftest import load_event
from tests.integration.conftest import Telemetry, set_source_attribute, source_item

BROKEN = {
    "customer#00005": ("ssn", "InvalidCiphertextException"),
    "customer#00010": ("card", "AccessDeniedException"),  # another key: AWS says IncorrectKey
    "customer#00015": ("card", "InvalidBase64"),
}


def _break_three_items(aws: EmbeddedAws) -> None:
    blob = source_item(aws, "customer#00005")["ssn"]["B"]
    set_source_attribute(aws, "customer#00005", "ssn", {"B": blob[:-1] + bytes([blob[-1] ^ 1])})
    kms = aws.account_a().client("kms")
    other_key = kms.create_key()["KeyMetadata"]["Arn"]
    set_source_attribute(
        aws, "customer#00010", "card", encrypt_value(kms, other_key, "card", "4111111111111111")
    )
    set_source_attribute(aws, "customer#00015", "card", {"S": "%%% not base64 %%%"})


def test_bad_items_are_quarantined_and_the_rest_copied(
    aws: EmbeddedAws, function_env, lambda_context, telemetry: Telemetry
) -> None:
    _break_three_items(aws)
    summary = lambda_handler(load_event("scheduled-event.json"), lambda_context)

    assert summary["items_quarantined"] == 3
    assert summary["items_written"] == 37
    assert summary["quarantine"] == f"dynamodb://{aws.quarantine_table}"
    copy = read_table(aws.account_b().client("dynamodb"), aws.destination_table)
    expected = {k: v for k, v in aws.expected.items() if k not in BROKEN}
    assert differences(expected, copy) == []  # nothing half-decrypted, nothing missing

    records = read_table(aws.account_b().client("dynamodb"), aws.quarantine_table, key="item")
    got = {k: (r["attribute"]["S"], r["error"]["S"]) for k, r in records.items()}
    wanted = {f'{{pk=S:"{pk}"}}': reason for pk, reason in BROKEN.items()}
    assert set(got) == set(wanted)
    for item, (attribute, error) in got.items():
        assert attribute == wanted[item][0]
        assert error in (wanted[item][1], "IncorrectKeyException")
    record = records['{pk=S:"customer#00005"}']
    assert record["run_id"]["S"] == summary["run_id"]
    assert record["key"] == {"M": {"pk": {"S": "customer#00005"}}}

    output = telemetry.text()
    assert output.count('"message":"item quarantined"') == 3
    emf = [json.loads(line) for line in output.splitlines() if '"_aws"' in line]
    assert [v for d in emf for k, v in d.items() if k == "ItemsQuarantined"] == [[3.0]]
    for item in aws.expected.values():  # no plaintext of any item, broken or not
        for name in ("ssn", "card"):
            if name in item:
                assert item[name]["S"] not in output
    assert "4111111111111111" not in output


def test_a_rerun_after_the_fix_copies_the_item(
    aws: EmbeddedAws, function_env, lambda_context
) -> None:
    original = source_item(aws, "customer#00005")["ssn"]
    _break_three_items(aws)
    lambda_handler(load_event("scheduled-event.json"), lambda_context)
    set_source_attribute(aws, "customer#00005", "ssn", original)  # the writer repaired the value

    summary = lambda_handler(load_event("scheduled-event.json"), lambda_context)

    assert summary["items_quarantined"] == 2
    copy = read_table(aws.account_b().client("dynamodb"), aws.destination_table)
    assert copy["customer#00005"]["ssn"] == aws.expected["customer#00005"]["ssn"]


def test_quarantine_beside_an_s3_destination(
    aws: EmbeddedAws, function_env, lambda_context, monkeypatch: pytest.MonkeyPatch
) -> None:
    _break_three_items(aws)
    monkeypatch.delenv("QUARANTINE")
    monkeypatch.setenv("DESTINATION", f"s3://{aws.bucket}/exports/my-table")
    monkeypatch.setenv("SOURCE_KEY_ATTRIBUTES", "pk")  # no copy table to learn the key from
    summary = lambda_handler(load_event("scheduled-event.json"), lambda_context)
    location = f"s3://{aws.bucket}/exports/my-table/quarantine/{summary['run_id']}/"
    assert summary["quarantine"] == location
    s3 = aws.account_b().client("s3")
    prefix = location.removeprefix(f"s3://{aws.bucket}/")
    objects = s3.list_objects_v2(Bucket=aws.bucket, Prefix=prefix)["Contents"]
    lines = [
        json.loads(line)
        for obj in objects
        for line in s3.get_object(Bucket=aws.bucket, Key=obj["Key"])["Body"].read().splitlines()
    ]
    assert sorted(r["key"]["pk"]["S"] for r in lines) == sorted(BROKEN)
    assert all(
        s3.head_object(Bucket=aws.bucket, Key=o["Key"])["ServerSideEncryption"] == "AES256"
        for o in objects
    )


@pytest.mark.items(12)
def test_encryption_context_from_the_items_own_key(
    aws: EmbeddedAws, function_env, lambda_context, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer that bound each ciphertext to its item: context {"customer": <pk>}."""
    kms = aws.account_a().client("kms")
    plaintexts = {}
    for pk in aws.expected:
        plaintexts[pk] = f"secret for {pk}"
        context = {"customer": "someone-else" if pk == "customer#00007" else pk, "app": "crm"}
        blob = kms.encrypt(
            KeyId=aws.key_arn, Plaintext=plaintexts[pk].encode(), EncryptionContext=context
        )["CiphertextBlob"]
        set_source_attribute(aws, pk, "ssn", {"B": blob})
    monkeypatch.setenv("ENCRYPTED_ATTRIBUTES", "ssn")
    monkeypatch.setenv("KMS_ENCRYPTION_CONTEXT", '{"customer": "${pk}", "app": "crm"}')

    summary = lambda_handler(load_event("scheduled-event.json"), lambda_context)

    assert summary["items_quarantined"] == 1
    copy = read_table(aws.account_b().client("dynamodb"), aws.destination_table)
    assert "customer#00007" not in copy
    assert {pk: i["ssn"]["S"] for pk, i in copy.items()} == {
        pk: s for pk, s in plaintexts.items() if pk != "customer#00007"
    }
    (record,) = read_table(
        aws.account_b().client("dynamodb"), aws.quarantine_table, key="item"
    ).values()
    assert record["error"]["S"] == "InvalidCiphertextException"


def test_a_role_that_cannot_decrypt_anything_fails_instead_of_quarantining_everything(
    aws: EmbeddedAws, function_env, lambda_context, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every ciphertext under a key this run cannot use: that is the setup, not the items."""
    other = aws.account_a().client("kms").create_key()["KeyMetadata"]["Arn"]
    monkeypatch.setenv("SOURCE_KMS_KEY_ARN", other)
    from table_sync.errors import DecryptError

    with pytest.raises(DecryptError, match=r"AccessDenied|IncorrectKey"):
        lambda_handler(load_event("scheduled-event.json"), lambda_context)
    assert read_table(aws.account_b().client("dynamodb"), aws.quarantine_table, key="item") == {}


def test_dry_run_reports_but_records_nothing(
    aws: EmbeddedAws, function_env, lambda_context
) -> None:
    _break_three_items(aws)
    summary = lambda_handler(load_event("backfill-dry-run.json"), lambda_context)
    assert summary["items_quarantined"] == 3
    assert read_table(aws.account_b().client("dynamodb"), aws.quarantine_table, key="item") == {}


def test_every_segment_s_quarantine_is_kept_and_the_finalize_points_at_it(
    aws: EmbeddedAws, function_env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 11 (3): a 4-segment S3 run with bad items in several segments records each once
    (before, objects were named by the segment's page number alone, so segments overwrote each
    other's records, and the finalize summary said "quarantine": null)."""
    from table_sync_dev.local.context import LocalLambdaContext

    broken = [f"customer#{n:05d}" for n in range(0, 40, 5)]  # 8 items across the key space
    for pk in broken:
        set_source_attribute(aws, pk, "ssn", {"S": "%%% not base64 %%%"})
    monkeypatch.delenv("QUARANTINE")
    monkeypatch.setenv("DESTINATION", f"s3://{aws.bucket}/exports")
    monkeypatch.setenv("SOURCE_KEY_ATTRIBUTES", "pk")
    monkeypatch.setenv("STATE_TABLE", aws.state_table)
    steps = [
        lambda_handler(
            {"trigger": "segment", "run_id": "run-q", "segment": n, "total_segments": 4},
            LocalLambdaContext(),
        )
        for n in range(4)
    ]
    assert sum(1 for s in steps if s["items_quarantined"]) >= 2  # bad items in several segments
    summary = lambda_handler(
        {"trigger": "finalize", "run_id": "run-q", "total_segments": 4}, LocalLambdaContext()
    )
    assert summary["items_quarantined"] == len(broken)
    location = f"s3://{aws.bucket}/exports/quarantine/run-q/"
    assert summary["quarantine"] == location
    s3 = aws.account_b().client("s3")
    objects = s3.list_objects_v2(Bucket=aws.bucket, Prefix="exports/quarantine/run-q/")["Contents"]
    records = [
        json.loads(line)
        for obj in objects
        for line in s3.get_object(Bucket=aws.bucket, Key=obj["Key"])["Body"].read().splitlines()
    ]
    assert sorted(r["key"]["pk"]["S"] for r in records) == broken  # each once


def test_a_quarantined_item_keeps_its_earlier_good_copy_through_the_sweep(
    aws: EmbeddedAws, function_env, lambda_context, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 11 (1): an item still in the source is never deleted from the copy. Before, an item
    that failed to decrypt in a sweeping run carried no current mark, and the sweep deleted the
    good copy an earlier run had made."""
    monkeypatch.setenv("SWEEP_DELETES", "true")
    monkeypatch.setenv("STATE_TABLE", aws.state_table)
    lambda_handler(load_event("backfill.json"), lambda_context)
    _break_three_items(aws)

    summary = lambda_handler(load_event("backfill.json"), lambda_context)

    assert summary["items_quarantined"] == 3
    assert summary["items_swept"] == 0
    copy = read_table(aws.account_b().client("dynamodb"), aws.destination_table)
    assert differences(aws.expected, copy) == []  # the three keep their earlier copies

    # Issue 12: the earlier copy is replaced once the item decrypts again (a new value, say).
    kms = aws.account_a().client("kms")
    set_source_attribute(
        aws, "customer#00005", "ssn", encrypt_value(kms, aws.key_arn, "ssn", "999-00-0005")
    )
    aws.expected["customer#00005"]["ssn"] = {"S": "999-00-0005"}
    summary = lambda_handler(load_event("backfill.json"), lambda_context)
    assert summary["items_quarantined"] == 2
    assert summary["items_written"] == 1  # the repaired item; the two still broken are tried
    assert summary["items_unchanged"] == 37  # again, and quarantined again
    copy = read_table(aws.account_b().client("dynamodb"), aws.destination_table)
    assert differences(aws.expected, copy) == []


@pytest.mark.items(4)
@pytest.mark.parametrize("destination", ["dynamodb", "s3"])
def test_declared_plaintext_types_are_kept(
    aws: EmbeddedAws, function_env, lambda_context, monkeypatch: pytest.MonkeyPatch, destination
) -> None:
    """Issue 11 (7): a Binary plaintext that happens to be UTF-8 was copied as a String. With
    PLAINTEXT_TYPES it stays Binary; a declared String that is not UTF-8 is quarantined."""
    kms = aws.account_a().client("kms")
    blob = kms.encrypt(KeyId=aws.key_arn, Plaintext=b"ASCIIBIN0")["CiphertextBlob"]
    set_source_attribute(aws, "customer#00001", "api_secret", {"B": blob})
    monkeypatch.setenv("PLAINTEXT_TYPES", "api_secret:B,ssn:S,card:S")
    # customer#00000's api_secret is 0xFFFE...: Binary, as declared; its ssn is text.
    nonutf8 = kms.encrypt(KeyId=aws.key_arn, Plaintext=b"\xff\xfe not text")["CiphertextBlob"]
    set_source_attribute(aws, "customer#00002", "ssn", {"B": nonutf8})
    if destination == "s3":
        monkeypatch.setenv("DESTINATION", f"s3://{aws.bucket}/typed")
        monkeypatch.setenv("SOURCE_KEY_ATTRIBUTES", "pk")
    summary = lambda_handler(load_event("backfill.json"), lambda_context)
    if destination == "s3":
        copy = read_export(aws.account_b().client("s3"), aws.bucket, summary["location"]).items
    else:
        copy = read_table(aws.account_b().client("dynamodb"), aws.destination_table)
    assert copy["customer#00001"]["api_secret"] == {"B": b"ASCIIBIN0"}
    assert copy["customer#00000"]["api_secret"] == aws.expected["customer#00000"]["api_secret"]
    assert copy["customer#00000"]["ssn"] == aws.expected["customer#00000"]["ssn"]
    assert "customer#00002" not in copy
    assert summary["items_quarantined"] == 1


@pytest.mark.items(10)
def test_source_attributes_named_like_table_syncs_own_are_quarantined_or_carried(
    aws: EmbeddedAws, function_env, lambda_context, function_session, monkeypatch
) -> None:
    """Before, a source item with its own _table_sync_digest had table-sync's digest in its
    copy instead, and verify said match (it dropped the name on both sides)."""
    set_source_attribute(aws, "customer#00002", "_table_sync_digest", {"S": "the user's own"})
    set_source_attribute(aws, "customer#00004", "_table_sync_run", {"N": "7"})
    summary = lambda_handler(load_event("scheduled-event.json"), lambda_context)
    assert summary["items_quarantined"] == 2
    records = read_table(aws.account_b().client("dynamodb"), aws.quarantine_table, key="item")
    got = {k: (r["attribute"]["S"], r["error"]["S"]) for k, r in records.items()}
    assert got == {
        '{pk=S:"customer#00002"}': ("_table_sync_digest", "ReservedAttributeName"),
        '{pk=S:"customer#00004"}': ("_table_sync_run", "ReservedAttributeName"),
    }
    settings = Settings.from_env({**function_env, "SOURCE_KEY_ATTRIBUTES": "pk"})
    table, _ = verify_copy(settings, base_session=function_session, role_session_name="reserved")
    assert table.missing == ['{pk=S:"customer#00002"}', '{pk=S:"customer#00004"}']

    # An s3:// copy keeps no bookkeeping in its items: they are carried as they are.
    destination = f"s3://{aws.bucket}/reserved"
    monkeypatch.setenv("DESTINATION", destination)
    backfill = lambda_handler({"trigger": "backfill", "id": "r"}, lambda_context)
    assert backfill["items_quarantined"] == 0
    export = read_export(aws.account_b().client("s3"), aws.bucket, backfill["location"])
    assert export.items["customer#00002"]["_table_sync_digest"] == {"S": "the user's own"}
    s3_settings = settings.model_copy(update={"destination": destination})
    exported, _ = verify_copy(
        s3_settings, base_session=function_session, role_session_name="reserved"
    )
    assert exported.matches, exported
