"""Copy only what AccountB needs (issue 30): attribute selection, transforms, and re-encryption
under AccountB's own key. Every run goes through the Lambda handler against the embedded AWS;
the copies are read back as AccountB reads them."""

from __future__ import annotations

import hashlib
import hmac
import importlib
import json
import math
import os
import runpy
from pathlib import Path
from typing import Any

import pytest

from table_sync.compare import Comparison
from table_sync.errors import DestinationError
from table_sync.handler import lambda_handler
from table_sync.items import key_identity
from table_sync.models import Settings
from table_sync.transforms import HASH_KEY_MESSAGE
from table_sync.verify import verify_copy
from table_sync_dev.local.context import LocalLambdaContext
from table_sync_dev.local.seed import EmbeddedAws, write_bulk_items
from table_sync_dev.local.server import MotoServer
from table_sync_dev.local.verify import read_table
from tests.integration.conftest import Telemetry, set_source_attribute
from tests.integration.test_incremental_exports import load

KEYS = {"pk"}
EVERYTHING = {"pk", "name", "visits", "tags", "profile", "avatar", "ssn", "card", "api_secret"}
TRANSFORMS = "tests.integration.sample_transforms"
# The documentation's example TRANSFORM (docs/examples/my_transforms.py), loaded as a layer's.
EXAMPLE_TRANSFORM = "my_transforms:shape"
# The documentation's example for AccountB's applications, run as it stands.
EXAMPLE = Path(__file__).parents[2] / "docs" / "examples" / "decrypt_copy.py"


def _run(run_id: str = "") -> dict[str, Any]:
    event = {"trigger": "backfill", **({"run_id": run_id} if run_id else {})}
    summary: dict[str, Any] = lambda_handler(event, LocalLambdaContext())
    assert summary["status"] == "succeeded", summary
    return summary


def _copy(aws: EmbeddedAws, destination: str) -> dict[str, dict[str, Any]]:
    """The copy by pk, as AccountB reads it: the table, or the export chain latest.json names."""
    if destination == "dynamodb":
        return read_table(aws.account_b().client("dynamodb"), aws.destination_table)
    table, _ = load(aws.account_b().client("s3"), aws.bucket, "exports/copy")
    return table


def _compared(aws: EmbeddedAws) -> Comparison:
    """`table-sync verify` with this test's settings, as the function role."""
    settings = Settings.from_env(aws.lambda_env() | _env_now())
    session = aws.function_credentials().session()
    comparison, _ = verify_copy(settings, base_session=session, role_session_name="verify")
    return comparison


def _verified(aws: EmbeddedAws) -> None:
    comparison = _compared(aws)
    assert comparison.matches, comparison


def _env_now() -> dict[str, str]:
    return {name: value for name, value in os.environ.items() if name.isupper()}


@pytest.fixture(autouse=True)
def _examples_on_the_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """The docs' examples importable, as a layer's python/ folder is in the function."""
    monkeypatch.syspath_prepend(str(EXAMPLE.parent))


@pytest.fixture(params=["dynamodb", "s3"])
def destination(
    request: pytest.FixtureRequest, aws: EmbeddedAws, function_env: Any, monkeypatch: Any
) -> str:
    if request.param == "s3":
        monkeypatch.setenv("DESTINATION", f"s3://{aws.bucket}/exports/copy")
        monkeypatch.setenv("SOURCE_KEY_ATTRIBUTES", "pk")
    return str(request.param)


@pytest.mark.parametrize(
    ("variable", "value", "kept"),
    [
        ("COPY_ATTRIBUTES", "name,ssn", {"pk", "name", "ssn"}),
        (
            "DROP_ATTRIBUTES",
            "card, api_secret,avatar",
            EVERYTHING - {"card", "api_secret", "avatar"},
        ),
    ],
)
def test_a_copy_holds_exactly_the_chosen_attributes(
    aws: EmbeddedAws,
    destination: str,
    monkeypatch: Any,
    moto_server: MotoServer,
    variable: str,
    value: str,
    kept: set[str],
) -> None:
    monkeypatch.setenv(variable, value)
    with moto_server.recording() as calls:
        summary = _run()
    # An encrypted attribute the copy leaves out costs no Decrypt.
    decrypted = {"ssn", "card", "api_secret"} & kept
    ciphertexts = sum(1 for item in aws.expected.values() for name in decrypted if name in item)
    assert sum(1 for call in calls if call.name == "kms:Decrypt") == ciphertexts
    copy = _copy(aws, destination)
    assert summary["items_written"] == len(copy) == len(aws.expected) == 40
    for pk, item in copy.items():
        assert set(item) - {"_table_sync_digest"} == kept & set(aws.expected[pk])
        for name in kept & set(item):
            assert item[name] == aws.expected[pk][name]
    _verified(aws)


@pytest.mark.items(40)
def test_a_transform_masks_and_filters_and_the_mirror_removes_what_it_leaves_out(
    aws: EmbeddedAws, function_env: Any, monkeypatch: Any
) -> None:
    monkeypatch.setenv("STATE_TABLE", aws.state_table)
    monkeypatch.setenv("TRANSFORM", EXAMPLE_TRANSFORM)
    kept = {pk for pk, item in aws.expected.items() if int(item["visits"]["N"]) >= 100}
    assert 0 < len(kept) < 40

    first = _run()
    copy = _copy(aws, "dynamodb")
    assert set(copy) == kept
    assert first["items_filtered"] == 40 - len(kept)
    for pk in kept:
        card = aws.expected[pk].get("card", {}).get("S")
        if card:
            assert copy[pk]["card"] == {"S": "*" * 12 + card[-4:]}
        assert copy[pk]["ssn"] == aws.expected[pk]["ssn"]
    _verified(aws)

    leaving = sorted(kept)[0]  # falls under 100 visits: its copy must go
    set_source_attribute(aws, leaving, "visits", {"N": "3"})
    second = _run()
    assert second["items_filtered"] == 40 - len(kept) + 1
    assert second["items_written"] == 0
    assert set(_copy(aws, "dynamodb")) == kept - {leaving}
    _verified(aws)


@pytest.mark.items(40)
def test_an_incremental_export_records_a_filtered_item_as_deleted(
    aws: EmbeddedAws, function_env: Any, monkeypatch: Any
) -> None:
    from table_sync_dev.local.seed import KEY_SCHEMA_PK, create_table

    index = aws.named("change-index")
    create_table(aws.account_b().client("dynamodb"), index, KEY_SCHEMA_PK)
    monkeypatch.setenv("DESTINATION", f"s3://{aws.bucket}/exports/copy")
    monkeypatch.setenv("CHANGE_INDEX_TABLE", index)
    monkeypatch.setenv("STATE_TABLE", aws.state_table)
    monkeypatch.setenv("TRANSFORM", EXAMPLE_TRANSFORM)
    kept = {pk for pk, item in aws.expected.items() if int(item["visits"]["N"]) >= 100}
    _run()
    leaving = sorted(kept)[0]
    set_source_attribute(aws, leaving, "visits", {"N": "3"})
    second = _run()
    table, chain = load(aws.account_b().client("s3"), aws.bucket, "exports/copy")
    assert [summary.get("exportType", "FULL_EXPORT") for summary in chain] == [
        "FULL_EXPORT",
        "INCREMENTAL_EXPORT",
    ]
    assert chain[-1]["itemCount"] == 1  # the delete line, and nothing else
    assert set(table) == kept - {leaving}
    assert second["items_filtered"] == 40 - len(kept) + 1
    third = _run()  # nothing changed: nothing to write, nothing deleted again
    assert third["items_written"] == 0
    _, chain = load(aws.account_b().client("s3"), aws.bucket, "exports/copy")
    assert chain[-1]["itemCount"] == 0


@pytest.mark.items(20)
def test_changing_the_transform_version_copies_everything_again(
    aws: EmbeddedAws, function_env: Any, monkeypatch: Any
) -> None:
    monkeypatch.setenv("STATE_TABLE", aws.state_table)
    monkeypatch.setenv("TRANSFORM", EXAMPLE_TRANSFORM)
    first = _run()
    written = first["items_written"]
    assert written > 0
    assert _run()["items_written"] == 0  # unchanged
    module = importlib.import_module("my_transforms")
    monkeypatch.setattr(module, "TRANSFORM_VERSION", "2")
    again = _run()
    assert again["items_written"] == written
    assert again["items_unchanged"] == 0
    monkeypatch.setenv("DROP_ATTRIBUTES", "avatar")  # any other shaping setting, too
    assert _run()["items_written"] == written


@pytest.mark.items(20)
def test_a_transform_that_raises_quarantines_the_item_with_its_type_only(
    aws: EmbeddedAws, function_env: Any, monkeypatch: Any, telemetry: Telemetry
) -> None:
    monkeypatch.setenv("TRANSFORM", f"{TRANSFORMS}:raises_on_gold")
    gold = {pk for pk, item in aws.expected.items() if "gold" in item["tags"]["SS"]}
    assert gold
    summary = _run()
    assert summary["items_quarantined"] == len(gold)
    assert set(_copy(aws, "dynamodb")) == set(aws.expected) - gold
    records = aws.account_b().client("dynamodb").scan(TableName=aws.quarantine_table)["Items"]
    assert {r["error"]["S"] for r in records} == {"ValueError"}
    everything = telemetry.text() + str(records)
    for pk in gold:  # the exception's message quoted the SSN: it is nowhere
        assert aws.expected[pk]["ssn"]["S"] not in everything

    monkeypatch.setenv("ON_DECRYPT_ERROR", "fail")
    with pytest.raises(Exception, match=r"cannot copy item \{pk=S:\"customer#.*ValueError"):
        lambda_handler({"trigger": "backfill"}, LocalLambdaContext())


@pytest.mark.items(10)
def test_a_transform_that_changes_the_key_fails_the_run_before_writing(
    aws: EmbeddedAws, function_env: Any, monkeypatch: Any
) -> None:
    monkeypatch.setenv("TRANSFORM", f"{TRANSFORMS}:renames_the_key")
    with pytest.raises(
        Exception,
        match=r"TRANSFORM: .*renames_the_key changed or removed the key of item \{pk=S:\"customer#00000\"\}",
    ):
        lambda_handler({"trigger": "backfill"}, LocalLambdaContext())
    assert _copy(aws, "dynamodb") == {}


@pytest.mark.parametrize(
    ("variable", "value", "problem"),
    [
        ("TRANSFORM", "no_such_module:shape", "TRANSFORM: cannot import no_such_module"),
        ("TRANSFORM", "json:dumps", "TRANSFORM: json declares no TRANSFORM_VERSION"),
        ("TRANSFORM", "not a spec", "TRANSFORM: String should match pattern"),
        ("DROP_ATTRIBUTES", "pk", "DROP_ATTRIBUTES: pk is a key attribute"),
        ("MASK_ATTRIBUTES", "card", "MASK_ATTRIBUTES: must be attribute:N pairs"),
        ("HASH_ATTRIBUTES", "ssn", "HASH_KEY_ARN: required with HASH_ATTRIBUTES"),
        ("REENCRYPT_ATTRIBUTES", "ssn", "DESTINATION_ATTRIBUTE_KEY_ARN: required"),
    ],
)
@pytest.mark.items(5)
def test_a_shaping_mistake_names_its_setting_and_writes_nothing(
    aws: EmbeddedAws, function_env: Any, monkeypatch: Any, variable: str, value: str, problem: str
) -> None:
    monkeypatch.setenv(variable, value)
    if variable == "DROP_ATTRIBUTES":  # the key is known from the copy table, not a setting
        monkeypatch.delenv("SOURCE_KEY_ATTRIBUTES", raising=False)
    with pytest.raises(Exception, match=problem):
        lambda_handler({"trigger": "backfill"}, LocalLambdaContext())
    assert _copy(aws, "dynamodb") == {}


def _hmac_key(aws: EmbeddedAws) -> str:
    kms = aws.account_b().client("kms")
    return str(
        kms.create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"]["Arn"]
    )


@pytest.mark.items(12)
def test_built_in_mask_and_keyed_hash_let_accountb_join_without_the_values(
    aws: EmbeddedAws, destination: str, monkeypatch: Any
) -> None:
    key_arn = _hmac_key(aws)
    monkeypatch.setenv("MASK_ATTRIBUTES", "card:4")
    monkeypatch.setenv("HASH_ATTRIBUTES", "ssn")
    monkeypatch.setenv("HASH_KEY_ARN", key_arn)
    summary = _run()
    assert summary["destination_kms_requests"] == 1  # one GenerateMac: the run's hash key
    # Another of AccountB's systems derives the same key (README's recipe) and hashes its SSNs.
    mac = (
        aws.account_b()
        .client("kms")
        .generate_mac(KeyId=key_arn, MacAlgorithm="HMAC_SHA_256", Message=HASH_KEY_MESSAGE)["Mac"]
    )
    copy = _copy(aws, destination)
    for pk, expected in aws.expected.items():
        ssn = expected["ssn"]["S"].encode()
        assert copy[pk]["ssn"] == {"S": hmac.new(mac, ssn, hashlib.sha256).hexdigest()}
        if "card" in expected:
            assert copy[pk]["card"]["S"].endswith(expected["card"]["S"][-4:])
            assert set(copy[pk]["card"]["S"][:-4]) == {"*"}
    _verified(aws)


def _attribute_key(aws: EmbeddedAws) -> str:
    return str(aws.account_b().client("kms").create_key()["KeyMetadata"]["Arn"])


def _reencrypting(aws: EmbeddedAws, monkeypatch: Any, attributes: str, **more: str) -> str:
    """Re-encryption of ``attributes`` under a new key of AccountB's (returned) for the run."""
    key_arn = _attribute_key(aws)
    settings = {"REENCRYPT_ATTRIBUTES": attributes, "DESTINATION_ATTRIBUTE_KEY_ARN": key_arn}
    for name, value in {**settings, **more}.items():
        monkeypatch.setenv(name, value)
    return key_arn


def _decrypt(aws: EmbeddedAws, ciphertext: bytes, key_arn: str, attribute: str, **kw: Any) -> Any:
    """README's example for AccountB's applications, run as it stands, with AccountB's
    credentials."""
    decrypt_attribute = runpy.run_path(str(EXAMPLE))["decrypt_attribute"]
    with pytest.MonkeyPatch.context() as patch:
        for name, value in aws.account_b().credentials.as_env().items():
            patch.setenv(name, value)
        return decrypt_attribute(
            ciphertext, key_arn=key_arn, table_arn=aws.source_table_arn, attribute=attribute, **kw
        )


@pytest.mark.items(8)
def test_reencrypted_attributes_decrypt_under_accountb_key_and_not_elsewhere(
    aws: EmbeddedAws, destination: str, monkeypatch: Any
) -> None:
    key_arn = _reencrypting(aws, monkeypatch, "ssn,card,api_secret")
    _run()
    copy = _copy(aws, destination)
    first = sorted(copy)[0]
    for pk, item in copy.items():
        for name in ("ssn", "card", "api_secret"):
            if name in aws.expected[pk]:
                assert set(item[name]) == {"B"}
                plain = _decrypt(aws, item[name]["B"], key_arn, name)
                assert plain == next(iter(aws.expected[pk][name].values()))
    _verified(aws)
    with pytest.raises(ValueError, match="another table, attribute or item"):
        _decrypt(aws, copy[first]["ssn"]["B"], key_arn, "card")  # moved to another attribute


@pytest.mark.items(4)
def test_verify_without_kms_decrypt_on_the_attribute_key_says_so_in_one_line(
    aws: EmbeddedAws, function_env: Any, monkeypatch: Any, moto_server: MotoServer
) -> None:
    """The function's role may encrypt under the key, not decrypt (IAM enforced: moto's KMS
    keeps no key state to refuse with otherwise). verify names the key and the permission,
    rather than report every item different."""
    _reencrypting(aws, monkeypatch, "ssn")
    _run()
    with (
        moto_server.iam_enforced(),
        pytest.raises(DestinationError, match=r"DESTINATION_ATTRIBUTE_KEY_ARN .* kms:Decrypt"),
    ):
        _compared(aws)


@pytest.mark.items(4)
def test_with_the_item_in_the_context_a_ciphertext_moved_to_another_item_fails(
    aws: EmbeddedAws, function_env: Any, monkeypatch: Any
) -> None:
    key_arn = _reencrypting(aws, monkeypatch, "ssn", REENCRYPT_CONTEXT="item")
    summary = _run()
    # One data key per value: the price of binding the item (the probe's included).
    assert summary["destination_kms_requests"] == 4 + 1
    copy = _copy(aws, "dynamodb")
    first, second = sorted(copy)[:2]
    ssn = copy[first]["ssn"]["B"]
    own = key_identity(copy[first], ["pk"])
    assert _decrypt(aws, ssn, key_arn, "ssn", item_key=own) == aws.expected[first]["ssn"]["S"]
    other = key_identity(copy[second], ["pk"])
    with pytest.raises(ValueError, match="another table, attribute or item"):
        _decrypt(aws, ssn, key_arn, "ssn", item_key=other)
    # verify notices the same swap in the copy
    aws.account_b().client("dynamodb").update_item(
        TableName=aws.destination_table,
        Key={"pk": {"S": second}},
        UpdateExpression="SET ssn = :v",
        ExpressionAttributeValues={":v": {"B": ssn}},
    )
    assert _compared(aws).different == [f'{{pk=S:"{second}"}}']


@pytest.mark.slow
@pytest.mark.items(0)
def test_accountb_kms_requests_for_10000_items_are_what_the_cache_settings_imply(
    aws: EmbeddedAws, function_env: Any, monkeypatch: Any, moto_server: MotoServer
) -> None:
    """A dry run into S3 re-encrypts what a real run would (and writes nothing): every
    GenerateDataKey the run sends is counted at the embedded AWS."""
    items, max_messages = 10_000, 2_500
    write_bulk_items(aws, items)
    monkeypatch.setenv("DESTINATION", f"s3://{aws.bucket}/exports/copy")
    monkeypatch.setenv("SOURCE_KEY_ATTRIBUTES", "pk")
    monkeypatch.setenv("DRY_RUN", "true")
    _reencrypting(aws, monkeypatch, "ssn", REENCRYPT_CACHE_MAX_MESSAGES=str(max_messages))
    with moto_server.recording() as calls:
        summary = _run()
    sent = [call.name for call in calls if call.name.startswith("kms:")]
    data_keys = sent.count("kms:GenerateDataKey")
    # One encryption context (the source table, ssn, a String): a data key per max_messages
    # values, the run's proof of the key (one value more, before the scan) included.
    assert data_keys == math.ceil((items + 1) / max_messages) == 5
    assert summary["destination_kms_requests"] == data_keys
    assert summary["estimated_cost_usd"]["kms"] == pytest.approx(
        (summary["kms_requests"] + data_keys) * 0.03 / 10_000
    )


@pytest.mark.items(10)
def test_the_cli_shapes_with_options_and_verify_compares_through_them(
    aws: EmbeddedAws, cli: Any
) -> None:
    options = ("--drop-attributes", "avatar,api_secret", "--mask-attributes", "card:4")
    ran = cli(aws.lambda_env(), "run", "--json", *options)
    assert ran.exit_code == 0, ran.stderr
    copy = _copy(aws, "dynamodb")
    assert not {"avatar", "api_secret"} & {name for item in copy.values() for name in item}
    assert cli(aws.lambda_env(), "verify", "--json", *options).exit_code == 0
    unshaped = cli(aws.lambda_env(), "verify", "--json")  # the plain source is not the copy
    assert unshaped.exit_code == 1
    assert len(json.loads(unshaped.stdout)["different"]) == 10
    wrong = cli(aws.lambda_env(), "run", "--mask-attributes", "card")
    assert wrong.exit_code == 1
    assert "--mask-attributes (MASK_ATTRIBUTES): must be attribute:N pairs" in wrong.stderr
