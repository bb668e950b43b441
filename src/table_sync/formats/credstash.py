"""ITEM_FORMAT=credstash: items of a credstash table (fugue/credstash's legacy format).

An item holds ``name`` and ``version`` (its key), ``key`` (base64 of the KMS-wrapped 64-byte
data key), ``contents`` (base64 of the AES-256-CTR ciphertext, initial counter 1), ``hmac`` (hex
HMAC of the ciphertext under the data key's second half; Binary from boto3 writers, String from
older ones) and ``digest`` (the HMAC's hash, default SHA256). The HMAC is checked, in constant
time, before anything is decrypted. The copy keeps every other attribute, holds the plaintext in
``contents``, and drops ``key``, ``hmac`` and ``digest``.

Implemented on ``cryptography`` from credstash's published format rather than by importing
credstash (a CLI with a pinned dependency set and process-wide session caches).
"""

from __future__ import annotations

import base64
import binascii

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from table_sync.aws.kms import KmsDecrypter, KmsDecryptFailed
from table_sync.formats.base import (
    AttributeDecryptFailed,
    DecodedItem,
    Wanted,
    plaintext_value,
)
from table_sync.formats.context import ContextTemplate
from table_sync.items import Item

LEGACY_NONCE = (1).to_bytes(16, "big")
DIGESTS: dict[str, type[hashes.HashAlgorithm]] = {
    "SHA": hashes.SHA1,
    "SHA224": hashes.SHA224,
    "SHA256": hashes.SHA256,
    "SHA384": hashes.SHA384,
    "SHA512": hashes.SHA512,
    "MD5": hashes.MD5,
}
DATA_KEY_BYTES = 64
WRAPPING_ATTRIBUTES = ("key", "hmac", "digest")


class CredstashDecoder:
    def __init__(
        self, kms: KmsDecrypter, context: ContextTemplate | None = None, contents_type: str = "auto"
    ) -> None:
        self._kms = kms
        self._context = context or ContextTemplate({})
        self._contents_type = contents_type

    def ciphertexts(self, item: Item) -> list[Wanted]:
        try:
            wrapped_key = self._checked(item)[0]
            return [(wrapped_key, self._context.render(item, "key"))]
        except AttributeDecryptFailed:
            return []

    def _checked(self, item: Item) -> tuple[bytes, bytes, bytes, type[hashes.HashAlgorithm]]:
        """The wrapped data key, the ciphertext, its HMAC and the HMAC's digest, checked."""
        for name in ("name", "version", "key", "contents", "hmac"):
            if name not in item:
                raise AttributeDecryptFailed(name, "InvalidItem", "not a credstash item")
        wrapped_key = _base64_string(item, "key")
        ciphertext = _base64_string(item, "contents")
        expected = _hmac_bytes(item)
        digest_name = item.get("digest", {}).get("S", "SHA256")
        digest = DIGESTS.get(digest_name)
        if digest is None:
            raise AttributeDecryptFailed("digest", "InvalidItem", "unknown digest")
        return wrapped_key, ciphertext, expected, digest

    def decode(self, item: Item) -> DecodedItem:
        wrapped_key, ciphertext, expected, digest = self._checked(item)
        try:
            data_key = self._kms.decrypt(wrapped_key, self._context.render(item, "key"))
        except KmsDecryptFailed as exc:
            raise AttributeDecryptFailed.from_kms("key", exc, self._kms.key_arn) from exc
        if len(data_key) != DATA_KEY_BYTES:
            raise AttributeDecryptFailed("key", "InvalidItem", "the data key is not 64 bytes")
        aes_key, hmac_key = data_key[:32], data_key[32:]

        check = hmac.HMAC(hmac_key, digest())
        check.update(ciphertext)
        try:
            check.verify(expected)  # constant-time comparison
        except InvalidSignature:
            raise AttributeDecryptFailed(
                "contents", "HmacMismatch", "the ciphertext or its HMAC was altered"
            ) from None
        decryptor = Cipher(algorithms.AES(aes_key), modes.CTR(LEGACY_NONCE)).decryptor()
        plaintext = decryptor.update(ciphertext) + decryptor.finalize()

        copy = {k: v for k, v in item.items() if k not in WRAPPING_ATTRIBUTES}
        copy["contents"] = plaintext_value(plaintext, "contents", self._contents_type)
        return DecodedItem(copy, 1)


def _base64_string(item: Item, name: str) -> bytes:
    value = item[name]
    raw = value.get("S") if "S" in value else value.get("B")
    try:
        return base64.b64decode(raw, validate=True) if raw is not None else b""
    except (binascii.Error, ValueError, TypeError):
        raise AttributeDecryptFailed(
            name, "InvalidBase64", "credstash stores it as base64"
        ) from None


def _hmac_bytes(item: Item) -> bytes:
    value = item["hmac"]
    raw = value.get("B", value.get("S"))
    try:
        text = raw.decode("ascii") if isinstance(raw, bytes) else str(raw)
        return bytes.fromhex(text)
    except (ValueError, UnicodeDecodeError):
        raise AttributeDecryptFailed("hmac", "InvalidItem", "the HMAC is not hex") from None
