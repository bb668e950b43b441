"""The run's :class:`~table_sync.shaping.Shaper`, from the settings, with AccountB's clients:
the keyed hash's key derived and the re-encryption key proven before anything is written."""

from __future__ import annotations

from typing import TYPE_CHECKING

from table_sync.aws.clients import destination_kms_client
from table_sync.aws.errors import translated
from table_sync.aws.kms import ACCESS_DENIED
from table_sync.errors import DestinationError
from table_sync.observability import CallCounter
from table_sync.shaping import Shaper, load_user_transform
from table_sync.transforms import KeyedHash

if TYPE_CHECKING:
    import boto3

    from table_sync.models import Settings
    from table_sync.shaping.reencrypt import AttributeSealer

HINTS = {
    **dict.fromkeys(ACCESS_DENIED, " (the function's role needs kms:GenerateMac on HASH_KEY_ARN)"),
    "InvalidKeyUsageException": " (HASH_KEY_ARN must be an HMAC_256 key for GENERATE_VERIFY_MAC)",
}


def build_shaper(
    settings: Settings,
    session: boto3.Session,
    key_attributes: tuple[str, ...],
    *,
    prove: bool = True,
) -> Shaper:
    """The shaper ``settings`` describe; its ``counter`` counts AccountB's KMS requests.
    ``prove``: seal one value now (a run does; ``verify``, which only decrypts, does not)."""
    counter = CallCounter()
    transform, version = load_user_transform(settings.transform)
    keyed_hash = None
    if settings.hash_key_arn and settings.hash_attributes:
        kms = destination_kms_client(session, settings.hash_key_arn, counter)
        with translated(DestinationError, "HASH_KEY_ARN: kms:GenerateMac", hints=HINTS):
            keyed_hash = KeyedHash.derived(kms, settings.hash_key_arn)
    sealer = None
    if settings.reencrypt_attributes and settings.destination_attribute_key_arn:
        from table_sync.shaping.reencrypt import AttributeSealer  # the SDK: 180 ms to import

        sealer = AttributeSealer(
            destination_kms_client(session, settings.destination_attribute_key_arn, counter),
            settings.destination_attribute_key_arn,
            settings.source_table_arn,
            settings.reencrypt_attributes,
            key_attributes,
            bind_item=settings.reencrypt_context == "item",
            max_age=settings.reencrypt_cache_max_age,
            max_messages=settings.reencrypt_cache_max_messages,
        )
    if prove:
        prove_sealer(sealer)
    return Shaper(
        key_attributes=key_attributes,
        transform=transform,
        transform_name=settings.transform or "",
        transform_version=version,
        masks=dict(settings.mask_attributes),
        hashes=settings.hash_attributes,
        keyed_hash=keyed_hash,
        copy_attributes=settings.copy_attributes,
        drop_attributes=settings.drop_attributes,
        sealer=sealer,
        counter=counter,
    )


def prove_sealer(sealer: AttributeSealer | None) -> None:
    """One value sealed, before anything is written: a key that cannot encrypt fails the run
    now (DestinationError naming DESTINATION_ATTRIBUTE_KEY_ARN). Its data key is the one the
    run's String values of the first attribute use, from the cache: no extra KMS request
    (with REENCRYPT_CONTEXT=item, where every value has its own data key, one more)."""
    if sealer is not None:
        probe = {name: {"S": ""} for name in (*sealer.key_attributes, sealer.attributes[0])}
        sealer.seal(probe)
