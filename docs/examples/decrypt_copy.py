"""How an application in AccountB reads a re-encrypted attribute of the copy: the AWS
Encryption SDK for Python (any language's Encryption SDK reads the same message), with the
KMS key ARN, then a check of the encryption context that table-sync wrote.

    pip install aws-encryption-sdk
"""

from __future__ import annotations

import json

import aws_encryption_sdk
import botocore.session
from aws_encryption_sdk import CommitmentPolicy


def decrypt_attribute(
    ciphertext: bytes,
    *,
    key_arn: str,
    table_arn: str,
    attribute: str,
    item_key: str | None = None,
) -> str | bytes | dict:
    """The plaintext of one attribute of a copy's item (``ciphertext``: its Binary value).

    ``table_arn``: the source table's ARN; ``attribute``: the attribute's name;
    ``item_key``: with REENCRYPT_CONTEXT=item, the item's key as table-sync writes it
    (``[["pk","S","customer#00001"]]``). A ciphertext moved from another table, attribute or
    item fails the check."""
    client = aws_encryption_sdk.EncryptionSDKClient(
        commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT
    )
    provider = aws_encryption_sdk.StrictAwsKmsMasterKeyProvider(
        key_ids=[key_arn], botocore_session=botocore.session.Session()
    )
    plaintext, header = client.decrypt(source=ciphertext, key_provider=provider)
    context = header.encryption_context
    expected = {"table-sync:table": table_arn, "table-sync:attribute": attribute}
    if item_key is not None:
        expected["table-sync:key"] = item_key
    if any(context.get(name) != value for name, value in expected.items()):
        raise ValueError(
            f"{attribute}: this ciphertext belongs to another table, attribute or item"
        )
    kind = context["table-sync:type"]  # the plaintext's DynamoDB type
    if kind == "S":
        return plaintext.decode("utf-8")
    if kind == "B":
        return plaintext
    return json.loads(plaintext)  # any other type, as DynamoDB JSON: {"N": "42"}
