"""Format ``attributes``: each named attribute holds one raw KMS ciphertext.

The ciphertext is Binary, or base64 text in a String. The copy holds the plaintext: a String
when it is valid UTF-8, else Binary. An item without the attribute (or with NULL) keeps it as is.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from table_sync.aws.kms import KmsDecrypter, KmsDecryptFailed
from table_sync.errors import DecryptError
from table_sync.items import Item


@dataclass(frozen=True)
class DecryptedItem:
    item: Item
    attributes_decrypted: int


class KmsAttributeDecryptor:
    def __init__(
        self,
        kms: KmsDecrypter,
        attributes: Sequence[str],
        describe: Callable[[Item], str],
    ) -> None:
        self._kms = kms
        self._attributes = tuple(attributes)
        self._describe = describe

    def decrypt_item(self, item: Item) -> DecryptedItem:
        copy = dict(item)
        count = 0
        for name in self._attributes:
            value = item.get(name)
            if value is None or "NULL" in value:
                continue
            ciphertext = self._ciphertext(item, name, value)
            try:
                plaintext = self._kms.decrypt(ciphertext)
            except KmsDecryptFailed as exc:
                raise DecryptError(
                    item=self._describe(item),
                    attribute=name,
                    kind=exc.code,
                    detail=_hint(exc.code, self._kms.key_arn),
                ) from exc
            copy[name] = _plaintext_value(plaintext)
            count += 1
        return DecryptedItem(copy, count)

    def _ciphertext(self, item: Item, name: str, value: dict[str, object]) -> bytes:
        if "B" in value and isinstance(value["B"], bytes):
            return value["B"]
        if "S" in value and isinstance(value["S"], str):
            try:
                return base64.b64decode(value["S"], validate=True)
            except (binascii.Error, ValueError):
                raise DecryptError(
                    item=self._describe(item),
                    attribute=name,
                    kind="InvalidBase64",
                    detail="a String attribute must hold base64 of a KMS ciphertext",
                ) from None
        kind = next(iter(value), "?")
        raise DecryptError(
            item=self._describe(item),
            attribute=name,
            kind="UnsupportedType",
            detail=f"type {kind}; a ciphertext is Binary (B) or base64 in a String (S)",
        )


def _plaintext_value(plaintext: bytes) -> dict[str, str | bytes]:
    try:
        return {"S": plaintext.decode("utf-8")}
    except UnicodeDecodeError:
        return {"B": plaintext}


def _hint(code: str, key_arn: str) -> str:
    if code == "IncorrectKeyException":
        return f"the ciphertext was not made with SOURCE_KMS_KEY_ARN {key_arn}"
    if code == "InvalidCiphertextException":
        return "corrupted ciphertext, or an encryption context is needed"
    if code == "AccessDeniedException":
        return f"the source role may not call kms:Decrypt on {key_arn}"
    return ""
