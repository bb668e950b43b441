"""Items in DynamoDB's low-level JSON (``{"pk": {"S": "a"}}``), kept as they come off the wire.

The sync never converts items to Python values and back: the scan's AttributeValue maps are
written out as they are, with only the decrypted attributes replaced.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any

Item = dict[str, Any]


def describe_key(item: Mapping[str, Any], key_attributes: Sequence[str]) -> str:
    """Name an item by its key, e.g. ``pk=S:"user#1", sk=N:"3"``, for errors and quarantine.

    Only key attributes are shown: they are never encrypted (settings reject that).
    """
    parts = []
    for name in key_attributes:
        value = item.get(name)
        if not value:
            parts.append(f"{name}=<missing>")
            continue
        ((kind, raw),) = value.items()
        shown = base64.b64encode(raw).decode() if isinstance(raw, bytes) else raw
        parts.append(f'{name}={kind}:"{shown}"')
    return "{" + ", ".join(parts) + "}"


def key_identity(item: Mapping[str, Any], key_attributes: Sequence[str]) -> str:
    """An item's typed key tuple as canonical text: equal for the same key, different for
    different ones (unlike :func:`describe_key`'s, which two crafted keys can share). Numbers
    compare as numbers ("1.0" is "1"), binary by its bytes."""
    parts: list[Any] = []
    for name in key_attributes:
        value = item.get(name)
        if not value:
            parts.append([name, None])
            continue
        ((kind, raw),) = value.items()
        if kind == "N":
            number = Decimal(raw)
            raw = format(number.normalize(), "f") if number else "0"
        elif isinstance(raw, bytes):
            raw = base64.b64encode(raw).decode()
        parts.append([name, kind, raw])
    return json.dumps(parts, ensure_ascii=False, separators=(",", ":"))


def key_of(item: Mapping[str, Any], key_attributes: Sequence[str]) -> Item:
    return {name: item[name] for name in key_attributes if name in item}


def _with_binary(value: Any, convert: Callable[[Any], Any]) -> Any:
    """``value`` with every binary in it (B, BS, inside M and L) passed through ``convert``."""
    ((kind, raw),) = value.items()
    if kind == "B":
        return {"B": convert(raw)}
    if kind == "BS":
        return {"BS": [convert(b) for b in raw]}
    if kind == "M":
        return {"M": {k: _with_binary(v, convert) for k, v in raw.items()}}
    if kind == "L":
        return {"L": [_with_binary(v, convert) for v in raw]}
    return value


def to_json_value(value: Any) -> Any:
    """An AttributeValue as DynamoDB JSON: binary as base64 text, everything else as is."""
    return _with_binary(value, lambda raw: base64.b64encode(raw).decode("ascii"))


def to_json_item(item: Mapping[str, Any]) -> Item:
    return {name: to_json_value(value) for name, value in item.items()}


def from_json_value(value: Any) -> Any:
    """Inverse of :func:`to_json_value`: base64 text back to bytes."""
    return _with_binary(value, base64.b64decode)


def from_json_item(item: Mapping[str, Any]) -> Item:
    return {name: from_json_value(value) for name, value in item.items()}


# DynamoDB's item size limit is 400 KB (409,600 bytes). The sync adds bookkeeping to a copy item
# only while the estimate below stays under this, which leaves room for any difference between
# the estimate and the service's own accounting (and is under the embedded moto's 405,000).
BOOKKEEPING_SIZE_LIMIT = 400_000


def value_size(value: Any) -> int:
    """An AttributeValue's size as DynamoDB bills and limits it, rounded up: strings and binary
    by their length in bytes, a number by at most its digits plus one, a list or map by its
    elements plus 3 bytes and 1 byte for each element."""
    ((kind, raw),) = value.items()
    if kind == "S":
        return len(raw.encode("utf-8"))
    if kind == "B":
        return len(raw)
    if kind == "N":
        return len(raw) + 1
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(s.encode("utf-8")) for s in raw)
    if kind == "BS":
        return sum(len(b) for b in raw)
    if kind == "NS":
        return sum(len(n) + 1 for n in raw)
    if kind == "L":
        return 3 + sum(1 + value_size(v) for v in raw)
    if kind == "M":
        return 3 + sum(1 + len(k.encode("utf-8")) + value_size(v) for k, v in raw.items())
    raise ValueError(f"not a DynamoDB attribute value type: {kind}")


def item_size(item: Mapping[str, Any]) -> int:
    """An item's size: its attribute names' UTF-8 lengths plus its values' sizes."""
    return sum(len(name.encode("utf-8")) + value_size(value) for name, value in item.items())
