"""DynamoDB's per-page calls without botocore's per-call machinery (``DYNAMODB_CLIENT=lean``).

After the lean Decrypt (kms_lean.py), most of a segment's CPU beyond the scan and the Decrypts
went to botocore's handling of three calls: parsing a Scan page by walking every attribute value
through the operation's shapes, and serialising BatchWriteItem and BatchGetItem the same way
(bench/: about 16 us and 24 us an item, against 2-4 us for the standard library's ``json``).
:class:`LeanDynamoDBClient` sends those three through
:class:`~table_sync.aws.lean.LeanJsonClient` (awscrt's signer, the standard library's HTTP,
botocore's endpoint, retries, CRC32 check and errors) and hands every other method to the
botocore client it wraps, so callers use it as that client.

What it returns is what botocore's parser returns for these operations, ``ResponseMetadata``
aside (which nothing here reads): numbers as strings, binary (``B``, ``BS``, nested in ``M``
and ``L``) as bytes. Binary in a request must be ``bytes`` (every item in table-sync is); any
other value a JSON encoder cannot write fails the call before it is sent, naming its type.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import Any

import boto3

from table_sync.aws.lean import LeanJsonClient

Item = dict[str, Any]
_b64decode = base64.b64decode


class LeanDynamoDBClient:
    """``client``, with ``scan``, ``batch_write_item`` and ``batch_get_item`` sent lean."""

    def __init__(self, client: Any, session: boto3.Session) -> None:
        self._client = client
        self._lean = LeanJsonClient(
            session, "dynamodb", client.meta.region_name, client.meta.config, botocore_client=client
        )
        self.meta = client.meta

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def scan(self, **params: Any) -> dict[str, Any]:
        response = self._call("Scan", params)
        for item in response.get("Items", ()):
            _item_blobs(item)
        if "LastEvaluatedKey" in response:
            _item_blobs(response["LastEvaluatedKey"])
        return response

    def batch_get_item(self, **params: Any) -> dict[str, Any]:
        return _got(self._call("BatchGetItem", params))

    def batch_get_item_many(
        self, requests: Sequence[dict[str, Any]], concurrency: int
    ) -> list[dict[str, Any] | Exception]:
        """Each ``RequestItems``'s BatchGetItem, up to ``concurrency`` in flight at once from
        this thread (``LeanJsonClient.call_many``): an answer, or the error its call raised."""
        bodies = [_body({"RequestItems": request}) for request in requests]
        params = {"RequestItems": requests[0]} if requests else None  # the endpoint's table
        return [
            result if isinstance(result, Exception) else _got(_parsed(result))
            for result in self._lean.call_many("BatchGetItem", bodies, concurrency, params=params)
        ]

    def batch_write_item(self, **params: Any) -> dict[str, Any]:
        response = self._call("BatchWriteItem", params)
        for requests in response.get("UnprocessedItems", {}).values():
            for request in requests:
                if "PutRequest" in request:
                    _item_blobs(request["PutRequest"]["Item"])
                if "DeleteRequest" in request:
                    _item_blobs(request["DeleteRequest"]["Key"])
        for metrics in response.get("ItemCollectionMetrics", {}).values():
            for metric in metrics:
                _item_blobs(metric.get("ItemCollectionKey", {}))
        return response

    def _call(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        return _parsed(self._lean.call(operation, _body(params), params))


def _body(params: dict[str, Any]) -> bytes:
    return json.dumps(params, separators=(",", ":"), default=_blob).encode()


def _parsed(data: bytes) -> dict[str, Any]:
    try:
        response: dict[str, Any] = json.loads(data)
    except ValueError:  # a 200 that is no JSON (an HTML page from a proxy): no members
        return {}
    return response


def _got(response: dict[str, Any]) -> dict[str, Any]:
    """A BatchGetItem answer, its binary values decoded."""
    for items in response.get("Responses", {}).values():
        for item in items:
            _item_blobs(item)
    for request in response.get("UnprocessedKeys", {}).values():
        for key in request.get("Keys", ()):
            _item_blobs(key)
    return response


def _blob(value: Any) -> str:
    """A request's binary value as the JSON protocol sends it: base64."""
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode()
    raise TypeError(f"cannot send a {type(value).__name__} to DynamoDB (binary must be bytes)")


def _item_blobs(item: Item) -> None:
    """Decode an item's binary values (base64 on the wire) to bytes, in place."""
    for value in item.values():
        _value_blobs(value)


def _value_blobs(value: Item) -> None:
    for kind, raw in value.items():
        if kind == "B":
            value["B"] = _b64decode(raw)
        elif kind == "M":
            _item_blobs(raw)
        elif kind == "L":
            for element in raw:
                _value_blobs(element)
        elif kind == "BS":
            value["BS"] = [_b64decode(b) for b in raw]
