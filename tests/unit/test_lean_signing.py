"""The lean clients' SigV4 signatures (aws/lean.py): each request is signed for the time it is
sent. AWS refuses a signature dated more than five minutes before it arrives (Signature
expired), so a request signed with the date of an earlier one fails a run that lasts longer
than that. Nothing is sent here: the headers are read as signed.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import boto3
from botocore.config import Config

from table_sync.aws.lean import LeanJsonClient


def _client() -> LeanJsonClient:
    session = boto3.Session(
        aws_access_key_id="AKIATESTSIGNING",
        aws_secret_access_key="not-a-real-secret",
        region_name="eu-west-1",
    )
    return LeanJsonClient(session, "kms", "eu-west-1", Config(retries={"mode": "standard"}))


def _signed_at(client: LeanJsonClient) -> datetime:
    headers = dict(client.signed_request("Decrypt", b"{}", client.endpoint("Decrypt")).headers)
    return datetime.strptime(headers["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


def test_every_request_is_signed_for_the_time_it_is_sent() -> None:
    client = _client()
    first = _signed_at(client)
    time.sleep(1.1)  # X-Amz-Date counts whole seconds
    before = datetime.now(UTC).replace(microsecond=0)
    second = _signed_at(client)
    # Same credentials, same thread: the signer's cached setup must not pin the date. (It did:
    # every request of a thread carried its first request's date until the credentials changed.)
    assert second > first
    assert before <= second <= datetime.now(UTC)


def test_the_signature_covers_the_body_and_names_the_credentials() -> None:
    client = _client()
    one = dict(client.signed_request("Decrypt", b'{"a":1}', client.endpoint("Decrypt")).headers)
    other = dict(client.signed_request("Decrypt", b'{"a":2}', client.endpoint("Decrypt")).headers)
    assert one["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIATESTSIGNING/")
    assert "/eu-west-1/kms/aws4_request" in one["Authorization"]
    assert one["Authorization"] != other["Authorization"]  # the body's hash is signed


def test_the_signature_is_the_one_botocore_computes_for_the_same_request() -> None:
    """awscrt hashes the body from the request's stream, and a setup is reused within its
    second: the Authorization header must still be exactly botocore's SigV4 for that request,
    at that time, over those bytes."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    client = _client()
    endpoint = client.endpoint("Decrypt")
    for body in (b'{"KeyId":"k","CiphertextBlob":"AAAA"}', b"{}", b'{"KeyId":"other"}'):
        request = client.signed_request("Decrypt", body, endpoint)
        signed = dict(request.headers)
        names = ("Host", "Content-Type", "X-Amz-Target", "Content-Length")
        expected = AWSRequest("POST", endpoint.url, {n: signed[n] for n in names}, body)
        signer = SigV4Auth(Credentials("AKIATESTSIGNING", "not-a-real-secret"), "kms", "eu-west-1")
        expected.context["timestamp"] = signed["X-Amz-Date"]
        signer.add_auth(expected)
        assert signed["Authorization"] == expected.headers["Authorization"]
