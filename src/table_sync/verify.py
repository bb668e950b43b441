"""Is the copy a copy? The source, decrypted as a sync would, compared item by item with the
destination by SHA-256 digest (``table-sync verify``). Keys are listed, never values."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import boto3

from table_sync.aws.clients import caller_client, connect_source
from table_sync.aws.dynamodb import scan_pages
from table_sync.aws.errors import translated
from table_sync.compare import (
    Comparison,
    Keyed,
    compare_digests,
    digest,
    latest_export,
    read_export,
)
from table_sync.errors import ConfigurationError, DestinationError
from table_sync.formats import AttributeDecryptFailed, ItemDecoder, build_decoder
from table_sync.items import Item, describe_key, key_identity
from table_sync.models import DynamoDBDestination, S3Destination, Settings
from table_sync.shaping import Shaper
from table_sync.shaping.build import build_shaper
from table_sync.sinks import DynamoDBSink
from table_sync.sinks.dynamodb import BOOKKEEPING_ATTRIBUTES
from table_sync.transforms import ShapeFailed

# The copy's items, each with its typed key identity and its key described.
Copies = Iterator[tuple[str, str, Item]]


def verify_copy(
    settings: Settings,
    *,
    base_session: boto3.Session,
    role_session_name: str,
    location: str | None = None,
) -> tuple[Comparison, str]:
    """Returns the comparison and where the copy was read from (the DynamoDB table, or the
    newest complete S3 export unless ``location`` names one)."""
    source = connect_source(settings, base_session, role_session_name)
    duplicated: list[str] = []
    if isinstance(settings.destination, DynamoDBDestination):
        keys, copy, where = _table_copies(settings, settings.destination, base_session)
    else:
        keys, copy, where, duplicated = _export_copies(
            settings, settings.destination, base_session, location
        )
    decoder = build_decoder(settings, source.kms, keys)
    # The copy is compared through the same selection and transforms (its re-encrypted
    # attributes decrypted under AccountB's key: kms:Decrypt on DESTINATION_ATTRIBUTE_KEY_ARN).
    shaper = build_shaper(settings, base_session, keys, prove=False)

    def source_digests() -> Iterator[Keyed]:
        with ThreadPoolExecutor(settings.decrypt_concurrency) as pool:
            for page in scan_pages(
                source.dynamodb,
                settings.source_table_name,
                page_size=settings.page_size,
                region=settings.table_region_origin,
            ):
                decoded = pool.map(lambda item: _decoded_digest(decoder, shaper, item), page.items)
                for item, result in zip(page.items, decoded, strict=True):
                    if result is not FILTERED:
                        yield key_identity(item, keys), describe_key(item, keys), result

    # A dynamodb:// copy's bookkeeping is its own; an export holds only the items.
    without = (
        BOOKKEEPING_ATTRIBUTES
        if isinstance(settings.destination, DynamoDBDestination)
        else frozenset()
    )
    unsealed = ((key, name, _unsealed(shaper, item, without)) for key, name, item in copy)
    return compare_digests(source_digests(), unsealed, duplicated), where


def _table_copies(
    settings: Settings, destination: DynamoDBDestination, session: boto3.Session
) -> tuple[tuple[str, ...], Copies, str]:
    client = caller_client(session, "dynamodb")
    copy = DynamoDBSink(client, destination.table_name)
    copy.prepare()  # DescribeTable only: the copy's key schema, with the sink's own checks
    keys = settings.source_key_attributes or copy.key_attributes

    def items() -> Copies:
        with translated(DestinationError, f"scan of destination table {destination.table_name}"):
            for page in client.get_paginator("scan").paginate(TableName=destination.table_name):
                for item in page["Items"]:
                    yield key_identity(item, keys), describe_key(item, keys), item

    return keys, items(), destination.uri


def _export_copies(
    settings: Settings, destination: S3Destination, session: boto3.Session, location: str | None
) -> tuple[tuple[str, ...], Copies, str, list[str]]:
    keys = settings.source_key_attributes
    if not keys and settings.change_index_table:  # the change index has the source's keys
        index = DynamoDBSink(caller_client(session, "dynamodb"), settings.change_index_table)
        index.prepare()
        keys = index.key_attributes
    if not keys:
        raise ConfigurationError(
            [
                "SOURCE_KEY_ATTRIBUTES: required to verify an s3:// copy without "
                "CHANGE_INDEX_TABLE (items are matched by key; --key-attributes on the "
                "command line)"
            ]
        )
    client = caller_client(session, "s3")
    with translated(DestinationError, f"reading the export under {destination.uri}"):
        found = location or latest_export(client, destination.bucket, destination.prefix)
        if found is None:
            raise DestinationError(f"no complete export under {destination.uri}")
        export = read_export(client, destination.bucket, found, keys=keys)
    items = export.items.values()
    copies = ((key_identity(i, keys), describe_key(i, keys), i) for i in items)
    return keys, copies, found, export.duplicates


# A source item TRANSFORM leaves out of the copy: not expected there.
FILTERED = "filtered"


def _decoded_digest(decoder: ItemDecoder, shaper: Shaper, item: Item) -> str | None:
    try:
        prepared = shaper.prepare(decoder.decode(item).item)
    except AttributeDecryptFailed:  # ShapeFailed too: the run quarantines such an item
        return None
    return FILTERED if prepared is None else digest(prepared)


def _unsealed(shaper: Shaper, item: Item, without: frozenset[str]) -> str:
    """A copy's digest, its re-encrypted attributes decrypted (one that cannot be, or whose
    context names another item or attribute, makes the item differ)."""
    try:
        return digest(shaper.unseal(item), without=without)
    except ShapeFailed as failure:
        return f"cannot decrypt {failure.attribute}: {failure.kind}"
