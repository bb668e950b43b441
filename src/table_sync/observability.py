"""The Powertools Logger, Metrics and Tracer the function and the CLI share.

Service name, namespace and log level come from the standard POWERTOOLS_* variables (set in
template.yaml's Globals). Nothing here ever logs an item, a plaintext or a credential: log lines
carry counts, names and error codes.

The Tracer is made only where it traces. Powertools' Tracer imports the X-Ray SDK even when
tracing is off (template.yaml's default, the CLI, sam local): about 18 MB of resident memory
and 0.2-0.3 s of cold start that a run with tracing off never uses. So the handler's tracing
decorator decides on its first invocation, by Powertools' own rule (POWERTOOLS_TRACE_DISABLED,
and off outside Lambda), whether to wrap the handler in a Tracer at all.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from aws_lambda_powertools import Logger, Metrics, Tracer

SERVICE = "table-sync"

logger = Logger(service=SERVICE)
metrics = Metrics(namespace="TableSync", service=SERVICE)

Handler = TypeVar("Handler", bound=Callable[..., Any])

# The SDK's loggers, which log every request's and response's body at DEBUG: the copy's
# BatchWriteItem items and Decrypt's Plaintext among them.
# The Encryption SDK's (REENCRYPT_ATTRIBUTES) logs its materials' handling at DEBUG.
SDK_LOGGERS = ("botocore", "boto3", "urllib3", "s3transfer", "awscrt", "aws_encryption_sdk")


def keep_sdk_loggers_above_debug() -> None:
    """botocore, boto3 and urllib3 never log below INFO, whatever the root logger's level.

    Lambda's runtime sets the root logger to the function's application log level, so a
    function at DEBUG would otherwise log decrypted values through botocore. An SDK logger that
    inherits its level (NOTSET) or asks for DEBUG gets INFO, or the root's level if that is
    higher; one set higher than INFO is left as it is. Called on every invocation and by the
    CLI, after whatever configured the root logger.
    """
    floor = max(logging.INFO, logging.getLogger().getEffectiveLevel())
    for name in SDK_LOGGERS:
        sdk = logging.getLogger(name)
        if sdk.level < logging.INFO:
            sdk.setLevel(floor)


def tracing_enabled() -> bool:
    """Whether Powertools' Tracer would trace here and now (its own rule, read at call time)."""
    return not Tracer._is_tracer_disabled()


def capture_lambda_handler(handler: Handler) -> Handler:
    """``Tracer.capture_lambda_handler(capture_response=False)`` around ``handler`` when
    tracing is on; ``handler`` itself when it is off, without importing the X-Ray SDK."""
    chosen: Callable[..., Any] | None = None

    @functools.wraps(handler)
    def run(event: Any, context: Any) -> Any:
        nonlocal chosen
        if chosen is None:  # a function's tracing setting does not change while it runs
            chosen = (
                Tracer(service=SERVICE).capture_lambda_handler(handler, capture_response=False)
                if tracing_enabled()
                else handler
            )
        return chosen(event, context)

    return run  # type: ignore[return-value]


@dataclass
class CallCounter:
    """Counts the calls it is handed, as a botocore event handler (``before-send``: every
    request sent, retries included) or called directly: AssumeRole calls, AccountB's KMS
    requests."""

    calls: int = 0

    def __call__(self, **_: Any) -> None:
        self.calls += 1
