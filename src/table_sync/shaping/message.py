"""One AWS Encryption SDK message from a value in memory, assembled from the SDK's own parts.

The SDK's ``encrypt`` runs every value through its streaming encryptor (a config object, a
stream over the source, the stream's reads and their logging); for a value already in memory
that is a third of its cost: 100 us a value here against 63 us (51 with the memo below) for
the same message built with the SDK's own functions, in the order its encryptor calls them
(``StreamEncryptor._prep_message``, ``generate_header``, ``_write_header`` and
``_read_bytes_to_framed_body``): the materials from the caching materials manager, the message
id, the derived data key and commitment key, the header and its authentication tag, then the
framed body. Nothing here is cryptography of our own, and any Encryption SDK decrypts the result
(the tests decrypt every value with the SDK's ``decrypt``, and compare the header with the one
``encrypt`` writes).

Pinned to aws-encryption-sdk 4.x (pyproject.toml): these functions are the SDK's internals.

The SDK serialises a message's encryption context twice: once for the caching materials
manager's cache key, once for the header. A run re-encrypts under a handful of contexts (one per
attribute and type, by default), and serialising one is a fifth of a message's CPU (13 us of 63),
so both of the SDK's calls go through a bounded memo of the SDK's own function
(``memoize_context_serialization``, installed on import): same bytes, computed once a context.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import aws_encryption_sdk.caches
import aws_encryption_sdk.internal.formatting.encryption_context as context_format
from aws_encryption_sdk.exceptions import ActionNotAllowedError
from aws_encryption_sdk.identifiers import Algorithm, CommitmentPolicy, ContentType
from aws_encryption_sdk.identifiers import SerializationVersion as Version
from aws_encryption_sdk.internal.crypto.data_keys import (
    calculate_commitment_key,
    derive_data_encryption_key,
)
from aws_encryption_sdk.internal.formatting.serialize import (
    serialize_frame,
    serialize_header,
    serialize_header_auth,
)
from aws_encryption_sdk.internal.utils import message_id as new_message_id
from aws_encryption_sdk.materials_managers import EncryptionMaterialsRequest
from aws_encryption_sdk.structures import MessageHeader

SUITE = Algorithm.AES_256_GCM_HKDF_SHA512_COMMIT_KEY
POLICY = CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT
FRAME_LENGTH = 4096  # the SDK's default
# Distinct encryption contexts whose serialisation is remembered (REENCRYPT_CONTEXT=item has one
# an item: those miss, and cost a dictionary lookup more than the SDK's own call).
SERIALIZED_CONTEXTS = 1_024


def memoize_context_serialization() -> None:
    """Route the SDK's two callers of ``serialize_encryption_context`` (the cache key and the
    header) through a memo of it. The memo is keyed by the context's entries in order, so it
    returns exactly what the SDK's function returns for them; its errors are not remembered."""
    serialize = getattr(context_format.serialize_encryption_context, "__wrapped__", None)
    if serialize is not None:  # already installed
        return
    original = context_format.serialize_encryption_context

    @functools.lru_cache(maxsize=SERIALIZED_CONTEXTS)
    def serialized(entries: tuple[tuple[Any, Any], ...]) -> bytes:
        result: bytes = original(dict(entries))
        return result

    @functools.wraps(original)
    def memoized(encryption_context: Mapping[Any, Any] | None) -> bytes:
        if not encryption_context:  # None or empty: the SDK's answer, as it is
            return original(encryption_context)  # type: ignore[no-any-return]
        return serialized(tuple(encryption_context.items()))

    context_format.serialize_encryption_context = memoized
    aws_encryption_sdk.caches.serialize_encryption_context = memoized


memoize_context_serialization()


def seal_message(cmm: Any, plaintext: bytes, context: Mapping[str, str]) -> bytes:
    """``plaintext`` as an Encryption SDK message (SUITE, framed, unsigned) with the materials
    ``cmm`` gives for ``context``. The SDK's own errors (a data key KMS refused) propagate."""
    materials = cmm.get_encryption_materials(
        EncryptionMaterialsRequest(
            encryption_context=dict(context),
            frame_length=FRAME_LENGTH,
            algorithm=SUITE,
            commitment_policy=POLICY,
            plaintext_length=len(plaintext),  # the cache counts bytes and messages by it
        )
    )
    if materials.algorithm != SUITE or materials.signing_key is not None:
        raise ActionNotAllowedError("the materials manager gave another algorithm suite")
    source_key = materials.data_encryption_key.data_key
    message_id = new_message_id(SUITE.message_id_length())
    data_key = derive_data_encryption_key(
        source_key=source_key, algorithm=SUITE, message_id=message_id
    )
    header = MessageHeader(
        version=Version.V2,
        algorithm=SUITE,
        message_id=message_id,
        encryption_context=materials.encryption_context,
        encrypted_data_keys=materials.encrypted_data_keys,
        content_type=ContentType.FRAMED_DATA,
        frame_length=FRAME_LENGTH,
        commitment_key=calculate_commitment_key(
            source_key=source_key, algorithm=SUITE, message_id=message_id
        ),
    )
    message: bytes = serialize_header(header=header, signer=None)
    message += serialize_header_auth(
        version=Version.V2, algorithm=SUITE, header=message, data_encryption_key=data_key
    )
    return message + _framed_body(plaintext, message_id, data_key)


def _framed_body(plaintext: bytes, message_id: bytes, data_key: bytes) -> bytes:
    """Full frames, then a final frame shorter than a frame (empty when the plaintext fills its
    last frame), as the SDK's encryptor writes them."""
    body: bytes = b""
    rest, sequence = plaintext, 1
    while True:
        final = len(rest) < FRAME_LENGTH
        frame, rest = serialize_frame(
            algorithm=SUITE,
            plaintext=rest,
            message_id=message_id,
            data_encryption_key=data_key,
            frame_length=FRAME_LENGTH,
            sequence_number=sequence,
            is_final_frame=final,
            signer=None,
        )
        body += frame
        sequence += 1
        if final:
            return body
