"""The digests the mirror compares (changes.py) stay what earlier versions wrote: a copy's
digest is kept with it, so a digest computed differently for the same item and settings makes
the next run re-decrypt and rewrite the whole table. The expected values below were computed by
the implementation the copies in AccountB were written with (COPY_VERSION 1)."""

from __future__ import annotations

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
