"""The digests the mirror compares (changes.py) stay what earlier versions wrote: a copy's
digest is kept with it, so a digest computed differently for the same item and settings makes
the next run re-decrypt and rewrite the whole table. The expected values below were computed by
the implementation the copies in AccountB were written with (COPY_VERSION 1)."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from table_sync.changes import COPY_VERSION, canonical_bytes, item_digest, key_hash

ITEM = {
    "pk": {"S": "a"},
    "n": {"N": "1.5"},
    "b": {"B": b"\x00\xff"},
    "t": {"BOOL": True},
    "z": {"NULL": True},
    "ss": {"SS": ["b", "a"]},
    "ns": {"NS": ["2", "10"]},
    "bs": {"BS": [b"\x02", b"\x01"]},
    "m": {"M": {"y": {"B": b"x"}, "x": {"L": [{"S": "q"}, {"BS": [b"b", b"a"]}]}}},
}


def test_canonical_json_sorts_names_and_sets_and_writes_binary_as_base64() -> None:
    assert canonical_bytes(ITEM) == (
        b'{"b":{"B":"AP8="},"bs":{"BS":["AQ==","Ag=="]},'
        b'"m":{"M":{"x":{"L":[{"S":"q"},{"BS":["YQ==","Yg=="]}]},"y":{"B":"eA=="}}},'
        b'"n":{"N":"1.5"},"ns":{"NS":["10","2"]},"pk":{"S":"a"},"ss":{"SS":["a","b"]},'
        b'"t":{"BOOL":true},"z":{"NULL":true}}'
    )


def test_digests_and_key_hashes_match_what_earlier_runs_wrote() -> None:
    assert COPY_VERSION == 1  # a new version rewrites every copy on purpose: update both then
    assert item_digest(ITEM, b'{"version": 1}').hex() == "a6a95bed5c36d8e3898c144137a2bbcf"
    assert key_hash({"pk": {"S": "a"}}) == 6044878392680783993
    reordered = {name: ITEM[name] for name in reversed(ITEM)}
    assert item_digest(reordered, b'{"version": 1}') == item_digest(ITEM, b'{"version": 1}')


@pytest.mark.parametrize(
    "key",
    [
        {"pk": {"S": "item#0001234"}},
        {"pk": {"N": "-12.5"}},
        {"pk": {"B": b"\x00\xff"}},
        {"sk": {"N": "7"}, "pk": {"S": "customer#1"}},
        {"pk": {"S": "\u00e9\u2603"}, "sk": {"B": bytearray(b"ab")}},
    ],
)
def test_a_key_hash_is_the_hash_of_the_keys_canonical_bytes(key: dict[str, Any]) -> None:
    """key_hash skips canonical_bytes for keys of Strings and Numbers (they are canonical as
    they are): every key type still hashes its canonical bytes, in any attribute order, so a
    ledger written before and a sweep after agree."""
    canonical = hashlib.blake2b(canonical_bytes(key), digest_size=8).digest()
    assert key_hash(key) == int.from_bytes(canonical, "big")
    assert key_hash(dict(reversed(key.items()))) == key_hash(key)
