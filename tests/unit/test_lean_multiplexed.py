"""``LeanJsonClient.call_many``: many calls in flight from one thread, each made as ``call``
makes it (retried, timed out and resent as botocore would), results in order.

The endpoint is a local HTTP/1.1 server whose answer each request body chooses (a delay, a
throttling error on the first attempt, no answer at all, a closed connection); nothing reaches
AWS. The faults are the server's own doing: moto produces none of them.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ReadTimeoutError

from table_sync.aws.lean import LeanJsonClient
from tests.unit.local_server import CountingHandler, CountingServer, serving


class _Server(CountingServer):
    def __init__(self) -> None:
        super().__init__(_Handler)
        self.in_flight = 0
        self.most_in_flight = 0
        self.attempts: Counter[int] = Counter()
        self.answered = 0  # counted before the answer is written


class _Handler(CountingHandler):
    server: _Server

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        call = json.loads(body)
        with self.server.lock:
            self.server.attempts[call["n"]] += 1
            attempt = self.server.attempts[call["n"]]
            self.server.in_flight += 1
            self.server.most_in_flight = max(self.server.most_in_flight, self.server.in_flight)
        try:
            time.sleep(call.get("delay", 0))
            if call.get("silent"):
                time.sleep(2)  # longer than the client's read timeout
                return
            if call.get("truncate_first") and attempt == 1:
                self._truncated({"n": call["n"], "padding": "x" * 64})
                return
            if call.get("throttle_first") and attempt == 1:
                self._answer(400, {"__type": "ThrottlingException", "message": "slow down"})
                return
            self._answer(200, {"n": call["n"]})
            if call.get("close_after"):
                self.close_connection = True  # without saying so: the client finds it stale
        finally:
            with self.server.lock:
                self.server.in_flight -= 1

    def _truncated(self, payload: dict[str, object]) -> None:
        """The whole Content-Length promised, half the body sent, then the connection closed."""
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[: len(data) // 2])
        self.wfile.flush()
        self.close_connection = True

    def _answer(self, status: int, payload: dict[str, object]) -> None:
        with self.server.lock:
            self.server.answered += 1
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Server]:
    with serving(_Server(), monkeypatch) as served:
        yield served


def _client(**config: object) -> LeanJsonClient:
    session = boto3.Session(
        aws_access_key_id="AKIATESTMANY", aws_secret_access_key="x", region_name="eu-west-1"
    )
    settings = Config(**{"retries": {"mode": "standard", "total_max_attempts": 3}, **config})
    return LeanJsonClient(session, "kms", "eu-west-1", settings)


def _bodies(count: int, **behaviour: object) -> list[bytes]:
    return [json.dumps({"n": n, **behaviour}).encode() for n in range(count)]


def test_calls_are_in_flight_together_and_answered_in_order(server: _Server) -> None:
    results = _client().call_many("Decrypt", _bodies(40, delay=0.05), concurrency=8)
    assert [json.loads(result)["n"] for result in results] == list(range(40))  # type: ignore[arg-type]
    assert server.most_in_flight == 8
    assert server.connections == 8  # each kept alive and reused for the next call


def test_each_body_is_made_when_its_call_is_first_sent_and_kept_for_its_retry(
    server: _Server,
) -> None:
    """A page's Decrypt bodies are made one by one as their calls go out, not all before the
    first is sent (the sends then wait for none, and only the calls in flight hold theirs).
    Before this, call_many made every body first: the 5th was made before any answer."""
    made: Counter[int] = Counter()
    answered_when_made: dict[int, int] = {}

    class Bodies:
        def __len__(self) -> int:
            return 12

        def __getitem__(self, index: int) -> bytes:
            if not 0 <= index < 12:
                raise IndexError(index)
            made[index] += 1
            answered_when_made.setdefault(index, server.answered)
            return json.dumps({"n": index, "throttle_first": True, "delay": 0.02}).encode()

    results = _client().call_many("Decrypt", Bodies(), concurrency=4)
    assert [json.loads(result)["n"] for result in results] == list(range(12))  # type: ignore[arg-type]
    assert server.attempts == Counter(dict.fromkeys(range(12), 2))  # each retried once...
    assert made == Counter(dict.fromkeys(range(12), 1))  # ...with the body made for it
    # 4 in flight: the 5th call goes out (and its body is made) once one has been answered.
    assert answered_when_made[4] >= 1


def test_a_throttled_call_is_retried_and_counted(server: _Server) -> None:
    client = _client()
    throttled: list[int] = []
    client.on_throttle = lambda: throttled.append(1)
    results = client.call_many("Decrypt", _bodies(6, throttle_first=True), concurrency=3)
    assert [json.loads(result)["n"] for result in results] == list(range(6))  # type: ignore[arg-type]
    assert server.attempts == Counter(dict.fromkeys(range(6), 2))
    assert len(throttled) == 6


def test_a_stale_kept_alive_connection_is_resent_once_anew(server: _Server) -> None:
    # One attempt in all: the resend is not a retry, and needs no attempt to spare.
    client = _client(retries={"mode": "standard", "total_max_attempts": 1})
    assert client.call_many("Decrypt", _bodies(4, close_after=True), concurrency=4)
    # Every connection was closed by the server after its answer; the next round finds them
    # stale and sends each request again at once on a new one, not as a retry.
    results = client.call_many("Decrypt", _bodies(4), concurrency=4)
    assert [json.loads(result)["n"] for result in results] == list(range(4))  # type: ignore[arg-type]
    assert server.attempts == Counter(dict.fromkeys(range(4), 2))  # one per round
    assert server.connections == 8


def test_a_call_without_an_answer_times_out_while_the_others_complete(server: _Server) -> None:
    client = _client(read_timeout=0.3)
    bodies = [*_bodies(3), json.dumps({"n": 3, "silent": True}).encode()]
    started = time.monotonic()
    results = client.call_many("Decrypt", bodies, concurrency=4)
    assert [json.loads(result)["n"] for result in results[:3]] == [0, 1, 2]  # type: ignore[arg-type]
    assert isinstance(results[3], ReadTimeoutError)
    assert server.attempts[3] == 3  # KMS_MAX_ATTEMPTS, as botocore retries a read timeout
    assert time.monotonic() - started < 10


def test_an_error_that_is_not_retried_is_the_one_call_raises(server: _Server) -> None:
    client = _client(retries={"mode": "standard", "total_max_attempts": 1})
    [result] = client.call_many("Decrypt", _bodies(1, throttle_first=True), concurrency=2)
    with pytest.raises(ClientError) as raised:
        client.call("Decrypt", json.dumps({"n": 1, "throttle_first": True}).encode())
    assert isinstance(result, ClientError)
    assert result.response["Error"] == raised.value.response["Error"]
    assert result.response["Error"]["Code"] == "ThrottlingException"
    assert str(result) == str(raised.value)


def test_a_body_cut_short_is_retried_as_botocore_retries_it(
    server: _Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A response closed mid-body (http.client's IncompleteRead, an HTTPException and not an
    OSError): before, the lean client failed the run at once, where botocore retries it."""
    from botocore.retries import standard

    monkeypatch.setattr(standard.ExponentialBackoff, "delay_amount", lambda self, context: 0.0)
    client = _client()
    one = client.call("Decrypt", json.dumps({"n": 9, "truncate_first": True}).encode())
    assert json.loads(one)["n"] == 9
    results = client.call_many("Decrypt", _bodies(4, truncate_first=True), concurrency=4)
    assert [json.loads(result)["n"] for result in results] == list(range(4))  # type: ignore[arg-type]
    assert server.attempts == Counter({9: 2, **dict.fromkeys(range(4), 2)})
