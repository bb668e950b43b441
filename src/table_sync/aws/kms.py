"""KMS Decrypt, always naming the key: ``KeyId`` is the configured key ARN on every call.

Passing ``KeyId`` is what AWS recommends: KMS then refuses a ciphertext made under any other key
(``IncorrectKeyException``) instead of decrypting with whatever key the ciphertext names.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from mypy_boto3_kms import KMSClient

# Codes that say this ciphertext is bad, rather than that KMS or the role is.
ITEM_ERRORS = frozenset({"InvalidCiphertextException", "IncorrectKeyException"})


class KmsDecryptFailed(Exception):
    """KMS refused one Decrypt. ``code`` is the AWS error code, never the ciphertext."""

    def __init__(self, code: str) -> None:
        self.code = code
        super().__init__(code)

    @property
    def item_specific(self) -> bool:
        return self.code in ITEM_ERRORS


class KmsDecrypter:
    """Decrypts ciphertexts under one key and counts the requests it makes."""

    def __init__(self, client: KMSClient, key_arn: str) -> None:
        self._client = client
        self.key_arn = key_arn
        self.requests = 0

    def decrypt(self, ciphertext: bytes, context: Mapping[str, str] | None = None) -> bytes:
        kwargs: dict[str, Any] = {"CiphertextBlob": ciphertext, "KeyId": self.key_arn}
        if context:
            kwargs["EncryptionContext"] = dict(context)
        self.requests += 1
        try:
            response = self._client.decrypt(**kwargs)
        except ClientError as exc:
            raise KmsDecryptFailed(exc.response.get("Error", {}).get("Code", "Unknown")) from exc
        return response["Plaintext"]
