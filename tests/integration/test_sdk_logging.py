"""No plaintext reaches a log line when the root logger is at DEBUG, on either client.

A function whose application log level is DEBUG gets a root logger at DEBUG from Lambda's
runtime (and a CLI user may configure one). botocore and urllib3 then log every request and
response body: the copy's BatchWriteItem, Decrypt's Plaintext. The function and the CLI keep
those SDK loggers at INFO or above, whatever the root logger's level.
"""

from __future__ import annotations

import base64
import io
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from table_sync.handler import lambda_handler
from table_sync.observability import SDK_LOGGERS
from table_sync_dev.local.demo import text_plaintexts
from table_sync_dev.local.seed import EmbeddedAws
from tests.conftest import load_event


@pytest.fixture
def root_at_debug() -> Iterator[io.StringIO]:
    """The root logger at DEBUG, everything it receives kept, as Lambda's runtime sets it."""
    stream, root = io.StringIO(), logging.getLogger()
    handler = logging.StreamHandler(stream)
    handler.setLevel(logging.DEBUG)
    previous = root.level, {name: logging.getLogger(name).level for name in SDK_LOGGERS}
    for name in SDK_LOGGERS:  # as a fresh process has them: inheriting the root's level
        logging.getLogger(name).setLevel(logging.NOTSET)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(previous[0])
        for name, level in previous[1].items():
            logging.getLogger(name).setLevel(level)


def _no_plaintext(aws: EmbeddedAws, text: str) -> None:
    logging.getLogger("tests.probe").debug("probe at debug")
    secrets = text_plaintexts(aws)
    assert secrets
    encoded = [base64.b64encode(s.encode()).decode() for s in secrets]
    assert [s for s in secrets + encoded if s in text] == []
    for name in ("botocore", "urllib3", "boto3"):
        assert logging.getLogger(name).getEffectiveLevel() >= logging.INFO, name


@pytest.mark.items(12)
@pytest.mark.parametrize("client", ["lean", "botocore"])
def test_no_plaintext_reaches_a_log_at_debug(
    aws: EmbeddedAws,
    function_env: dict[str, str],
    lambda_context,
    root_at_debug: io.StringIO,
    monkeypatch: pytest.MonkeyPatch,
    client: str,
) -> None:
    monkeypatch.setenv("KMS_CLIENT", client)
    monkeypatch.setenv("DYNAMODB_CLIENT", client)
    summary = lambda_handler(load_event("scheduled-event.json"), lambda_context)
    assert summary["items_written"] == 12
    _no_plaintext(aws, root_at_debug.getvalue())
    assert "probe at debug" in root_at_debug.getvalue()  # the root logger kept DEBUG lines


@pytest.mark.items(12)
def test_no_plaintext_reaches_a_log_at_debug_from_the_cli(
    aws: EmbeddedAws, cli: Any, root_at_debug: io.StringIO
) -> None:
    env = aws.lambda_env(KMS_CLIENT="botocore", DYNAMODB_CLIENT="botocore")
    result = cli({**env, "POWERTOOLS_LOG_LEVEL": "DEBUG"}, "run", "--json")
    assert result.exit_code == 0, result.stderr
    _no_plaintext(aws, root_at_debug.getvalue() + result.stdout + result.stderr)


@pytest.mark.items(12)
def test_no_plaintext_reaches_a_log_at_debug_while_reencrypting(
    aws: EmbeddedAws,
    function_env: dict[str, str],
    lambda_context,
    root_at_debug: io.StringIO,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 30: the Encryption SDK handles every plaintext and data key; it logs at DEBUG."""
    key = aws.account_b().client("kms").create_key()["KeyMetadata"]["Arn"]
    monkeypatch.setenv("REENCRYPT_ATTRIBUTES", "ssn,card")
    monkeypatch.setenv("DESTINATION_ATTRIBUTE_KEY_ARN", key)
    summary = lambda_handler(load_event("scheduled-event.json"), lambda_context)
    assert summary["items_written"] == 12
    _no_plaintext(aws, root_at_debug.getvalue())
    assert logging.getLogger("aws_encryption_sdk").getEffectiveLevel() >= logging.INFO
