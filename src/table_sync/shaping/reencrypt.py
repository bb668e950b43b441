"""REENCRYPT_ATTRIBUTES: each listed attribute's plaintext written as an AWS Encryption SDK
message under AccountB's key (DESTINATION_ATTRIBUTE_KEY_ARN), a Binary any Encryption SDK (in any
language) decrypts.

* **Suite**: AES-256-GCM with HKDF-SHA512 and key commitment, no signature
  (``AES_256_GCM_HKDF_SHA512_COMMIT_KEY``). Commitment: a ciphertext decrypts to one plaintext
  only. No signature: an ECDSA P-384 signature measured about 4x the CPU per value (390 us vs
  100 us here), and guards only against a reader who can decrypt *and* write the copy, who can
  replace its values anyway.
* **The message** is built by shaping/message.py from the SDK's own parts, without its
  streaming encryptor (51 us a value instead of 100); the SDK's ``decrypt`` reads it.
* **Caching**: the Encryption SDK's caching materials manager; one data key (one
  ``kms:GenerateDataKey``) encrypts up to REENCRYPT_CACHE_MAX_MESSAGES values, for at most
  REENCRYPT_CACHE_MAX_AGE_SECONDS, per encryption context.
* **Encryption context** (authenticated, stored in the message, and passed to KMS): the source
  table's ARN, the attribute's name and the plaintext's type; with REENCRYPT_CONTEXT=item, also
  the item's key. KMS binds a data key to its context, so a context that names the item needs a
  data key per value: ``attribute`` (the default) is what lets one data key serve many items.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aws_encryption_sdk
from aws_encryption_sdk.caches.local import LocalCryptoMaterialsCache
from aws_encryption_sdk.exceptions import AWSEncryptionSDKClientError, DecryptKeyError
from aws_encryption_sdk.key_providers.kms import KMSMasterKey
from aws_encryption_sdk.materials_managers.caching import CachingCryptoMaterialsManager

from table_sync.errors import DestinationError
from table_sync.items import Item, from_json_value, key_identity, to_json_value
from table_sync.shaping.message import POLICY, seal_message
from table_sync.transforms import ShapeFailed

TABLE, ATTRIBUTE, TYPE, KEY = (
    "table-sync:table",
    "table-sync:attribute",
    "table-sync:type",
    "table-sync:key",
)
# Distinct encryption contexts a run keeps data keys for (attributes x types, in the default).
CACHE_ENTRIES = 1_000


def plaintext_of(value: Mapping[str, Any]) -> tuple[bytes, str]:
    """An AttributeValue as the bytes that are encrypted and the type that restores it: a
    String's UTF-8 (``S``), a Binary's bytes (``B``), anything else as DynamoDB JSON
    (``json``: ``{"N": "5"}``)."""
    ((kind, raw),) = value.items()
    if kind == "S":
        return raw.encode("utf-8"), "S"
    if kind == "B":
        return bytes(raw), "B"
    return json.dumps(to_json_value(value), separators=(",", ":")).encode(), "json"


def value_of(plaintext: bytes, kind: str) -> dict[str, Any]:
    if kind == "S":
        return {"S": plaintext.decode("utf-8")}
    if kind == "B":
        return {"B": plaintext}
    restored: dict[str, Any] = from_json_value(json.loads(plaintext))
    return restored


@dataclass
class AttributeSealer:
    """Encrypts (and, for ``verify``, decrypts) the REENCRYPT_ATTRIBUTES of items under
    AccountB's key; ``kms`` is a KMS client in the key's account and region."""

    kms: Any
    key_arn: str
    table_arn: str
    attributes: tuple[str, ...]
    key_attributes: tuple[str, ...]
    bind_item: bool = False
    max_age: float = 300.0
    max_messages: int = 100_000
    _client: Any = field(init=False, repr=False)
    _cmm: Any = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._client = aws_encryption_sdk.EncryptionSDKClient(commitment_policy=POLICY)
        self._cmm = CachingCryptoMaterialsManager(
            master_key_provider=KMSMasterKey(key_id=self.key_arn, client=self.kms),
            cache=LocalCryptoMaterialsCache(CACHE_ENTRIES),
            max_age=float(self.max_age),
            max_messages_encrypted=self.max_messages,
        )

    def context(self, item: Item, attribute: str, kind: str) -> dict[str, str]:
        context = {TABLE: self.table_arn, ATTRIBUTE: attribute, TYPE: kind}
        if self.bind_item:
            context[KEY] = key_identity(item, self.key_attributes)
        return context

    def seal(self, item: Item) -> Item:
        """``item`` with each of its REENCRYPT_ATTRIBUTES replaced by its ciphertext."""
        for attribute in self.attributes:
            value = item.get(attribute)
            if value is None:
                continue
            plaintext, kind = plaintext_of(value)
            try:
                ciphertext = seal_message(self._cmm, plaintext, self.context(item, attribute, kind))
            except AWSEncryptionSDKClientError as exc:  # KMS refused a data key: every item's
                raise DestinationError(
                    f"REENCRYPT_ATTRIBUTES: encrypting under DESTINATION_ATTRIBUTE_KEY_ARN "
                    f"{self.key_arn} failed ({type(exc).__name__}); the function's role needs "
                    "kms:GenerateDataKey on it"
                ) from None
            item[attribute] = {"B": ciphertext}
        return item

    def unseal(self, item: Item) -> Item:
        """``item`` with each re-encrypted attribute decrypted, after checking that its
        encryption context names this table, this attribute (and this item's key, when bound):
        a ciphertext moved from elsewhere fails (``ContextMismatch``)."""
        for attribute in self.attributes:
            value = item.get(attribute)
            if value is None:
                continue
            if "B" not in value:
                raise ShapeFailed(attribute, "NotReencrypted", "a re-encrypted attribute is Binary")
            try:
                plaintext, header = self._client.decrypt(
                    source=bytes(value["B"]), materials_manager=self._cmm
                )
            except DecryptKeyError:  # KMS refused the data key: the key or the caller's rights
                raise DestinationError(
                    f"REENCRYPT_ATTRIBUTES: KMS would not decrypt {attribute}'s data key under "
                    f"DESTINATION_ATTRIBUTE_KEY_ARN {self.key_arn}; reading the copy needs "
                    "kms:Decrypt on it, and the key enabled"
                ) from None
            except AWSEncryptionSDKClientError as exc:  # this value's own: damaged, not a message
                raise ShapeFailed(attribute, type(exc).__name__) from None
            context = dict(header.encryption_context)
            kind = context.get(TYPE, "")
            expected = self.context(item, attribute, kind)
            if any(context.get(name) != want for name, want in expected.items()):
                raise ShapeFailed(
                    attribute,
                    "ContextMismatch",
                    "its encryption context names another table, attribute or item",
                )
            item[attribute] = value_of(plaintext, kind)
        return item
