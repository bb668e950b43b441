"""ITEM_FORMAT=ddb-encryption-client: items written by AWS's DynamoDB Encryption Client (Python,
legacy) with its KMS materials provider.

Such an item carries ``*amzn-ddb-map-desc*`` (the material description, with the KMS-wrapped
data key) and ``*amzn-ddb-map-sig*`` (a signature over the item). AWS's own library
(dynamodb-encryption-sdk) verifies the signature and decrypts; the reserved attributes are not
copied. Which attributes were encrypted is not stored in the item: ENCRYPTED_ATTRIBUTES names
them, or, unset, every non-key attribute (the client's default action). Key attributes are
signed, never encrypted. The KMS encryption context binds the table name and the item's key, so
SOURCE_TABLE_NAME and the key attribute names must be the writer's.

The library's KMS calls are routed through table-sync's :class:`KmsDecrypter`, so they too pass
``KeyId``, are counted and are decrypted once per distinct wrapped key. That routing overrides
the provider's ``_client`` (a private method; the library offers no other way to supply a
client that is not a botocore client).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from botocore.exceptions import ClientError
from dynamodb_encryption_sdk.encrypted import CryptoConfig
from dynamodb_encryption_sdk.encrypted.item import decrypt_dynamodb_item
from dynamodb_encryption_sdk.exceptions import (
    DynamodbEncryptionSdkError,
    SignatureVerificationError,
    UnwrappingError,
)
from dynamodb_encryption_sdk.identifiers import CryptoAction
from dynamodb_encryption_sdk.material_providers.aws_kms import (
    AwsKmsCryptographicMaterialsProvider,
)
from dynamodb_encryption_sdk.structures import AttributeActions, EncryptionContext

from table_sync.aws.kms import KmsDecrypter, KmsDecryptFailed
from table_sync.formats.base import AttributeDecryptFailed, DecodedItem, Wanted, kms_hint
from table_sync.items import Item

MATERIAL_DESCRIPTION = "*amzn-ddb-map-desc*"
SIGNATURE = "*amzn-ddb-map-sig*"


class _RoutedKmsClient:
    """Stands in for the provider's boto3 KMS client; only Decrypt is ever called on it."""

    def __init__(self, kms: KmsDecrypter) -> None:
        self._kms = kms

    def decrypt(
        self, *, CiphertextBlob: bytes, EncryptionContext: dict[str, str] | None = None, **_: Any
    ) -> dict[str, Any]:
        try:
            plaintext = self._kms.decrypt(CiphertextBlob, EncryptionContext)
        except KmsDecryptFailed as exc:
            raise ClientError({"Error": {"Code": exc.code, "Message": ""}}, "Decrypt") from exc
        return {"Plaintext": plaintext, "KeyId": self._kms.key_arn}


class _Wanted(Exception):
    """Raised by the probe's stand-in client: the Decrypt the library asked for."""

    def __init__(self, ciphertext: bytes, context: dict[str, str] | None) -> None:
        super().__init__("probe")
        self.ciphertext = ciphertext
        self.context = context


class _ProbeKmsClient:
    def decrypt(
        self, *, CiphertextBlob: bytes, EncryptionContext: dict[str, str] | None = None, **_: Any
    ) -> dict[str, Any]:
        raise _Wanted(CiphertextBlob, EncryptionContext)


class _KmsProvider(AwsKmsCryptographicMaterialsProvider):  # type: ignore[misc]
    """The library's KMS materials provider for ``key_arn``, with ``client`` for its KMS calls:
    the routed one (decode), or the probe, which stops the library at its call
    (``ciphertexts``)."""

    def __init__(self, key_arn: str, client: _RoutedKmsClient | _ProbeKmsClient) -> None:
        super().__init__(key_id=key_arn)
        self._fixed_client = client

    def _client(self, key_id: str) -> _RoutedKmsClient | _ProbeKmsClient:
        return self._fixed_client


class DdbEncryptionClientDecoder:
    def __init__(
        self,
        kms: KmsDecrypter,
        *,
        table_name: str,
        key_attributes: Sequence[str],
        encrypted_attributes: Sequence[str] = (),
    ) -> None:
        if not 1 <= len(key_attributes) <= 2:
            raise ValueError("the table's key attribute names are needed (partition, then sort)")
        self._kms = kms
        self._provider = _KmsProvider(kms.key_arn, _RoutedKmsClient(kms))
        self._probe = _KmsProvider(kms.key_arn, _ProbeKmsClient())
        self._table = table_name
        self._partition = key_attributes[0]
        self._sort = key_attributes[1] if len(key_attributes) == 2 else None
        self._keys = tuple(key_attributes)
        self._encrypted = tuple(encrypted_attributes)
        signed_keys = dict.fromkeys(self._keys, CryptoAction.SIGN_ONLY)
        if self._encrypted:
            self._actions = AttributeActions(
                default_action=CryptoAction.SIGN_ONLY,
                attribute_actions={
                    **dict.fromkeys(self._encrypted, CryptoAction.ENCRYPT_AND_SIGN),
                    **signed_keys,
                },
            )
        else:
            self._actions = AttributeActions(
                default_action=CryptoAction.ENCRYPT_AND_SIGN, attribute_actions=signed_keys
            )

    def _config(self, item: Item, provider: AwsKmsCryptographicMaterialsProvider) -> CryptoConfig:
        return CryptoConfig(
            materials_provider=provider,
            encryption_context=EncryptionContext(
                table_name=self._table,
                partition_key_name=self._partition,
                sort_key_name=self._sort,
                attributes=dict(item),
            ),
            attribute_actions=self._actions,
        )

    def ciphertexts(self, item: Item) -> list[Wanted]:
        """The wrapped data key and the KMS encryption context the library asks KMS for: found
        by running the library's own decryption as far as that call (the probe's client stops
        it there), so the context is the one it builds."""
        if SIGNATURE not in item or MATERIAL_DESCRIPTION not in item:
            return []
        try:
            decrypt_dynamodb_item(dict(item), self._config(item, self._probe))
        except _Wanted as wanted:
            return [(wanted.ciphertext, wanted.context)]
        except Exception:  # the item fails before its Decrypt: decode raises it, named
            return []
        return []

    def decode(self, item: Item) -> DecodedItem:
        if SIGNATURE not in item or MATERIAL_DESCRIPTION not in item:
            raise AttributeDecryptFailed(
                SIGNATURE, "InvalidItem", "not written by the DynamoDB Encryption Client"
            )
        try:
            plain = decrypt_dynamodb_item(dict(item), self._config(item, self._provider))
        except SignatureVerificationError:
            raise AttributeDecryptFailed(
                SIGNATURE, "SignatureInvalid", "the item was altered after it was signed"
            ) from None
        except UnwrappingError as exc:
            code = _kms_code(exc)
            raise AttributeDecryptFailed(
                MATERIAL_DESCRIPTION, code, kms_hint(code, self._kms.key_arn)
            ) from None
        except DynamodbEncryptionSdkError as exc:
            raise AttributeDecryptFailed(
                MATERIAL_DESCRIPTION, "InvalidItem", type(exc).__name__
            ) from None
        decrypted = sum(
            1
            for name in plain
            if name not in self._keys and (not self._encrypted or name in self._encrypted)
        )
        return DecodedItem(plain, decrypted)


def _kms_code(exc: BaseException) -> str:
    """The KMS error code behind the library's UnwrappingError (it chains implicitly)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, KmsDecryptFailed):
            return seen.code
        seen = seen.__cause__ or seen.__context__
    return "UnwrappingError"
