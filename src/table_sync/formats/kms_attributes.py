"""ITEM_FORMAT=attributes: each named attribute holds one raw KMS ciphertext.

The ciphertext is Binary, or base64 text in a String. The copy holds the plaintext as the type
PLAINTEXT_TYPES declares, or (``auto``) a String when it is valid UTF-8, else Binary. An item
without the attribute (or with NULL) keeps it as is.
Every attribute is decrypted (or fails) before the item is returned: never half an item.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from typing import Any

from table_sync.aws.kms import KmsDecrypter, KmsDecryptFailed
from table_sync.formats.base import (
    AttributeDecryptFailed,
    DecodedItem,
    Wanted,
    plaintext_value,
)
from table_sync.formats.context import ContextTemplate
from table_sync.items import Item


class KmsAttributeDecoder:
    def __init__(
        self,
        kms: KmsDecrypter,
        attributes: Sequence[str],
        context: ContextTemplate | None = None,
        types: Mapping[str, str] | None = None,
    ) -> None:
        self._kms = kms
        self._attributes = tuple(attributes)
        self._context = context or ContextTemplate({})
        self._types = dict(types or {})

    def ciphertexts(self, item: Item) -> list[Wanted]:
        wanted: list[Wanted] = []
        for name in self._attributes:
            value = item.get(name)
            if value is None or "NULL" in value:
                continue
            try:
                wanted.append((ciphertext_bytes(name, value), self._context.render(item, name)))
            except AttributeDecryptFailed:
                break  # decode stops here too
        return wanted

    def decode(self, item: Item) -> DecodedItem:
        copy = dict(item)
        count = 0
        for name in self._attributes:
            value = item.get(name)
            if value is None or "NULL" in value:
                continue
            ciphertext = ciphertext_bytes(name, value)
            context = self._context.render(item, name)
            try:
                plaintext = self._kms.decrypt(ciphertext, context)
            except KmsDecryptFailed as exc:
                raise AttributeDecryptFailed.from_kms(name, exc, self._kms.key_arn) from exc
            copy[name] = plaintext_value(plaintext, name, self._types.get(name, "auto"))
            count += 1
        return DecodedItem(copy, count)


def ciphertext_bytes(name: str, value: dict[str, Any]) -> bytes:
    """Binary as is; a String as base64."""
    if isinstance(value.get("B"), bytes):
        return bytes(value["B"])
    if isinstance(value.get("S"), str):
        try:
            return base64.b64decode(value["S"], validate=True)
        except (binascii.Error, ValueError):
            raise AttributeDecryptFailed(
                name, "InvalidBase64", "a String attribute must hold base64 of a ciphertext"
            ) from None
    kind = next(iter(value), "?")
    raise AttributeDecryptFailed(
        name,
        "UnsupportedType",
        f"type {kind}; a ciphertext is Binary (B) or base64 in a String (S)",
    )
