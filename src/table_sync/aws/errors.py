"""One place where botocore's errors become table-sync's own.

Every adapter calls AWS inside :func:`translated`: a ``ClientError`` (AWS answered with an error)
and a ``BotoCoreError`` (no usable answer: a timeout, a refused connection, missing credentials
or region, a request botocore would not send) both become the given :class:`TableSyncError`
subclass, with a message that names what was being done and the AWS error code (or botocore's
error class), never a request's values.

``values_in_request=True`` is for calls whose request carries item values (a write of decrypted
items): botocore's messages for those can quote the request (``ParamValidationError`` does), so
the original exception is not chained, and only its code survives.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
)

from table_sync.errors import TableSyncError

T = TypeVar("T")


class DamagedResponse(BotoCoreError):
    """An answer of status 200 without a member the operation always returns (Scan's Items,
    Decrypt's Plaintext): an HTML page from a proxy, or a body that failed its CRC32 check on
    every attempt. Never read as an empty result; its code is this class's name."""

    fmt = "the response has no {member}"


def require(response: Any, *members: str) -> Any:
    """``response`` if it holds every one of ``members``; else :class:`DamagedResponse`."""
    missing = [member for member in members if member not in response]
    if missing:
        raise DamagedResponse(member=" or ".join(missing))
    return response


# A damaged answer is asked for again this many times in all, with capped backoff (base, cap,
# seconds) between the attempts, and then the call fails with the DamagedResponse.
DAMAGED_ATTEMPTS = 4
DAMAGED_BACKOFF = (0.1, 1.0)


def until_undamaged(call: Callable[[], T], sleep: Callable[[float], None]) -> T:
    """``call()``'s result, ``call`` made again while it raises :class:`DamagedResponse`
    (DAMAGED_ATTEMPTS in all); the last attempt's DamagedResponse is raised."""
    base, cap = DAMAGED_BACKOFF
    for attempt in range(1, DAMAGED_ATTEMPTS):
        try:
            return call()
        except DamagedResponse:
            sleep(min(cap, base * 2 ** (attempt - 1)))
    return call()


def error_code(exc: BaseException) -> str:
    """AWS's error code for a ``ClientError``; botocore's class name for anything else."""
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code") or "Unknown")
    return type(exc).__name__


@contextmanager
def translated(
    error: Callable[[str], TableSyncError],
    what: str | Callable[[str], str],
    *,
    hints: dict[str, str] | None = None,
    values_in_request: bool = False,
    passing: str | None = None,
    ignoring: str | None = None,
) -> Iterator[None]:
    """Raise ``error(f"{what} failed: <code><hint>")`` for any botocore error in the block.

    ``what`` may instead be a function of the code that words the whole message; ``hints`` maps
    an error code to a sentence that points at the fix (the setting to check). A ClientError
    whose code is ``passing`` is re-raised as it is, for the caller to handle (an expected
    ConditionalCheckFailedException); one whose code is ``ignoring`` means there was nothing to
    do, and ends the block quietly.
    """
    try:
        yield
    except (ClientError, BotoCoreError) as exc:
        code = error_code(exc)
        if isinstance(exc, ClientError) and code == ignoring:
            return
        if isinstance(exc, ClientError) and code == passing:
            raise
        hint = (hints or {}).get(code, "") or unreachable_hint(exc)
        message = what(code) if callable(what) else f"{what} failed: {code}"
        raised = error(message + hint)
        if values_in_request:
            raise raised from None
        raise raised from exc


def unreachable_hint(exc: BaseException) -> str:
    """For an endpoint nothing answers at: the endpoint, and the setting that chose it."""
    if not isinstance(exc, EndpointConnectionError | ConnectTimeoutError):
        return ""
    url = getattr(exc, "kwargs", {}).get("endpoint_url", "")
    where = f"nothing answers at {url}" if url else "nothing answers at the endpoint"
    if os.environ.get("AWS_ENDPOINT_URL"):
        return f" ({where}: AWS_ENDPOINT_URL names it; unset it to reach AWS itself)"
    return f" ({where}: check AWS_REGION and the network path to AWS)"


def response_item(exc: ClientError) -> dict[str, Any]:
    """The item a failed conditional write returned (ReturnValuesOnConditionCheckFailure)."""
    item: dict[str, Any] = dict(exc.response.get("Item") or {})  # type: ignore[call-overload]
    return item
