"""Transforms of a decrypted item before it is written: the built-ins (MASK_ATTRIBUTES,
HASH_ATTRIBUTES, DROP_ATTRIBUTES) and the helpers a TRANSFORM of your own can use.

A TRANSFORM is ``package.module:function``. The function takes one decrypted item, in
DynamoDB's typed form (``{"pk": {"S": "customer#1"}, "ssn": {"S": "123-45-6789"}}``), and returns
the item to write, or ``None`` to leave the item out of the copy (a mirror then removes its
copy; an incremental export records it as deleted). It must keep the key attributes as they
are. The module declares ``TRANSFORM_VERSION`` (a string or number): changing it re-copies every
item at the next run, as changing the transform's name does. An exception it raises quarantines
the item, recorded with the exception's type, never its message (it could quote a value)::

    # my_transforms.py
    from table_sync.transforms import mask

    TRANSFORM_VERSION = "1"

    def shape(item):
        if item.get("status", {}).get("S") == "closed":
            return None                      # not copied
        return mask(item, "card", keep=4)    # "************1111"
"""

from __future__ import annotations

import hashlib
import hmac
import importlib
from collections.abc import Callable, Mapping
from typing import Any

from table_sync.formats.base import AttributeDecryptFailed
from table_sync.items import Item

Transform = Callable[[Item], Item | None]

# What a HASH_ATTRIBUTES key is derived from: kms:GenerateMac of this message under HASH_KEY_ARN
# (HMAC_SHA_256). The same key and message give the same hash key in every run and to anyone
# AccountB lets call GenerateMac, so their hashes of a value match the copy's.
HASH_KEY_MESSAGE = b"table-sync keyed hash v1"
HASH_ALGORITHM = "HMAC_SHA_256"


class ShapeFailed(AttributeDecryptFailed):
    """One item could not be shaped (a mask of a type without characters, a TRANSFORM that
    raised): the item is quarantined like one that cannot be decrypted. Never carries a value."""


def mask(item: Item, attribute: str, *, keep: int = 4, char: str = "*") -> Item:
    """``item`` with ``attribute``'s String (or Number, which becomes a String) masked: every
    character but the last ``keep`` replaced by ``char`` (all of them in a value no longer than
    ``keep``). An item without it is returned as it is; any other type fails the item
    (``UnsupportedType``)."""
    value = item.get(attribute)
    if value is None:
        return item
    ((kind, raw),) = value.items()
    if kind not in ("S", "N"):
        raise ShapeFailed(attribute, "UnsupportedType", f"MASK_ATTRIBUTES masks S or N, not {kind}")
    # A value no longer than ``keep`` is masked whole: showing all of it would mask nothing.
    shown = raw[-keep:] if 0 < keep < len(raw) else ""
    item[attribute] = {"S": char * (len(raw) - len(shown)) + shown}
    return item


def remove(item: Item, *attributes: str) -> Item:
    """``item`` without ``attributes`` (those it has)."""
    for attribute in attributes:
        item.pop(attribute, None)
    return item


def hash_bytes(value: Mapping[str, Any], attribute: str) -> bytes:
    """What a keyed hash is taken of: a String's UTF-8, a Number's text as DynamoDB holds it,
    a Binary's bytes. Another type fails the item (``UnsupportedType``)."""
    ((kind, raw),) = value.items()
    if kind in ("S", "N"):
        return str(raw).encode("utf-8")
    if kind == "B":
        return bytes(raw)
    raise ShapeFailed(attribute, "UnsupportedType", f"HASH_ATTRIBUTES hashes S, N or B, not {kind}")


class KeyedHash:
    """HMAC-SHA256 under a key derived from AccountB's HMAC KMS key (see HASH_KEY_MESSAGE):
    one ``kms:GenerateMac`` per run, then every value is hashed here. The key is never logged
    nor kept beyond the run."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    @classmethod
    def derived(cls, kms: Any, key_arn: str) -> KeyedHash:
        """The hash key for ``key_arn`` (``kms``: a KMS client in the key's account)."""
        answer = kms.generate_mac(
            KeyId=key_arn, MacAlgorithm=HASH_ALGORITHM, Message=HASH_KEY_MESSAGE
        )
        return cls(bytes(answer["Mac"]))

    def __repr__(self) -> str:
        return "KeyedHash(<key>)"

    def hexdigest(self, data: bytes) -> str:
        return hmac.new(self._key, data, hashlib.sha256).hexdigest()

    def apply(self, item: Item, attribute: str) -> Item:
        """``item`` with ``attribute`` (if it has it) replaced by its keyed hash, a String."""
        value = item.get(attribute)
        if value is not None:
            item[attribute] = {"S": self.hexdigest(hash_bytes(value, attribute))}
        return item


def load_transform(spec: str) -> tuple[Transform, str]:
    """The function ``package.module:function`` names, and its module's TRANSFORM_VERSION.
    Raises ValueError saying what is missing (the caller names the setting)."""
    module_name, _, function_name = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(
            f"cannot import {module_name} ({type(exc).__name__}): for the function, put it in "
            "src/ beside table_sync/ before sam build; from a shell, on PYTHONPATH"
        ) from None
    function = getattr(module, function_name, None)
    if not callable(function):
        raise ValueError(f"{module_name} has no function {function_name}")
    version = getattr(module, "TRANSFORM_VERSION", None)
    if not isinstance(version, str | int) or isinstance(version, bool) or version == "":
        raise ValueError(
            f"{module_name} declares no TRANSFORM_VERSION (a string or number; change it "
            "whenever the transform changes, and every item is copied again)"
        )
    return function, str(version)
