"""An experiment beside `make bench` (not part of it): what a Decrypt costs the client when one
thread multiplexes DECRYPT_CONCURRENCY kept-alive connections (``selectors``), against the
lean KMS client one Decrypt at a time and on threads:

* **sequential**: the lean client, one Decrypt after another on the model without latency;
* **threads**: the lean client on DECRYPT_CONCURRENCY threads on the latency model (how a
  segment sent them before ``decrypt_many``, and how ``KMS_CLIENT=botocore`` still does);
* **lean-multiplexed**: the lean client's own ``decrypt_many`` (how a segment sends them now):
  DECRYPT_CONCURRENCY requests in flight on kept-alive connections from one thread, on the
  latency model;
* **crt-multiplexed**: awscrt's own HTTP client (AWS's native event loop, the issue's other
  allowed HTTP client), DECRYPT_CONCURRENCY connections, each sending its next request from
  the last one's completion callback, on the latency model;
* **raw-sequential**: the multiplexed sender below on one connection, one Decrypt after another
  on the model without latency (the sender's own cost, without http.client and the lean
  client's retry bookkeeping, and still one wait per Decrypt);
* **multiplexed**: one thread, DECRYPT_CONCURRENCY connections, on the latency model;
* **crt-sequential**: awscrt's HTTP client and signer alone, one Decrypt after another from the
  calling thread on one kept-alive connection, on the model without latency: the request as the
  lean client signs it (``LeanJsonClient.signed_request``), sent, waited for and its plaintext
  decoded, and nothing else (no endpoint resolution, retry judgement, error parsing or batch).
  What a sequential lean Decrypt cannot cost less than while it sends through awscrt;
* **botocore-sequential**: botocore's KMS client as ``KMS_CLIENT=botocore`` makes it, one Decrypt
  after another on the model without latency (`make bench`'s denominator for the lean client's
  CPU per Decrypt).

The modes take turns, round by round (the order reversed every other round), in one process
pinned to one core, so each round's figures share this VM's speed of the moment; the ratios
are medians of each round's own.

The multiplexed sender is a measuring device, not a client: plain HTTP, no retries, no
timeouts, no error handling, a response read only as far as its status, Content-Length and
body. It builds each request as the lean client does (the same JSON body,
``kms_lean.decrypt_body``, signed by awscrt through ``LeanJsonClient.signed_request``, the
session's credentials read per request), and every plaintext it gets back is checked against
the model's, so it does the work a Decrypt needs. What it leaves out (retries, timeouts,
error handling and TLS) is not measured here.

Run: ``.venv/bin/python -m bench.multiplexed [rounds] [Decrypts per round]``.
"""

from __future__ import annotations

import base64
import io
import json
import os
import resource
import selectors
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast
from urllib.parse import urlsplit

import boto3
from awscrt import http as crt_http
from awscrt import io as crt_io

from bench.latency_model import HEADER, Table
from bench.scale import FUNCTION_CREDENTIALS, KEY_ARN, REGION, ModelServer, cpus, segment_config
from table_sync.aws.clients import kms_client_config
from table_sync.aws.kms_lean import LeanKmsClient, decrypt_body
from table_sync.models import Settings

MODES = (
    "sequential",
    "threads",
    "lean-multiplexed",
    "crt-multiplexed",
    "raw-sequential",
    "multiplexed",
    "crt-sequential",
    "botocore-sequential",
)


class MultiplexedDecrypts:
    """Decrypts ``blobs`` on ``connections`` kept-alive connections from one thread: each
    connection sends its next request as soon as its response is in."""

    def __init__(self, signer: LeanKmsClient, connections: int) -> None:
        self._signer = signer
        self._endpoint = signer.endpoint("Decrypt")
        url = urlsplit(signer.endpoint_url)
        if url.scheme != "http":
            raise ValueError("the experiment speaks plain HTTP only")
        self._path = url.path or "/"
        self._selector = selectors.DefaultSelector()
        self._sockets = []
        for _ in range(connections):
            sock = socket.create_connection((url.hostname, url.port or 80))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setblocking(False)
            self._sockets.append(sock)

    def close(self) -> None:
        for sock in self._sockets:
            sock.close()
        self._selector.close()

    def _send(self, sock: socket.socket, blob: bytes) -> None:
        body = decrypt_body(blob, KEY_ARN)
        head = "".join(
            f"{k}: {v}\r\n"
            for k, v in list(self._signer.signed_request("Decrypt", body, self._endpoint).headers)
        )
        request = f"POST {self._path} HTTP/1.1\r\n{head}\r\n".encode() + body
        if sock.send(request) != len(request):  # a few hundred bytes into an empty buffer
            raise RuntimeError("a request did not fit the socket's send buffer")

    def decrypt_all(self, blobs: list[bytes]) -> list[bytes]:
        plaintexts: list[bytes] = [b""] * len(blobs)
        queue = list(range(len(blobs) - 1, -1, -1))
        received: dict[socket.socket, tuple[int, bytes]] = {}
        for sock in self._sockets:
            if queue:
                index = queue.pop()
                self._send(sock, blobs[index])
                received[sock] = (index, b"")
                self._selector.register(sock, selectors.EVENT_READ)
        while received:
            for key, _ in self._selector.select():
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                index, buffer = received[sock]
                buffer += sock.recv(65536)
                body = _body(buffer)
                if body is None:
                    received[sock] = (index, buffer)
                    continue
                plaintexts[index] = base64.b64decode(json.loads(body)["Plaintext"])
                if queue:
                    index = queue.pop()
                    self._send(sock, blobs[index])
                    received[sock] = (index, b"")
                else:
                    del received[sock]
                    self._selector.unregister(sock)
        return plaintexts


class CrtMultiplexedDecrypts:
    """The same, on awscrt's HTTP client: ``connections`` HTTP/1.1 connections on one native
    event loop; each request's completion callback (on that loop's thread) starts the
    connection's next request, and the calling thread waits for the last."""

    def __init__(self, signer: LeanKmsClient, connections: int) -> None:
        self._signer = signer
        self._endpoint = signer.endpoint("Decrypt")
        url = urlsplit(signer.endpoint_url)
        self._path = url.path or "/"
        loop = crt_io.EventLoopGroup(1)
        bootstrap = crt_io.ClientBootstrap(loop, crt_io.DefaultHostResolver(loop))
        self._connections = [
            crt_http.HttpClientConnection.new(
                url.hostname or "", url.port or 80, bootstrap=bootstrap
            ).result()
            for _ in range(connections)
        ]

    def close(self) -> None:
        for connection in self._connections:
            connection.close().result()

    def decrypt_all(self, blobs: list[bytes]) -> list[bytes]:
        plaintexts: list[bytes] = [b""] * len(blobs)
        queue = list(range(len(blobs) - 1, -1, -1))
        lock = threading.Lock()
        finished = threading.Event()
        left = [len(blobs)]
        failures: list[BaseException] = []

        def start(connection: crt_http.HttpClientConnection, index: int) -> None:
            body = decrypt_body(blobs[index], KEY_ARN)
            headers = list(self._signer.signed_request("Decrypt", body, self._endpoint).headers)
            request = crt_http.HttpRequest(
                "POST", self._path, crt_http.HttpHeaders(headers), io.BytesIO(body)
            )
            chunks: list[bytes] = []
            stream = connection.request(
                request, on_body=lambda chunk, **_: chunks.append(bytes(chunk))
            )

            def done(future: Any) -> None:
                try:
                    if future.result() != 200:
                        raise RuntimeError(f"the model answered {future.result()}")
                    plaintexts[index] = base64.b64decode(json.loads(b"".join(chunks))["Plaintext"])
                except BaseException as exc:  # reported by decrypt_all
                    failures.append(exc)
                with lock:
                    following = queue.pop() if queue else None
                    left[0] -= 1
                    if left[0] == 0:
                        finished.set()
                if following is not None:
                    start(connection, following)

            stream.completion_future.add_done_callback(done)
            stream.activate()

        with lock:
            firsts = [(c, queue.pop()) for c in self._connections if queue]
        for connection, index in firsts:
            start(connection, index)
        finished.wait()
        if failures:
            raise failures[0]
        return plaintexts


class CrtSequentialDecrypts:
    """One Decrypt after another on one awscrt connection, each sent from the calling thread
    and waited for there: awscrt's client and signer with none of the lean client's logic."""

    def __init__(self, signer: LeanKmsClient) -> None:
        self._signer = signer
        self._endpoint = signer.endpoint("Decrypt")
        loop = crt_io.EventLoopGroup(1)
        bootstrap = crt_io.ClientBootstrap(loop, crt_io.DefaultHostResolver(loop))
        origin = self._endpoint.origin
        self._connection = crt_http.HttpClientConnection.new(
            origin.host, origin.port, bootstrap=bootstrap
        ).result()

    def close(self) -> None:
        self._connection.close().result()

    def decrypt_all(self, blobs: list[bytes]) -> list[bytes]:
        plaintexts = []
        for blob in blobs:
            request = self._signer.signed_request(
                "Decrypt", decrypt_body(blob, KEY_ARN), self._endpoint
            )
            chunks: list[bytes] = []
            stream = self._connection.request(
                request, on_body=lambda chunk, chunks=chunks, **_: chunks.append(bytes(chunk))
            )
            stream.activate()
            if stream.completion_future.result() != 200:
                raise RuntimeError("the model did not answer 200")
            plaintexts.append(base64.b64decode(json.loads(b"".join(chunks))["Plaintext"]))
        return plaintexts


def _body(buffer: bytes) -> bytes | None:
    """A whole 200 response's body, or None while it is still arriving."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        return None
    lines = buffer[:end].split(b"\r\n")
    if lines[0].split()[1] != b"200":
        raise RuntimeError(f"the model answered {lines[0]!r}")
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if len(buffer) < end + 4 + length:
        return None
    return buffer[end + 4 : end + 4 + length]


def _session() -> boto3.Session:
    return boto3.Session(
        aws_access_key_id=FUNCTION_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=FUNCTION_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=FUNCTION_CREDENTIALS["AWS_SESSION_TOKEN"],
        region_name=REGION,
    )


def _lean_client(endpoint: str, settings: Settings) -> LeanKmsClient:
    os.environ["AWS_ENDPOINT_URL"] = endpoint  # read when the client resolves its endpoint
    return LeanKmsClient(_session(), REGION, kms_client_config(settings))


def _botocore_client(endpoint: str, settings: Settings) -> Any:
    config = kms_client_config(settings)
    return _session().client("kms", region_name=REGION, endpoint_url=endpoint, config=config)


def measure(
    fast_endpoint: str, latency_endpoint: str, rounds: int, calls: int, concurrency: int
) -> dict[str, dict[str, float]]:
    """Per mode: the median client CPU per Decrypt (us), the median of each round's ratio to
    the sequential figure, and voluntary context switches per Decrypt."""
    settings = Settings.from_env(segment_config("bench-1", "", 0, 1)["lambda_env"])
    fast = _lean_client(fast_endpoint, settings)
    slow = _lean_client(latency_endpoint, settings)
    multiplexed = MultiplexedDecrypts(_lean_client(latency_endpoint, settings), concurrency)
    raw = MultiplexedDecrypts(_lean_client(fast_endpoint, settings), 1)
    crt = CrtMultiplexedDecrypts(_lean_client(latency_endpoint, settings), concurrency)
    crt_one = CrtSequentialDecrypts(_lean_client(fast_endpoint, settings))
    botocore_kms = _botocore_client(fast_endpoint, settings)
    table = Table.named("bench-1")
    blobs = [HEADER + table.plaintext(i, 0) for i in range(calls)]
    expected = [table.plaintext(i, 0) for i in range(calls)]

    def one(client: Any) -> Callable[[bytes], bytes]:
        return lambda blob: bytes(client.decrypt(CiphertextBlob=blob, KeyId=KEY_ARN)["Plaintext"])

    cpu: dict[str, list[float]] = {mode: [] for mode in MODES}
    switches: dict[str, list[float]] = {mode: [] for mode in MODES}
    with ThreadPoolExecutor(concurrency) as pool:
        runs: dict[str, Callable[[], list[bytes]]] = {
            "sequential": lambda: [one(fast)(blob) for blob in blobs],
            "threads": lambda: list(pool.map(one(slow), blobs)),
            "lean-multiplexed": lambda: [
                bytes(cast(bytes, plaintext))
                for plaintext in slow.decrypt_many(
                    [(blob, None) for blob in blobs], KEY_ARN, concurrency
                )
            ],
            "crt-multiplexed": lambda: crt.decrypt_all(blobs),
            "raw-sequential": lambda: raw.decrypt_all(blobs),
            "multiplexed": lambda: multiplexed.decrypt_all(blobs),
            "crt-sequential": lambda: crt_one.decrypt_all(blobs),
            "botocore-sequential": lambda: [one(botocore_kms)(blob) for blob in blobs],
        }
        for round_ in range(rounds + 1):  # the first warms up (connections, threads, caches)
            for mode in MODES if round_ % 2 == 0 else MODES[::-1]:
                before = resource.getrusage(resource.RUSAGE_SELF).ru_nvcsw
                started = time.process_time()
                plaintexts = runs[mode]()
                spent = time.process_time() - started
                if plaintexts != expected:
                    raise RuntimeError(f"{mode}: a plaintext is not the model's")
                if round_ > 0:
                    cpu[mode].append(1e6 * spent / calls)
                    after = resource.getrusage(resource.RUSAGE_SELF).ru_nvcsw
                    switches[mode].append((after - before) / calls)
    multiplexed.close()
    raw.close()
    crt.close()
    crt_one.close()
    return {
        mode: {
            "cpu_us": statistics.median(cpu[mode]),
            "vs_sequential": statistics.median(
                a / b for a, b in zip(cpu[mode], cpu["sequential"], strict=True)
            ),
            "vs_botocore": statistics.median(
                a / b for a, b in zip(cpu[mode], cpu["botocore-sequential"], strict=True)
            ),
            "switches": statistics.median(switches[mode]),
        }
        for mode in MODES
    }


def main() -> None:
    if sys.argv[1:2] == ["--measure"]:
        fast, slow, rounds, calls, concurrency = sys.argv[2:7]
        print(json.dumps(measure(fast, slow, int(rounds), int(calls), int(concurrency))))
        return
    rounds = sys.argv[1] if len(sys.argv) > 1 else "12"
    calls = sys.argv[2] if len(sys.argv) > 2 else "500"
    concurrency = str(Settings.model_fields["decrypt_concurrency"].default)
    core, _ = cpus()
    with ModelServer(0.0) as fast, ModelServer() as model:
        command = [sys.executable, "-m", "bench.multiplexed", "--measure", fast.endpoint]
        command += [model.endpoint, rounds, calls, concurrency]
        env = {**os.environ, "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION}
        pinned = ["taskset", "-c", str(core)] if core is not None else []
        done = subprocess.run([*pinned, *command], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(done.stderr[-3000:])
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    print(
        f"client CPU per Decrypt, {calls} Decrypts a round, {rounds} rounds, pinned to core "
        f"{core}; {concurrency} threads or connections"
    )
    print(f"{'mode':<20}{'CPU us':>8}{'x sequential':>14}{'x botocore':>12}{'switches':>10}")
    for mode in MODES:
        row = result[mode]
        print(
            f"{mode:<20}{row['cpu_us']:>8.0f}{row['vs_sequential']:>14.2f}"
            f"{row['vs_botocore']:>12.2f}{row['switches']:>10.2f}"
        )


if __name__ == "__main__":
    main()
