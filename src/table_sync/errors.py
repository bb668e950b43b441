"""The errors table-sync raises.

Every message names the setting, event field, item key or AWS call that failed, and never carries
a decrypted value, a key or a token: messages are built from names and error codes only.
"""

from __future__ import annotations

from collections.abc import Sequence


class TableSyncError(Exception):
    """Base class: a failure the operator can act on, with a message that says what to fix."""


class ConfigurationError(TableSyncError):
    """A setting (environment variable or CLI option) is missing or invalid."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("invalid configuration: " + "; ".join(self.problems))


class EventError(TableSyncError):
    """The invocation event is not one table-sync accepts."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("invalid event: " + "; ".join(self.problems))


class SourceAccessError(TableSyncError):
    """AccountA could not be reached: AssumeRole or the scan of the source table failed."""


# What a KMS error that is about the key, not the item, says to change.
DECRYPT_HINTS = {
    "NotFoundException": "no such key: check SOURCE_KMS_KEY_ARN (account, region and key id)",
    "DisabledException": "the key SOURCE_KMS_KEY_ARN names is disabled in AccountA",
    "KMSInvalidStateException": "the key SOURCE_KMS_KEY_ARN names is not usable (pending "
    "deletion or import?)",
}


class KeyNotProven(SourceAccessError):
    """A run's proof of its key failed: the first ciphertexts the scan reached could not be
    decrypted under SOURCE_KMS_KEY_ARN, whether or not their items changed."""

    def __init__(self, key_arn: str, code: str, hint: str) -> None:
        self.code = code
        super().__init__(
            f"SOURCE_KMS_KEY_ARN {key_arn} cannot decrypt the source's ciphertexts: {code}"
            + (f" ({hint})" if hint else "")
            + "; every run proves its key with one Decrypt, so this fails until it is fixed"
        )


class DecryptError(TableSyncError):
    """One attribute of one item could not be decrypted.

    ``kind`` is a short machine-readable reason (an AWS error code such as
    ``InvalidCiphertextException``, or ``InvalidBase64`` / ``UnsupportedType``).
    """

    def __init__(
        self, *, item: str, attribute: str, kind: str, detail: str = "", action: str = "decrypt"
    ) -> None:
        self.item = item
        self.attribute = attribute
        self.kind = kind
        # An attribute in parentheses names a step over the whole item: "(TRANSFORM)".
        what = (
            f"item {item}"
            if attribute.startswith("(")
            else f"attribute {attribute!r} of item {item}"
        )
        message = f"cannot {action} {what}: {kind}"
        detail = detail or DECRYPT_HINTS.get(kind, "")
        if detail:
            message += f" ({detail})"
        super().__init__(message)


class DestinationError(TableSyncError):
    """Writing the copy in AccountB failed."""


class UnprocessedItemsError(DestinationError):
    """BatchWriteItem kept returning UnprocessedItems after every retry: these keys were not written."""

    def __init__(self, table: str, keys: Sequence[str], attempts: int) -> None:
        self.table = table
        self.keys = list(keys)
        self.attempts = attempts
        shown = ", ".join(self.keys[:20])
        more = f" and {len(self.keys) - 20} more" if len(self.keys) > 20 else ""
        super().__init__(
            f"{len(self.keys)} item(s) were not written to {table} after {attempts} attempts "
            f"(UnprocessedItems): {shown}{more}"
        )
