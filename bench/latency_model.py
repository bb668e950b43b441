"""A latency-model AWS for the scale benchmark: the few calls a sync makes, each answered after
a fixed delay, with next to no CPU of its own.

moto cannot go to a million items (its Scan re-walks the table for every page, on one core), and
what matters at scale is how the client overlaps waiting and how much CPU it spends, not what
the server does. So this server holds no data: ``my-table`` is generated on the fly from the
item's index, every ciphertext is distinct and carries its plaintext after a fixed header (as
long as a real KMS ciphertext of a short secret), and writes are counted, not stored.

Served, over real HTTP/1.1 with keep-alive (one asyncio thread, a Protocol, no framework):

* STS ``AssumeRole`` (query protocol, XML);
* DynamoDB ``Scan`` (1 MB pages; ``Segment``/``TotalSegments``; ``ExclusiveStartKey``),
  ``BatchWriteItem`` (PutRequests counted, decrypted ones counted apart), ``BatchGetItem``
  (no copies: every item has changed), ``DescribeTable``,
  and ``GetItem``/``PutItem``/``DeleteItem`` for the state table (kept in memory, every write
  succeeds), ``GetItem`` of a source item (the sweep's confirmation);
* a copy table named ``mirror-*`` is kept: its puts, deletes, digests (BatchGetItem) and key
  Scan, for the nightly mirror; ``POST /_model/change`` ({"table", "every", "delete_every"})
  updates every ``every``-th source item and deletes every ``delete_every``-th;
* KMS ``Decrypt``, and ``GenerateDataKey`` (AccountB's key, for REENCRYPT_ATTRIBUTES);
* S3 ``PutObject`` (bytes counted; data files' lines counted).

``GET /_model/stats`` returns the counters.

Run: ``python -m bench.latency_model [--latency-scale 0]`` prints ``listening <port>``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import bisect
import gzip
import json
import os
import re
import sys
import zlib
from collections import Counter
from dataclasses import dataclass, field
from functools import cache
from typing import Any

# The source table's name says its size, and whether its ciphertexts repeat: ``bench-100000``
# has 100,000 items with distinct ciphertexts, ``bench-1000000-pool1000`` a million items whose
# ciphertexts are 1,000 values repeated (what KMS_CACHE_SIZE is for).
TABLE_NAME = re.compile(r"^bench-(\d+)(?:-pool(\d+))?$")
# A KMS ciphertext of a short secret under a symmetric key is about 150-200 bytes: a header
# naming the key, an IV, the encrypted payload and a tag. This one is a fixed 160-byte header
# followed by the plaintext, so Decrypt needs no lookup and no state.
HEADER = b"TSBENCH1" + bytes(range(152))
ITEM_BYTES_OVERHEAD = 100  # DynamoDB counts attribute names and per-item overhead too
PAGE_BYTES = 1024 * 1024  # Scan's page limit


@dataclass
class Latency:
    """Per-call latency in seconds, near what AWS shows inside a region."""

    scan: float = 0.050  # one 1 MB Scan page
    decrypt: float = 0.005
    batch_write: float = 0.010
    put_item: float = 0.008  # state-table writes and the naive script's PutItem
    s3_put: float = 0.030  # plus s3_per_mb for each MB of body
    s3_per_mb: float = 0.010
    other: float = 0.010  # STS, DescribeTable, GetItem, DeleteItem

    def scaled(self, factor: float) -> Latency:
        return Latency(**{k: v * factor for k, v in vars(self).items()})


@dataclass(frozen=True)
class Table:
    """``items`` generated items; item ``i`` is ``item#<i:07d>``; segment ``s`` of ``T`` holds
    items ``[items*s//T, items*(s+1)//T)``. With ``pool``, item ``i`` carries the ciphertexts of
    item ``i % pool``."""

    name: str
    items: int
    pool: int | None = None
    encrypted: tuple[str, ...] = ("ssn", "api_secret")

    @staticmethod
    @cache
    def named(name: str) -> Table:
        match = TABLE_NAME.match(name)
        if not match:
            raise ValueError(f"table {name!r}: the model serves bench-<items>[-pool<n>]")
        return Table(name, int(match[1]), int(match[2]) if match[2] else None)

    def plaintext(self, index: int, attribute: int, generation: int = 0) -> bytes:
        if self.pool:
            index %= self.pool
        return f"{index % 900 + 100:03d}-{attribute:02d}-{index:07d}-{generation}".encode()

    @property
    def item_bytes(self) -> int:
        plain = len(self.plaintext(0, 0))
        return ITEM_BYTES_OVERHEAD + len(self.encrypted) * (len(HEADER) + plain)

    @property
    def page_items(self) -> int:
        return PAGE_BYTES // self.item_bytes

    def segment_range(self, segment: int, total: int) -> tuple[int, int]:
        return self.items * segment // total, self.items * (segment + 1) // total

    def item_json(self, index: int, generation: int = 0) -> str:
        fields = [
            f'"pk":{{"S":"item#{index:07d}"}}',
            f'"n":{{"N":"{index}"}}',
            f'"note":{{"S":"row {index} of the latency model"}}',
        ]
        for a, name in enumerate(self.encrypted):
            blob = base64.b64encode(HEADER + self.plaintext(index, a, generation)).decode()
            fields.append(f'"{name}":{{"B":"{blob}"}}')
        return "{" + ",".join(fields) + "}"

    def scan(self, request: dict[str, Any], change: Change | None = None) -> tuple[bytes, int]:
        total = int(request.get("TotalSegments", 1))
        first, end = self.segment_range(int(request.get("Segment", 0)), total)
        start_key = request.get("ExclusiveStartKey")
        if start_key:
            first = int(start_key["pk"]["S"].split("#", 1)[1]) + 1
        limit = min(int(request.get("Limit") or self.page_items), self.page_items)
        last = min(first + limit, end)
        if change is None:
            rows = [self.item_json(i) for i in range(first, last)]
        else:
            rows = [
                self.item_json(i, change.generation(i))
                for i in range(first, last)
                if not change.deleted(i)
            ]
        body = '{"Items":[' + ",".join(rows) + "]"
        body += f',"Count":{len(rows)},"ScannedCount":{last - first}'
        if request.get("ReturnConsumedCapacity") == "TOTAL":
            units = (last - first) * self.item_bytes / 4096 / 2
            body += f',"ConsumedCapacity":{{"TableName":"{self.name}","CapacityUnits":{units}}}'
        if last < end:
            body += f',"LastEvaluatedKey":{{"pk":{{"S":"item#{last - 1:07d}"}}}}'
        return (body + "}").encode(), last - first


@dataclass(frozen=True)
class Change:
    """What changed in a table since its first generation (``POST /_model/change``): every
    ``every``-th item updated (a new ciphertext), and every ``delete_every``-th deleted."""

    every: int
    delete_every: int

    def generation(self, index: int) -> int:
        return 1 if index % self.every == 0 else 0

    def deleted(self, index: int) -> bool:
        return index % self.delete_every == self.delete_every // 2


# Copy tables whose name starts with this keep what is written to them (the nightly mirror's
# digests); every other copy only counts its writes.
KEPT_COPY_PREFIX = "mirror-"


@dataclass
class Model:
    latency: Latency
    stats: Counter[str] = field(default_factory=Counter)
    changes: dict[str, Change] = field(default_factory=dict)
    # Kept copies (pk -> item as written), and the state tables' records (id -> item).
    copies: dict[str, dict[str, Any]] = field(default_factory=dict)
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    # The kept copy's keys by (table, Segment, TotalSegments), sorted.
    _segments: dict[tuple[str, int, int], list[str]] = field(default_factory=dict)

    def _dynamodb(self, op: str, body: bytes) -> tuple[int, str, bytes, float] | None:
        """The calls of a kept copy, the state table and the source's GetItem; None for the
        rest (answered as before)."""
        lat = self.latency
        request = json.loads(body) if op in ("GetItem", "PutItem", "DeleteItem") else None
        if request is not None:
            name = request["TableName"]
            source = TABLE_NAME.match(name)
            if source and op == "GetItem":  # the sweep confirming a deletion
                index = int(request["Key"]["pk"]["S"].split("#", 1)[1])
                change = self.changes.get(name)
                gone = index >= Table.named(name).items or (change and change.deleted(index))
                answer = {} if gone else {"Item": {"pk": request["Key"]["pk"]}}
                return 200, JSON, json.dumps(answer).encode(), lat.other
            if not source and "id" in request.get("Item", request.get("Key", {})):
                record_id = request.get("Item", request.get("Key"))["id"]["S"]
                if op == "PutItem":
                    self.records[record_id] = request["Item"]
                    return 200, JSON, b"{}", lat.put_item
                if op == "DeleteItem":
                    self.records.pop(record_id, None)
                    return 200, JSON, b"{}", lat.other
                found = self.records.get(record_id)
                return 200, JSON, json.dumps({"Item": found} if found else {}).encode(), lat.other
            return None
        if op in ("BatchWriteItem", "BatchGetItem", "Scan") and b'"mirror-' in body:
            return self._kept_copy(op, json.loads(body))
        return None

    def _copy_keys(self, table: str, segment: int, total: int) -> list[str]:
        """The kept copy's keys in one scan segment, sorted (kept up to date by writes)."""
        found = self._segments.get((table, segment, total))
        if found is None:
            found = sorted(k for k in self.copies if zlib.crc32(k.encode()) % total == segment)
            self._segments[(table, segment, total)] = found
        return found

    def _keys_changed(self, key: str, *, added: bool) -> None:
        """Keep the sorted segment lists in step with a key put (new) or deleted."""
        for (_, segment, total), keys in self._segments.items():
            if zlib.crc32(key.encode()) % total != segment:
                continue
            at = bisect.bisect_left(keys, key)
            present = at < len(keys) and keys[at] == key
            if added and not present:
                keys.insert(at, key)
            elif not added and present:
                del keys[at]

    def _kept_copy(self, op: str, request: dict[str, Any]) -> tuple[int, str, bytes, float]:
        lat = self.latency
        if op == "BatchWriteItem":
            ((name, writes),) = request["RequestItems"].items()
            for write in writes:
                if "PutRequest" in write:
                    item = write["PutRequest"]["Item"]
                    if item["pk"]["S"] not in self.copies:
                        self._keys_changed(item["pk"]["S"], added=True)
                    self.copies[item["pk"]["S"]] = item
                    self.stats["items_put"] += 1
                else:
                    key = write["DeleteRequest"]["Key"]["pk"]["S"]
                    if self.copies.pop(key, None) is not None:
                        self._keys_changed(key, added=False)
                    self.stats["items_deleted"] += 1
            return 200, JSON, b'{"UnprocessedItems":{}}', lat.batch_write
        if op == "BatchGetItem":
            ((name, wanted),) = request["RequestItems"].items()
            found = []
            for key in wanted["Keys"]:
                copy = self.copies.get(key["pk"]["S"])
                if copy is not None and "_table_sync_digest" in copy:
                    found.append(
                        {"pk": copy["pk"], "_table_sync_digest": copy["_table_sync_digest"]}
                    )
            answer = {"Responses": {name: found}, "UnprocessedKeys": {}}
            return 200, JSON, json.dumps(answer).encode(), lat.other
        # Scan of the copy's keys (the sweep): 10,000 keys a page, in key order within a segment
        # (Segment/TotalSegments: a key's segment is its CRC-32 modulo TotalSegments).
        keys = self._copy_keys(
            request["TableName"],
            int(request.get("Segment", 0)),
            int(request.get("TotalSegments", 1)),
        )
        start = request.get("ExclusiveStartKey", {}).get("pk", {}).get("S")
        first = bisect.bisect_right(keys, start) if start else 0
        page = keys[first : first + 10_000]
        answer: dict[str, Any] = {"Items": [{"pk": {"S": k}} for k in page], "Count": len(page)}
        if first + len(page) < len(keys):
            answer["LastEvaluatedKey"] = {"pk": {"S": page[-1]}}
        return 200, JSON, json.dumps(answer).encode(), lat.scan

    def answer(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, str, bytes, float]:
        """(status, content type, body, delay) for one request."""
        target = headers.get("x-amz-target", "")
        lat = self.latency
        if path == "/_model/stats":
            return 200, "application/json", json.dumps(self.stats).encode(), 0.0
        if path == "/_model/change":
            request = json.loads(body)
            self.changes[request["table"]] = Change(request["every"], request["delete_every"])
            return 200, "application/json", b"{}", 0.0
        if target.startswith("TrentService."):
            op = target.split(".", 1)[1]
            self.stats[f"kms.{op}"] += 1
            if op == "GenerateDataKey":  # AccountB's key, for REENCRYPT_ATTRIBUTES
                return _generate_data_key(json.loads(body), lat.decrypt)
            if op != "Decrypt":
                return _error(f"{op} is not modelled")
            request = json.loads(body)
            blob = base64.b64decode(request["CiphertextBlob"])
            if not blob.startswith(HEADER):
                return 400, JSON, b'{"__type":"InvalidCiphertextException"}', lat.decrypt
            plaintext = base64.b64encode(blob[len(HEADER) :]).decode()
            key = request.get("KeyId", "arn:aws:kms:eu-west-1:111111111111:key/bench")
            return (
                200,
                JSON,
                (
                    f'{{"KeyId":"{key}","Plaintext":"{plaintext}",'
                    '"EncryptionAlgorithm":"SYMMETRIC_DEFAULT"}'
                ).encode(),
                lat.decrypt,
            )
        if target.startswith("DynamoDB_20120810."):
            op = target.split(".", 1)[1]
            self.stats[f"dynamodb.{op}"] += 1
            answered = self._dynamodb(op, body)
            if answered is not None:
                return answered
            if op == "Scan":
                request = json.loads(body)
                name = request["TableName"]
                payload, count = Table.named(name).scan(request, self.changes.get(name))
                self.stats["items_scanned"] += count
                return 200, JSON, payload, lat.scan
            if op == "BatchWriteItem":
                self.stats["items_put"] += body.count(b'"PutRequest"')
                self.stats["plaintexts_put"] += _plaintexts(body)
                self.stats["reencrypted_put"] += _reencrypted(body)
                return 200, JSON, b'{"UnprocessedItems":{}}', lat.batch_write
            if op == "PutItem":
                if b'"pk"' in body:  # the naive script's copy (the state table's key is id)
                    self.stats["items_put"] += 1
                    self.stats["plaintexts_put"] += _plaintexts(body)
                return 200, JSON, b"{}", lat.put_item
            if op in ("GetItem", "DeleteItem"):
                return 200, JSON, b"{}", lat.other
            if op == "BatchGetItem":  # the copies' digests: none stored, every item changed
                name = next(iter(json.loads(body)["RequestItems"]))
                answer = {"Responses": {name: []}, "UnprocessedKeys": {}}
                return 200, JSON, json.dumps(answer).encode(), lat.other
            if op == "DescribeTable":
                name = json.loads(body)["TableName"]
                return 200, JSON, _describe(name), lat.other
            return _error(f"DynamoDB {op} is not modelled")
        if method == "POST" and b"Action=AssumeRole" in body:
            self.stats["sts.AssumeRole"] += 1
            return 200, "text/xml", ASSUME_ROLE, lat.other
        if method == "PUT":
            self.stats["s3.PutObject"] += 1
            self.stats["s3_bytes"] += len(body)
            if path.endswith(".json.gz"):
                self.stats["s3_lines"] += gzip.decompress(body).count(b"\n")
            delay = lat.s3_put + lat.s3_per_mb * len(body) / 1e6
            return 200, "application/xml", b"", delay
        return _error(f"{method} {path} {target} is not modelled")


JSON = "application/x-amz-json-1.0"


def _plaintexts(body: bytes) -> int:
    """Decrypted copies in a write: they hold ``ssn`` as a String (a ciphertext is Binary),
    whichever separators the client's JSON uses."""
    return body.count(b'"ssn": {"S"') + body.count(b'"ssn":{"S"')


def _reencrypted(body: bytes) -> int:
    """Copies whose ``ssn`` is written re-encrypted (an Encryption SDK message: Binary that
    starts with version 2's byte, base64 ``Ag``), not as the source's ciphertext (``TSBE``)."""
    return body.count(b'"ssn": {"B": "Ag') + body.count(b'"ssn":{"B":"Ag')


def _generate_data_key(request: dict[str, Any], delay: float) -> tuple[int, str, bytes, float]:
    """A data key, random, and its "ciphertext": the header and the key (Decrypt returns it)."""
    key = os.urandom(int(request.get("NumberOfBytes", 32)))
    answer = {
        "KeyId": request["KeyId"],
        "Plaintext": base64.b64encode(key).decode(),
        "CiphertextBlob": base64.b64encode(HEADER + key).decode(),
    }
    return 200, JSON, json.dumps(answer).encode(), delay


def _error(message: str) -> tuple[int, str, bytes, float]:
    return 400, JSON, json.dumps({"__type": "ValidationException", "message": message}).encode(), 0


def _describe(name: str) -> bytes:
    table = {
        "TableName": name,
        "TableStatus": "ACTIVE",
        "TableArn": f"arn:aws:dynamodb:eu-west-1:222222222222:table/{name}",
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
    }
    return json.dumps({"Table": table}).encode()


ASSUME_ROLE = b"""<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
<AssumeRoleResult><Credentials>
<AccessKeyId>ASIABENCHBENCHBENCH1</AccessKeyId>
<SecretAccessKey>bench-secret-access-key-bench-secret-access</SecretAccessKey>
<SessionToken>bench-session-token</SessionToken>
<Expiration>2099-01-01T00:00:00Z</Expiration>
</Credentials><AssumedRoleUser>
<AssumedRoleId>AROABENCH:bench</AssumedRoleId>
<Arn>arn:aws:sts::111111111111:assumed-role/my-table-reader/bench</Arn>
</AssumedRoleUser></AssumeRoleResult>
<ResponseMetadata><RequestId>bench</RequestId></ResponseMetadata></AssumeRoleResponse>"""


class _Connection(asyncio.Protocol):
    def __init__(self, model: Model) -> None:
        self._model = model
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None
        self._continued = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while True:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            lines = bytes(self._buffer[:end]).decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0"))
            if len(self._buffer) < end + 4 + length:
                if headers.get("expect", "").lower() == "100-continue" and not self._continued:
                    self._continued = True
                    assert self._transport is not None
                    self._transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                return
            body = bytes(self._buffer[end + 4 : end + 4 + length])
            del self._buffer[: end + 4 + length]
            self._continued = False
            try:
                status, ctype, payload, delay = self._model.answer(method, path, headers, body)
            except Exception as exc:  # a bug in the model: say so to the client, and go on
                status, ctype, payload, delay = _error(f"model error: {exc!r}")
            response = (
                f"HTTP/1.1 {status} {'OK' if status == 200 else 'Error'}\r\n"
                f"Content-Type: {ctype}\r\nContent-Length: {len(payload)}\r\n"
                'x-amzn-RequestId: bench\r\nETag: "bench"\r\n\r\n'
            ).encode() + payload
            if delay > 0:
                asyncio.get_running_loop().call_later(delay, self._send, response)
            else:
                self._send(response)

    def _send(self, response: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(response)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None


async def serve(model: Model, host: str = "127.0.0.1", port: int = 0) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Connection(model), host, port, backlog=1024)
    print(f"listening {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--latency-scale", type=float, default=1.0, help="multiply every latency (0: none)"
    )
    args = parser.parse_args(argv)
    model = Model(Latency().scaled(args.latency_scale))
    try:
        asyncio.run(serve(model, port=args.port))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
