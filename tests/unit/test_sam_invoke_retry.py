"""``sam local invoke``'s attempts (table_sync_dev.local.container): one whose emulator never
started is stopped at once, one that hangs after its timeout, and either is sent again once.

SAM CLI's hang (its emulator's port taken, then SAM waiting for its 900 s function timer)
cannot be made on demand: a stand-in process prints what SAM printed in the hang captured on
2026-12-07 and then waits, and the retry is tested with attempts injected."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from table_sync_dev.local import container
from table_sync_dev.local.kit import CONTAINER_CREDENTIALS

PANIC = (
    "07 Dec 2026 19:27:35,969 [PANIC] (rapid) Runtime API Server failed to listen "
    "error=listen tcp 127.0.0.1:9001: bind: address already in use"
)


def _stand_in(*lines: str, then_wait: float = 0.0) -> list[Any]:
    """A process that prints ``lines`` to stderr, then waits (as SAM did), then answers."""
    script = (
        "import json, sys, time\n"
        f"for line in {list(lines)!r}: print(line, file=sys.stderr, flush=True)\n"
        f"time.sleep({then_wait})\n"
        "print(json.dumps({'status': 'succeeded'}))\n"
    )
    return [sys.executable, "-c", script]


def test_an_emulator_that_never_started_stops_the_attempt_at_once() -> None:
    result, why = container.sam_attempt(
        _stand_in("Invoking table_sync.handler.lambda_handler (python3.13)", PANIC, then_wait=60),
        {},
        timeout=60,
    )
    # Stopped on the panic: after the timeout, the reason would be "no answer in 60 s".
    assert why is not None
    assert why.startswith("its emulator never started")
    assert PANIC in result.stderr


def test_an_attempt_without_an_answer_stops_at_its_timeout() -> None:
    result, why = container.sam_attempt(_stand_in(then_wait=30), {}, timeout=1)
    assert why == "no answer in 1 s"
    assert result.stdout == ""


def test_an_attempt_that_answers_is_returned_whole() -> None:
    result, why = container.sam_attempt(_stand_in("Invoking ..."), {}, timeout=30)
    assert why is None
    assert (result.returncode, json.loads(result.stdout)) == (0, {"status": "succeeded"})


def _invoke(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, arch: str, why: str) -> list[float]:
    """sam_local_invoke, its first attempt stopped for ``why``: the timeouts it gave each."""
    (tmp_path / CONTAINER_CREDENTIALS).write_text("export AWS_ACCESS_KEY_ID=AKIATEST\n")
    timeouts: list[float] = []

    def attempt(args: list[Any], env: Any, timeout: float) -> Any:
        timeouts.append(timeout)
        answer = json.dumps({"status": "succeeded"}) + "\n"
        done = subprocess.CompletedProcess(args, 0, stdout=answer, stderr="")
        return done, (why if len(timeouts) == 1 else None)

    monkeypatch.setattr(container, "sam_attempt", attempt)
    monkeypatch.setattr(container, "_wait_for_emulator_port", lambda: None)
    with pytest.warns(UserWarning, match=f"scheduled-event.json: {why}: sent again"):
        summary = container.sam_local_invoke(
            tmp_path / "template.yaml", Path("scheduled-event.json"), tmp_path, arch
        )
    assert summary == {"status": "succeeded"}
    return timeouts


def test_a_stopped_native_attempt_is_sent_again_within_a_minute(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    native = container.host_arch()
    timeouts = _invoke(monkeypatch, tmp_path, native, "its emulator never started")
    assert timeouts == [container.NATIVE_TIMEOUT] * 2
    assert container.NATIVE_TIMEOUT <= 60  # a hang costs a minute at most, not 140 s


def test_an_emulated_invoke_has_longer(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    other = "arm64" if container.host_arch() == "x86_64" else "x86_64"
    timeouts = _invoke(monkeypatch, tmp_path, other, "no answer in 140 s")
    assert timeouts == [container.EMULATED_TIMEOUT] * 2
