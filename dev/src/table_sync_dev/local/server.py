"""Start and stop a moto server (``python -m moto.server``) in its own process."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

_CREDENTIAL = re.compile(r"Credential=(?P<key>[^/]+)/[^/]+/[^/]+/(?P<service>[^/]+)/")
_S3_OPERATIONS = {
    "PUT": "PutObject",
    "GET": "GetObject",
    "HEAD": "HeadObject",
    "DELETE": "DeleteObject",
}


@dataclass(frozen=True)
class RecordedCall:
    """One request the server received: which service, which operation, whose access key."""

    service: str
    operation: str
    access_key: str
    body: str = field(default="", repr=False)  # the request's body, as text

    @property
    def name(self) -> str:
        return f"{self.service}:{self.operation}"


def _recorded_entries(text: str) -> Iterator[dict[str, Any]]:
    """The recorder's entries. moto writes each as JSON and then its newline in a second
    write, so requests answered at the same time can leave two entries on one line."""
    decoder = json.JSONDecoder()
    position = 0
    while True:
        while position < len(text) and text[position].isspace():
            position += 1
        if position == len(text):
            return
        entry, position = decoder.raw_decode(text, position)
        yield entry


def _parse_recorded(entry: dict[str, object]) -> RecordedCall | None:
    headers = {k.lower(): str(v) for k, v in dict(entry.get("headers") or {}).items()}  # type: ignore[call-overload]
    match = _CREDENTIAL.search(headers.get("authorization", ""))
    if not match:
        return None  # moto-api calls and anything unsigned
    service, key = match["service"], match["key"]
    body = str(entry.get("body") or "")
    if entry.get("body_encoded"):
        body = base64.b64decode(body).decode("utf-8", "replace")
    if "x-amz-target" in headers:
        return RecordedCall(service, headers["x-amz-target"].rsplit(".", 1)[-1], key, body)
    action = urllib.parse.parse_qs(body).get("Action") or urllib.parse.parse_qs(
        urllib.parse.urlparse(str(entry.get("url", ""))).query
    ).get("Action")
    if action:
        return RecordedCall(service, action[0], key, body)
    method = str(entry.get("method", ""))
    return RecordedCall(
        service, _S3_OPERATIONS.get(method, method) if service == "s3" else method, key, body
    )


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class MotoServer:
    """A moto server on ``host``:``port`` (loopback by default), stopped on exit."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int | None = None,
        *,
        python: str = sys.executable,
        log_file: Path | None = None,
    ) -> None:
        self.host = host
        self.port = port or free_port(host)
        self._python = python
        self._log_file = log_file
        self._process: subprocess.Popen[bytes] | None = None
        self._recording = Path(tempfile.mkdtemp(prefix="moto-")) / "recording.jsonl"

    @property
    def endpoint(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host  # noqa: S104
        return f"http://{host}:{self.port}"

    def start(self, timeout: float = 30.0) -> MotoServer:
        env = dict(os.environ)
        # IAM enforcement is switched on and off at run time (see enforce_iam); start with it off.
        env.pop("INITIAL_NO_AUTH_ACTION_COUNT", None)
        env["MOTO_RECORDER_FILEPATH"] = str(self._recording)
        output = open(self._log_file, "ab") if self._log_file else subprocess.DEVNULL  # noqa: SIM115
        self._process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [
                self._python,
                "-m",
                "table_sync_dev.local.moto_main",
                "-H",
                self.host,
                "-p",
                str(self.port),
            ],
            stdout=output,
            stderr=subprocess.STDOUT,
            env=env,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"moto server exited with code {self._process.returncode}")
            with contextlib.suppress(OSError):
                self._request("GET", "/moto-api/data.json", timeout=1)
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"moto server did not answer on {self.endpoint} within {timeout}s")

    def stop(self) -> None:
        if self._process and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    def reset(self) -> None:
        """Forget every resource in every account (assumed-role keys stop working: re-assume)."""
        self._request("POST", "/moto-api/reset")

    @contextlib.contextmanager
    def recording(self) -> Iterator[list[RecordedCall]]:
        """Record every signed request the server receives inside the block (filled on exit)."""
        calls: list[RecordedCall] = []
        self._request("POST", "/moto-api/recorder/reset-recording")
        self._request("POST", "/moto-api/recorder/start-recording")
        try:
            yield calls
        finally:
            self._request("POST", "/moto-api/recorder/stop-recording")
            text = self._recording.read_text() if self._recording.exists() else ""
            for entry in _recorded_entries(text):
                parsed = _parse_recorded(entry)
                if parsed is not None:
                    calls.append(parsed)

    def enforce_iam(self, enabled: bool) -> None:
        """Turn moto's IAM policy enforcement on or off for every following request."""
        self._request("POST", "/moto-api/reset-auth", body=b"0" if enabled else b"inf")

    @contextlib.contextmanager
    def iam_enforced(self) -> Iterator[None]:
        self.enforce_iam(True)
        try:
            yield
        finally:
            self.enforce_iam(False)

    def _request(
        self, method: str, path: str, body: bytes | None = None, timeout: float = 10
    ) -> object:
        # A content type Flask will not parse as a form, so moto reads the raw body.
        headers = {"Content-Type": "application/octet-stream"}
        request = urllib.request.Request(  # noqa: S310
            self.endpoint + path, data=body, method=method, headers=headers
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - loopback
            payload = response.read()
        return json.loads(payload) if payload.strip().startswith((b"{", b"[")) else payload

    def __enter__(self) -> MotoServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
