"""The settings and pure pieces of shaping the copy (issue 30): selection, the built-in
transforms and the rules across settings. Runs against the embedded AWS are in
tests/integration/test_protecting_the_copy.py."""

from __future__ import annotations

import io
from typing import Any

import aws_encryption_sdk
import pytest
from aws_encryption_sdk.caches.local import LocalCryptoMaterialsCache
from aws_encryption_sdk.identifiers import EncryptionKeyType, WrappingAlgorithm
from aws_encryption_sdk.internal.crypto.wrapping_keys import WrappingKey
from aws_encryption_sdk.internal.formatting.deserialize import deserialize_header
from aws_encryption_sdk.key_providers.raw import RawMasterKeyProvider
from aws_encryption_sdk.materials_managers.caching import CachingCryptoMaterialsManager

from table_sync.changes import copy_fingerprint
from table_sync.errors import ConfigurationError
from table_sync.models import Settings
from table_sync.shaping import KeyChanged, Shaper
from table_sync.shaping.message import POLICY, SUITE, seal_message
from table_sync.shaping.reencrypt import plaintext_of, value_of
from table_sync.transforms import ShapeFailed, hash_bytes, mask, remove
from tests.unit.test_settings import BASE

HMAC_KEY = "arn:aws:kms:eu-west-1:222222222222:key/1b2c3d4e-aaaa-bbbb-cccc-1234567890ab"
ITEM = {
    "pk": {"S": "customer#1"},
    "sk": {"N": "7"},
    "ssn": {"S": "123-45-6789"},
    "card": {"S": "4111111111111111"},
    "note": {"S": "x"},
}


def _problems(**env: str) -> str:
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env({**BASE, **env})
    return str(caught.value)


def test_shaping_settings_are_read_as_lists_and_pairs() -> None:
    settings = Settings.from_env(
        {
            **BASE,
            "COPY_ATTRIBUTES": "name, ssn,card",
            "MASK_ATTRIBUTES": "card:4",
            "TRANSFORM": "my_company.transforms:shape",
        }
    )
    assert settings.copy_attributes == ("name", "ssn", "card")
    assert settings.mask_attributes == {"card": 4}
    assert settings.shapes_items
    assert not Settings.from_env(BASE).shapes_items


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ({"COPY_ATTRIBUTES": "a", "DROP_ATTRIBUTES": "b"}, "DROP_ATTRIBUTES: set COPY_ATTRIBUTES"),
        (
            {"SOURCE_KEY_ATTRIBUTES": "pk", "DROP_ATTRIBUTES": "pk"},
            "DROP_ATTRIBUTES: pk is a key attribute",
        ),
        ({"MASK_ATTRIBUTES": "card:-1"}, "MASK_ATTRIBUTES.card: Input should be greater than"),
        ({"MASK_ATTRIBUTES": "card:4,card:2"}, "attribute named more than once: card"),
        (
            {"COPY_ATTRIBUTES": "name", "MASK_ATTRIBUTES": "card:4"},
            "MASK_ATTRIBUTES: card not copied",
        ),
        (
            {"DROP_ATTRIBUTES": "ssn", "REENCRYPT_ATTRIBUTES": "ssn"},
            "REENCRYPT_ATTRIBUTES: ssn not copied",
        ),
        (
            {"HASH_ATTRIBUTES": "ssn", "REENCRYPT_ATTRIBUTES": "ssn"},
            "ssn named by more than one of MASK_ATTRIBUTES, HASH_ATTRIBUTES and REENCRYPT",
        ),
        ({"HASH_ATTRIBUTES": "ssn"}, "HASH_KEY_ARN: required with HASH_ATTRIBUTES"),
        (
            {"HASH_ATTRIBUTES": "ssn", "HASH_KEY_ARN": "my-key"},
            "HASH_KEY_ARN: must be a KMS key ARN",
        ),
        ({"REENCRYPT_ATTRIBUTES": "ssn"}, "DESTINATION_ATTRIBUTE_KEY_ARN: required"),
        ({"REENCRYPT_CONTEXT": "page"}, "REENCRYPT_CONTEXT: Input should be 'attribute' or 'item'"),
        ({"TRANSFORM": "shape"}, "TRANSFORM: String should match pattern"),
        (
            {"DESTINATION": "s3://bucket/prefix", "COPY_ATTRIBUTES": "name"},
            "SOURCE_KEY_ATTRIBUTES: required to shape the items of an s3:// copy",
        ),
    ],
)
def test_a_shaping_mistake_names_its_variable(env: dict[str, str], problem: str) -> None:
    assert problem in _problems(**env)


def test_every_shaping_setting_changes_the_digest_and_defaults_change_none() -> None:
    base = Settings.from_env(BASE)
    before = copy_fingerprint(base)
    assert copy_fingerprint(base, "7") == before  # no TRANSFORM: a version means nothing
    variants = [
        {"COPY_ATTRIBUTES": "ssn"},
        {"DROP_ATTRIBUTES": "ssn"},
        {"TRANSFORM": "m:f"},
        {"MASK_ATTRIBUTES": "card:4"},
        {"MASK_ATTRIBUTES": "card:3"},
        {"HASH_ATTRIBUTES": "ssn", "HASH_KEY_ARN": HMAC_KEY},
        {"REENCRYPT_ATTRIBUTES": "ssn", "DESTINATION_ATTRIBUTE_KEY_ARN": HMAC_KEY},
        {
            "REENCRYPT_ATTRIBUTES": "ssn",
            "DESTINATION_ATTRIBUTE_KEY_ARN": HMAC_KEY,
            "REENCRYPT_CONTEXT": "item",
        },
    ]
    prints = {copy_fingerprint(Settings.from_env({**BASE, **env})) for env in variants}
    assert len(prints) == len(variants)
    assert before not in prints
    transformed = Settings.from_env({**BASE, "TRANSFORM": "m:f"})
    assert copy_fingerprint(transformed, "1") != copy_fingerprint(transformed, "2")


def test_mask_keeps_the_last_characters_and_refuses_what_has_none() -> None:
    assert mask(dict(ITEM), "card", keep=4)["card"] == {"S": "************1111"}
    assert mask(dict(ITEM), "sk", keep=0)["sk"] == {"S": "*"}
    # No longer than keep: masked whole (showing it all would mask nothing).
    assert mask(dict(ITEM), "ssn", keep=11)["ssn"] == {"S": "*" * 11}
    assert mask(dict(ITEM), "absent") == ITEM
    with pytest.raises(ShapeFailed) as caught:
        mask({"photo": {"B": b"\x00"}}, "photo")
    assert (caught.value.attribute, caught.value.kind) == ("photo", "UnsupportedType")


def test_remove_and_hash_bytes() -> None:
    assert set(remove(dict(ITEM), "ssn", "card", "absent")) == {"pk", "sk", "note"}
    assert hash_bytes({"S": "é"}, "a") == "é".encode()
    assert hash_bytes({"N": "12.5"}, "a") == b"12.5"
    assert hash_bytes({"B": b"\x01"}, "a") == b"\x01"
    with pytest.raises(ShapeFailed, match="UnsupportedType"):
        hash_bytes({"SS": ["a"]}, "a")


def test_selection_keeps_the_keys_and_drops_what_is_named() -> None:
    keys = ("pk", "sk")
    chosen = Shaper(key_attributes=keys, copy_attributes=("ssn", "absent"))
    assert set(chosen.shape(dict(ITEM)) or {}) == {"pk", "sk", "ssn"}
    dropped = Shaper(key_attributes=keys, drop_attributes=("ssn", "card"))
    assert set(dropped.shape(dict(ITEM)) or {}) == {"pk", "sk", "note"}
    assert not Shaper(key_attributes=keys).active


def test_a_transform_must_keep_the_key_and_return_an_item() -> None:
    def rekey(item: dict) -> dict:
        return {**item, "sk": {"N": "8"}}

    with pytest.raises(KeyChanged, match=r'changed or removed the key of item \{pk=S:"customer#1"'):
        Shaper(key_attributes=("pk", "sk"), transform=rekey, transform_name="m:rekey").shape(
            dict(ITEM)
        )
    with pytest.raises(ShapeFailed) as caught:
        Shaper(key_attributes=("pk",), transform=lambda item: [item]).shape(dict(ITEM))
    assert caught.value.kind == "InvalidItem"

    def quoting(item: dict) -> dict:
        raise KeyError(item["ssn"]["S"])

    with pytest.raises(ShapeFailed) as raised:
        Shaper(key_attributes=("pk",), transform=quoting, transform_name="m:q").shape(dict(ITEM))
    assert raised.value.kind == "KeyError"
    assert "123-45-6789" not in str(raised.value) + raised.value.detail
    assert raised.value.__cause__ is None
    assert raised.value.__suppress_context__


@pytest.mark.parametrize(
    "value",
    [{"S": "123"}, {"B": b"\xff\x00"}, {"N": "42"}, {"M": {"a": {"B": b"\x01"}}}, {"SS": ["a"]}],
)
def test_a_reencrypted_value_comes_back_with_its_type(value: dict) -> None:
    plaintext, kind = plaintext_of(value)
    assert value_of(plaintext, kind) == value


def test_a_transform_that_changes_the_key_in_place_is_caught() -> None:
    def in_place(item: dict) -> dict:
        item["pk"]["S"] = "elsewhere"  # the same dict the item came with
        return item

    item = {name: dict(value) for name, value in ITEM.items()}
    with pytest.raises(KeyChanged, match=r'key of item \{pk=S:"customer#1"\}'):
        Shaper(key_attributes=("pk",), transform=in_place, transform_name="m:f").shape(item)


def test_a_run_that_does_not_reencrypt_never_imports_the_encryption_sdk() -> None:
    """The SDK takes about 180 ms to import: a cold start pays it only when it is used."""
    import subprocess
    import sys

    code = "import sys, table_sync.handler, table_sync.verify; print('aws_encryption_sdk' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


class _StaticKeys(RawMasterKeyProvider):  # type: ignore[misc]
    """A raw AES key (no KMS): the message format is the same whatever wraps the data key."""

    provider_id = "table-sync-test"

    def _get_raw_key(self, key_id: bytes) -> WrappingKey:
        return WrappingKey(
            wrapping_algorithm=WrappingAlgorithm.AES_256_GCM_IV12_TAG16_NO_PADDING,
            wrapping_key=b"k" * 32,
            wrapping_key_type=EncryptionKeyType.SYMMETRIC,
        )


def _header(message: bytes) -> Any:
    header, _ = deserialize_header(io.BytesIO(message))
    return header


@pytest.mark.parametrize("size", [0, 11, 4095, 4096, 4097, 10_000])
def test_a_sealed_message_is_the_sdks_own_message(size: int) -> None:
    """shaping/message.py builds the message from the SDK's parts: the SDK's decrypt reads it,
    and its header is the one the SDK's encrypt writes for the same value and context."""
    keys = _StaticKeys()
    keys.add_master_key(b"test")
    cmm = CachingCryptoMaterialsManager(
        master_key_provider=keys,
        cache=LocalCryptoMaterialsCache(10),
        max_age=60.0,
        max_messages_encrypted=100,
    )
    sdk = aws_encryption_sdk.EncryptionSDKClient(commitment_policy=POLICY)
    plaintext = bytes(range(256)) * (size // 256) + bytes(size % 256)
    context = {"table-sync:attribute": "ssn", "table-sync:type": "B"}
    sealed = seal_message(cmm, plaintext, context)
    decrypted, _ = sdk.decrypt(source=sealed, materials_manager=cmm)
    assert decrypted == plaintext
    by_sdk, _ = sdk.encrypt(
        source=plaintext, materials_manager=cmm, encryption_context=context, algorithm=SUITE
    )
    ours, theirs = _header(sealed), _header(by_sdk)
    for field_name in (
        "version",
        "algorithm",
        "content_type",
        "frame_length",
        "encrypted_data_keys",
    ):
        assert getattr(ours, field_name) == getattr(theirs, field_name)
    assert dict(ours.encryption_context) == dict(theirs.encryption_context) == context
    assert len(sealed) == len(by_sdk)  # same frames, same tags; only the random parts differ
    assert sealed != by_sdk


def test_the_remembered_context_serialization_is_the_sdks_own() -> None:
    """message.py routes the SDK's serialize_encryption_context through a memo: for every
    context (repeated, reordered, many entries, empty) it returns the SDK's bytes, and a context
    the SDK refuses is refused each time, not remembered."""
    from aws_encryption_sdk.caches import serialize_encryption_context as in_cache_key
    from aws_encryption_sdk.exceptions import SerializationError
    from aws_encryption_sdk.internal.formatting import encryption_context as context_format

    memoized = context_format.serialize_encryption_context
    sdk = memoized.__wrapped__  # the SDK's function, kept by functools.wraps
    assert in_cache_key is memoized
    contexts: list[Any] = [
        None,
        {},
        {"table-sync:attribute": "ssn", "table-sync:type": "S"},
        {"table-sync:type": "S", "table-sync:attribute": "ssn"},
        {f"k{n}": "v" * n for n in range(50)},
        {b"bytes-key": b"bytes-value", "\u00e9": "\u2603"},
    ]
    for context in contexts * 2:
        assert memoized(context) == sdk(context)
    too_long = {"k": "v" * 70_000}
    for _ in range(2):
        with pytest.raises(SerializationError):
            memoized(too_long)
