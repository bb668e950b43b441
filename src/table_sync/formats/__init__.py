"""Ciphertext formats: how an item's encrypted attributes are turned back into plaintext.

One module per format; :func:`build_decoder` picks the one ITEM_FORMAT names.
"""

from __future__ import annotations

from collections.abc import Sequence

from table_sync.aws.kms import KmsDecrypter
from table_sync.errors import ConfigurationError
from table_sync.formats.base import AttributeDecryptFailed, DecodedItem, ItemDecoder
from table_sync.formats.context import ContextTemplate
from table_sync.models import Settings

__all__ = ["AttributeDecryptFailed", "DecodedItem", "ItemDecoder", "build_decoder"]


def build_decoder(
    settings: Settings, kms: KmsDecrypter, key_attributes: Sequence[str]
) -> ItemDecoder:
    context = ContextTemplate(settings.kms_encryption_context)
    if settings.item_format == "credstash":
        from table_sync.formats.credstash import CredstashDecoder

        return CredstashDecoder(kms, context, settings.plaintext_types.get("contents", "auto"))
    if settings.item_format == "ddb-encryption-client":
        from table_sync.formats.ddb_encryption_client import DdbEncryptionClientDecoder

        if not key_attributes:
            raise ConfigurationError(
                [
                    "SOURCE_KEY_ATTRIBUTES: required with ITEM_FORMAT=ddb-encryption-client "
                    "(the KMS encryption context binds the key) unless the destination is a "
                    "DynamoDB table with the source's key"
                ]
            )
        return DdbEncryptionClientDecoder(
            kms,
            table_name=settings.source_table_name,
            key_attributes=key_attributes,
            encrypted_attributes=settings.encrypted_attributes,
        )
    from table_sync.formats.kms_attributes import KmsAttributeDecoder

    return KmsAttributeDecoder(
        kms, settings.decrypted_attributes, context, settings.plaintext_types
    )
