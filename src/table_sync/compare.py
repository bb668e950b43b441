"""Read a copy back (a DynamoDB table or an S3 export) and compare it with the source, naming
keys, never values: `table-sync verify`, the demo's check and the tests all use this."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from table_sync.items import Item, describe_key, from_json_item, key_identity, to_json_item
from table_sync.sinks.dynamodb import BOOKKEEPING_ATTRIBUTES


def read_table(client: Any, table: str, key: str = "pk") -> dict[str, Item]:
    items: dict[str, Item] = {}
    for page in client.get_paginator("scan").paginate(TableName=table):
        for item in page["Items"]:
            items[next(iter(item[key].values()))] = item
    return items


@dataclass
class S3Export:
    summary: dict[str, Any]
    manifest: list[dict[str, Any]]
    items: dict[str, Item]
    object_keys: list[str]
    # Keys (described) that one export's lines hold more than once: a real export never does.
    duplicates: list[str] = field(default_factory=list)


def read_export(
    client: Any,
    bucket: str,
    location: str,
    key: str = "pk",
    keys: Sequence[str] | None = None,
) -> S3Export:
    """Read an export written by the S3 sink, checking every data file's MD5 and line count
    against the manifest. Both layouts read alike (DynamoDB's, and table-sync's older one with
    ``.checksum`` files): the manifests name the data files either way. An incremental export is read as the table it completes: its chain
    (``previousExportId``, back to a full snapshot) applied in order, each line putting its
    ``Item`` or ``NewImage``, or deleting its ``Keys`` when it has no image.

    Items are keyed by the value of ``key``; with ``keys`` (the table's key attributes), by
    their typed key tuple (:func:`~table_sync.items.key_identity`), as ``verify`` needs."""

    def identity(item: Item) -> str:
        return key_identity(item, keys) if keys else next(iter(item[key].values()))

    base = location.removeprefix(f"s3://{bucket}/").rstrip("/")
    chain = [(base, _get_json(client, bucket, f"{base}/manifest-summary.json"))]
    while chain[0][1].get("exportType") == "INCREMENTAL_EXPORT":
        previous = f"{chain[0][0].rsplit('/', 1)[0]}/{chain[0][1]['previousExportId']}"
        chain.insert(0, (previous, _get_json(client, bucket, f"{previous}/manifest-summary.json")))
    items: dict[str, Item] = {}
    manifest: list[dict[str, Any]] = []
    duplicates: list[str] = []
    for _, summary in chain:
        manifest = _read_manifest(client, bucket, summary)
        seen: set[str] = set()
        for line in _data_lines(client, bucket, manifest):
            item = from_json_item(line.get("Item") or line.get("NewImage") or line["Keys"])
            name = identity(item)
            if name in seen:
                duplicates.append(describe_key(item, keys or [key]))
            seen.add(name)
            if "Item" in line or "NewImage" in line:
                items[name] = item
            else:
                items.pop(name, None)
    object_keys = [
        obj["Key"]
        for page in client.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=base + "/"
        )
        for obj in page.get("Contents", [])
    ]
    # An incremental export's data files are in the chain's shared AWSDynamoDB/data/.
    object_keys += [e["dataFileS3Key"] for e in manifest if e["dataFileS3Key"] not in object_keys]
    return S3Export(chain[-1][1], manifest, items, object_keys, duplicates)


def _get_json(client: Any, bucket: str, key: str) -> Any:
    return json.loads(client.get_object(Bucket=bucket, Key=key)["Body"].read())


def _read_manifest(client: Any, bucket: str, summary: dict[str, Any]) -> list[dict[str, Any]]:
    body = client.get_object(Bucket=bucket, Key=summary["manifestFilesS3Key"])["Body"].read()
    return [json.loads(line) for line in json_lines(body.decode("utf-8"))]


def json_lines(text: str) -> list[str]:
    """The lines of a JSON Lines file, split at ``\n`` only, as DynamoDB writes and AWS Labs'
    reader reads them. (``str.splitlines`` also splits at U+2028, U+2029, U+0085 and ``\r``,
    which a string value written unescaped may hold.)"""
    lines = text.split("\n")
    return lines[:-1] if lines and lines[-1] == "" else lines


def _data_lines(
    client: Any, bucket: str, manifest: list[dict[str, Any]]
) -> Iterator[dict[str, Any]]:
    for entry in manifest:
        body = client.get_object(Bucket=bucket, Key=entry["dataFileS3Key"])["Body"].read()
        digest = base64.b64encode(hashlib.md5(body).digest()).decode()  # noqa: S324
        if digest != entry["md5Checksum"]:
            raise ValueError(f"{entry['dataFileS3Key']}: MD5 does not match manifest-files.json")
        lines = json_lines(gzip.decompress(body).decode("utf-8"))
        if len(lines) != entry["itemCount"]:
            raise ValueError(
                f"{entry['dataFileS3Key']}: {len(lines)} lines, manifest says {entry['itemCount']}"
            )
        yield from map(json.loads, lines)


def differences(expected: Mapping[str, Item], actual: Mapping[str, Item]) -> list[str]:
    """What differs between two copies, by key and attribute name only."""
    problems = [f"missing {k}" for k in sorted(expected.keys() - actual.keys())]
    problems += [f"unexpected {k}" for k in sorted(actual.keys() - expected.keys())]
    for k in sorted(expected.keys() & actual.keys()):
        want, got = expected[k], actual[k]
        for name in sorted((want.keys() | got.keys()) - BOOKKEEPING_ATTRIBUTES):
            if _normalise(want.get(name)) != _normalise(got.get(name)):
                problems.append(f"{k}: attribute {name!r} differs")
    return problems


def _normalise(value: Any) -> Any:
    """Sets compare as sets (DynamoDB does not keep their order)."""
    if not isinstance(value, dict):
        return value
    ((kind, raw),) = value.items()
    if kind in ("SS", "NS", "BS"):
        return {kind: sorted(raw)}
    if kind == "M":
        return {"M": {k: _normalise(v) for k, v in raw.items()}}
    if kind == "L":
        return {"L": [_normalise(v) for v in raw]}
    return value


def digest(item: Item, without: frozenset[str] = frozenset()) -> str:
    """A SHA-256 of an item's canonical DynamoDB JSON (sets sorted): equal items, equal digests.
    ``without`` leaves attributes out (a dynamodb:// copy's bookkeeping, on the copy's side
    only: every attribute a user can see in the source is compared)."""
    canonical = json.dumps(
        to_json_item(_normalise_item(item, without)), sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _normalise_item(item: Item, without: frozenset[str]) -> Item:
    return {name: _normalise(value) for name, value in item.items() if name not in without}


def latest_export(client: Any, bucket: str, prefix: str) -> str | None:
    """The export ``latest.json`` names under ``prefix`` (the last to complete), else the
    newest complete export (one with manifest-summary.json) by name."""
    pointer = "/".join(p for p in (prefix.strip("/"), "latest.json") if p)
    try:
        return str(_get_json(client, bucket, pointer)["location"])
    except client.exceptions.NoSuchKey:
        pass
    base = "/".join(p for p in (prefix.strip("/"), "AWSDynamoDB") if p) + "/"
    complete = [
        obj["Key"].rsplit("/", 1)[0]
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=base)
        for obj in page.get("Contents", [])
        if obj["Key"].endswith("/manifest-summary.json")
    ]
    return f"s3://{bucket}/{max(complete)}/" if complete else None


@dataclass
class Comparison:
    source_items: int
    destination_items: int
    missing: list[str]
    unexpected: list[str]
    different: list[str]
    undecryptable: list[str]
    # Keys the copy holds more than once (an export's stale duplicate line).
    duplicated: list[str] = field(default_factory=list)

    @property
    def matches(self) -> bool:
        lists = (self.missing, self.unexpected, self.different, self.undecryptable)
        return not any(lists) and not self.duplicated


# (typed key identity, the key as described for people, digest: None when undecryptable)
Keyed = tuple[str, str, str | None]


def compare_digests(
    source: Iterable[Keyed], destination: Iterable[Keyed], duplicated: Sequence[str] = ()
) -> Comparison:
    """Items matched by typed key tuple (never by the text of a described key: two crafted
    keys can be described alike); the lists name keys as described. A key the destination
    holds twice is ``duplicated``, as are ``duplicated`` (found while reading it)."""
    wanted: dict[str, str | None] = {}
    names: dict[str, str] = {}
    for identity, name, digest_ in source:
        wanted[identity] = digest_
        names[identity] = name
    got: dict[str, str | None] = {}
    repeated = list(duplicated)
    for identity, name, digest_ in destination:
        if identity in got:
            repeated.append(name)
        got[identity] = digest_
        names.setdefault(identity, name)

    def listed(identities: Iterable[str]) -> list[str]:
        return sorted(names[identity] for identity in identities)

    return Comparison(
        source_items=len(wanted),
        destination_items=len(got),
        missing=listed(k for k, v in wanted.items() if v is not None and k not in got),
        unexpected=listed(k for k in got if k not in wanted),
        different=listed(
            k for k, v in wanted.items() if v is not None and k in got and got[k] != v
        ),
        undecryptable=listed(k for k, v in wanted.items() if v is None),
        duplicated=sorted(repeated),
    )
