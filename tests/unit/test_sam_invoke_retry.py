"""``sam local invoke``'s retry of a hung attempt (table_sync_dev.local.container).

SAM CLI sometimes waits for an invoke with no container left; that hang cannot be made on
demand, so ``_run`` is replaced here by one that times out once (the injected fault), then
answers as SAM does."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from table_sync_dev.local import container
from table_sync_dev.local.kit import CONTAINER_CREDENTIALS


def _invoke(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, arch: str) -> list[float]:
    (tmp_path / CONTAINER_CREDENTIALS).write_text("export AWS_ACCESS_KEY_ID=AKIATEST\n")
    timeouts: list[float] = []

    def run(args: list[Any], env: Any = None, timeout: float = 0) -> Any:
        timeouts.append(timeout)
        if len(timeouts) == 1:
            raise subprocess.TimeoutExpired(args, timeout, output=b"", stderr=b"")
        answer = json.dumps({"status": "succeeded"})
        return subprocess.CompletedProcess(args, 0, stdout=answer + "\n", stderr="")

    monkeypatch.setattr(container, "_run", run)
    monkeypatch.setattr(container, "_wait_for_emulator_port", lambda: None)
    with pytest.warns(UserWarning, match="gave no answer in .* s: sent again"):
        summary = container.sam_local_invoke(
            tmp_path / "template.yaml", Path("scheduled-event.json"), tmp_path, arch
        )
    assert summary == {"status": "succeeded"}
    return timeouts


def test_a_hung_native_invoke_is_sent_again_after_a_minute(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    native = container.host_arch()
    assert _invoke(monkeypatch, tmp_path, native) == [container.NATIVE_TIMEOUT] * 2
    assert container.NATIVE_TIMEOUT <= 60  # a hang costs a minute, not the 140 s it did


def test_an_emulated_invoke_has_longer(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    other = "arm64" if container.host_arch() == "x86_64" else "x86_64"
    assert _invoke(monkeypatch, tmp_path, other) == [container.EMULATED_TIMEOUT] * 2
