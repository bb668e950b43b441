"""What every ciphertext format shares: the decoder interface and the per-attribute failure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from table_sync.aws.kms import ITEM_ERRORS, KmsDecryptFailed
from table_sync.items import Item

# Failures that belong to one item (its ciphertext, HMAC, signature or shape), so the item can
# be quarantined while the run goes on. Anything else (a disabled key, throttling that outlasted
# every retry, a network error) fails the run. AccessDenied is judged by the pipeline: it is
# per item only when the same key has decrypted something else in this run.
ITEM_FAILURES = ITEM_ERRORS | {
    "InvalidBase64",
    "UnsupportedType",
    "MissingContextAttribute",
    "InvalidItem",
    "HmacMismatch",
    "SignatureInvalid",
    "UndecodablePlaintext",
    "ReservedAttributeName",
}


class AttributeDecryptFailed(Exception):
    """One attribute of the item being decoded could not be decrypted; never carries a value."""

    def __init__(self, attribute: str, kind: str, detail: str = "") -> None:
        self.attribute = attribute
        self.kind = kind
        self.detail = detail
        super().__init__(f"{attribute}: {kind}")

    @classmethod
    def from_kms(
        cls, attribute: str, exc: KmsDecryptFailed, key_arn: str
    ) -> AttributeDecryptFailed:
        return cls(attribute, exc.code, kms_hint(exc.code, key_arn))


@dataclass(frozen=True)
class DecodedItem:
    item: Item
    attributes_decrypted: int


# What one Decrypt needs: the ciphertext and its encryption context.
Wanted = tuple[bytes, Mapping[str, str] | None]


class ItemDecoder(Protocol):
    """Turns one scanned item into its decrypted copy, or raises AttributeDecryptFailed.

    ``ciphertexts`` names the Decrypts ``decode`` of the item will ask for, in its order, so
    that a page's can be sent together first (KmsDecrypter.prefetched). It never raises: it
    stops where ``decode`` would fail before a Decrypt (a bad shape, bad base64), and
    ``decode`` raises that failure."""

    def ciphertexts(self, item: Item) -> list[Wanted]: ...

    def decode(self, item: Item) -> DecodedItem: ...


def kms_hint(code: str, key_arn: str) -> str:
    if code == "IncorrectKeyException":
        return f"the ciphertext was not made with SOURCE_KMS_KEY_ARN {key_arn}"
    if code == "InvalidCiphertextException":
        return "corrupted ciphertext, or a different encryption context (KMS_ENCRYPTION_CONTEXT)"
    if code in ("AccessDeniedException", "AccessDenied", "403"):
        return f"kms:Decrypt under {key_arn} was denied (another key, or the role's policy)"
    if code == "DisabledException":
        return f"SOURCE_KMS_KEY_ARN {key_arn} is disabled: enable it in the source account"
    if code == "KMSInvalidStateException":
        return (
            f"SOURCE_KMS_KEY_ARN {key_arn} cannot decrypt in its state (pending deletion, "
            "pending import or unavailable): check the key in the source account"
        )
    return ""


def plaintext_value(plaintext: bytes, attribute: str, declared: str = "auto") -> dict[str, Any]:
    """The copy's value for a plaintext: the type PLAINTEXT_TYPES declares for the attribute
    (``S``: UTF-8 text, else the item is quarantined; ``B``: the bytes as they are), or with
    ``auto`` a String when the plaintext is UTF-8 text, else Binary."""
    if declared == "B":
        return {"B": plaintext}
    try:
        return {"S": plaintext.decode("utf-8")}
    except UnicodeDecodeError:
        if declared == "S":
            raise AttributeDecryptFailed(
                attribute,
                "UndecodablePlaintext",
                "PLAINTEXT_TYPES declares it a String, but the plaintext is not UTF-8",
            ) from None
        return {"B": plaintext}
