"""Change detection without decrypting: which of a page's items differ from their copies.

Each source item gets a digest of the item as read (its ciphertexts included, so the digest
reveals nothing a reader of the copy could not already see) and of the settings that shape its
copy (:func:`copy_fingerprint`). The destination keeps the digest with the copy it describes,
written in the same put (see ``Sink.digests``); an item whose digest matches its copy's is
neither decrypted nor written. Changing a setting that shapes the copy changes every digest, so
the next run re-decrypts everything by itself; FULL_COPY (``--full``, ``"full": true``) forces
it.

Each item's key also gets a 64-bit hash: the keys a run has seen, kept per page in the state
store, are what the mirror's sweep compares the copy against (see ``state.KeyLedger``).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from table_sync.items import Item, to_json_value

if TYPE_CHECKING:
    from table_sync.models import Settings

# Bump when the code changes how a copy is made from the same item and settings: every digest
# changes with it, and the next run rewrites every copy.
COPY_VERSION = 1
DIGEST_BYTES = 16


_AS_THEY_ARE = frozenset({"S", "N", "BOOL", "NULL"})


def _canonical(value: Any) -> Any:
    """An AttributeValue as JSON with sets sorted (DynamoDB does not promise their order)."""
    ((kind, raw),) = value.items()
    # The common kinds first, inline: this runs for every attribute of every scanned item.
    if kind in _AS_THEY_ARE:
        return value
    if kind == "B":
        return {"B": base64.b64encode(raw).decode("ascii")}
    if kind in ("SS", "NS", "BS"):
        return {kind: sorted(to_json_value({kind: raw})[kind])}
    if kind == "M":
        return {"M": {name: _canonical(v) for name, v in raw.items()}}
    if kind == "L":
        return {"L": [_canonical(v) for v in raw]}
    return to_json_value(value)


# json.dumps with these arguments, made once: dumps makes a new encoder on every call that has
# any argument, and this runs for every key and item a nightly run scans, three times a key.
_CANONICAL_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"))


def canonical_bytes(item: Mapping[str, Any]) -> bytes:
    """The item's canonical JSON: attribute names sorted, binary as base64, sets sorted."""
    canonical = {name: _canonical(value) for name, value in item.items()}
    return _CANONICAL_JSON.encode(canonical).encode()


def copy_fingerprint(settings: Settings, transform_version: str = "") -> bytes:
    """What, besides the item, decides its copy: the format, how values are decrypted, and how
    the copy is shaped (the selection, TRANSFORM and its module's TRANSFORM_VERSION, the masks
    and keyed hashes, the re-encryption). Settings left at their defaults add nothing, so
    digests made before shaping existed still match."""
    shape: dict[str, Any] = {
        "version": COPY_VERSION,
        "format": settings.item_format,
        "encrypted": sorted(settings.encrypted_attributes),
        "types": dict(sorted(settings.plaintext_types.items())),
        "context": dict(sorted(settings.kms_encryption_context.items())),
    }
    if settings.shapes_items:
        shape["shaping"] = {
            "copy": sorted(settings.copy_attributes),
            "drop": sorted(settings.drop_attributes),
            "transform": [settings.transform or "", transform_version],
            "mask": dict(sorted(settings.mask_attributes.items())),
            "hash": [sorted(settings.hash_attributes), settings.hash_key_arn or ""],
            "reencrypt": [
                sorted(settings.reencrypt_attributes),
                settings.destination_attribute_key_arn or "",
                settings.reencrypt_context,
            ],
        }
    return json.dumps(shape, sort_keys=True).encode()


def item_digest(item: Mapping[str, Any], fingerprint: bytes) -> bytes:
    digest = hashlib.blake2b(fingerprint, digest_size=DIGEST_BYTES)
    digest.update(canonical_bytes(item))
    return digest.digest()


def key_hash(key: Mapping[str, Any]) -> int:
    """A 64-bit hash of an item's key (the same for the source item and its copy): of its
    canonical bytes. A key of Strings and Numbers is canonical as it is, and is encoded without
    the copy :func:`canonical_bytes` makes (a Binary, which JSON cannot encode, takes that way):
    the nightly run hashes every key it scans, and its sweep every key of the copy."""
    try:
        data = _CANONICAL_JSON.encode(key).encode()
    except TypeError:
        data = canonical_bytes(key)
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


@dataclass
class PageChanges:
    """A page sorted by its digests: the items to decrypt and write (with their digests), and
    how many were unchanged."""

    changed: list[Item] = field(default_factory=list)
    digests: list[bytes] = field(default_factory=list)
    # Per changed item: whether the destination may hold a copy of it (its digest was found, or
    # none were read), so that a TRANSFORM that leaves the item out removes that copy.
    copied: list[bool] = field(default_factory=list)
    unchanged: int = 0
    key_hashes: list[int] = field(default_factory=list)


def page_changes(
    items: Sequence[Item],
    keys: Sequence[Item] | None,
    fingerprint: bytes,
    copy_digests: Callable[[], Sequence[bytes | None]] | None,
) -> PageChanges:
    """Compare each item's digest with its copy's (``copy_digests()``, in the same order, asked
    for once this page's own are computed, so a read of them can go on meanwhile; None to treat
    every item as changed). ``keys`` are the items' keys, when the copy's key attributes are
    known."""
    changes = PageChanges()
    if keys is not None:
        changes.key_hashes = [key_hash(key) for key in keys]
    digests = [item_digest(item, fingerprint) for item in items]
    copies = copy_digests() if copy_digests is not None else None
    for index, (item, digest) in enumerate(zip(items, digests, strict=True)):
        if copies is not None and copies[index] == digest:
            changes.unchanged += 1
            continue
        changes.changed.append(item)
        changes.digests.append(digest)
        changes.copied.append(copies is None or copies[index] is not None)
    return changes
