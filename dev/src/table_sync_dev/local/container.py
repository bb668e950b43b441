"""The built function in a real Lambda container: ``sam local invoke`` against ``table-sync
local-aws``.

SAM CLI runs the build in its emulator on the locally built base image (:mod:`.lambda_image`),
with every container on the host network (:mod:`.sam_host_network`), env.json and the function
role's credentials as local-aws wrote them.

``python -m table_sync_dev.local.container [EVENT ...]`` (``make sam-local``; ``ARCH=arm64``
for the template's own architecture, under emulation on an x86_64 machine) does the whole
path a user would: the base image, ``sam build`` for this machine's architecture, local-aws in
the background, one invoke per event (default: the scheduled event), ``table-sync verify``,
and local-aws stopped again.
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from table_sync_dev.local.kit import CONTAINER_CREDENTIALS, ENV_JSON, HOST_ENV
from table_sync_dev.local.lambda_image import ensure_base_image, host_arch
from table_sync_dev.local.paths import ROOT, SAM, SAM_PYTHON
from table_sync_dev.local.sam_kit import FUNCTION

HOST_NETWORK = Path(__file__).with_name("sam_host_network.py")
# sam build for the python3.13 runtime needs a python3.13 on PATH: pyenv's, where it exists.
PYENV = {"PYENV_VERSION": "3.11.7:3.12.1:3.13.0"}


class InvokeFailed(RuntimeError):
    """`sam local invoke` failed, or the function did; the message ends with SAM's output."""


def read_exports(path: Path) -> dict[str, str]:
    """The ``export NAME=value`` lines of a shell file local-aws wrote."""
    exported = {}
    for line in path.read_text().splitlines():
        if line.startswith("export "):
            name, _, value = shlex.split(line.removeprefix("export "))[0].partition("=")
            exported[name] = value
    return exported


def _clean_environment(**extra: str) -> dict[str, str]:
    """This process's PATH and Docker settings, nothing of its AWS settings, and ``extra``."""
    kept = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "DOCKER_HOST", "TMPDIR")}
    return {
        **kept,
        "SAM_CLI_TELEMETRY": "0",
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "AWS_EC2_METADATA_DISABLED": "true",
        **extra,
    }


def _run(
    args: list[Any], env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """A command of ours (SAM CLI, our CLI) from the checkout, its output captured."""
    return subprocess.run(  # noqa: S603 - SAM CLI's and our own programs, our arguments
        args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def sam_build(build_dir: Path, arch: str) -> Path:
    """``sam build`` of template.yaml for ``arch`` into ``build_dir``; its template.

    Not cached (samconfig.toml's ``cached`` is for ``make build``): a cached build of another
    architecture removes ``make build``'s dependencies from ``.aws-sam/deps``, and once, with
    the suite on two workers, that removal failed on a file already gone (FileNotFoundError in
    SAM's clean_redundant_folders). That cache cannot serve this build anyway: its dependencies
    are the other architecture's. Uncached, SAM never cleans ``.aws-sam/deps``."""
    options = ["--build-dir", build_dir, "--parameter-overrides", f"Architecture={arch}"]
    options += ["--no-cached"]
    result = _run(
        [SAM, "build", "--template", ROOT / "template.yaml", *options],
        env=_clean_environment(**PYENV, AWS_DEFAULT_REGION="eu-west-1"),
        timeout=600,
    )
    if result.returncode != 0:
        raise InvokeFailed(f"sam build failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
    return build_dir / "template.yaml"


# How long one attempt may take: a native invoke takes 6-15 s here (44 s seen once with three
# test workers on two cores); arm64 under qemu takes minutes.
NATIVE_TIMEOUT, EMULATED_TIMEOUT = 60.0, 140.0


def sam_local_invoke(
    template: Path,
    event: Path,
    local_aws: Path,
    arch: str = "x86_64",
    timeout: float | None = None,
) -> dict[str, Any]:
    """The function's result for ``event``, run by ``sam local invoke`` from the built
    ``template`` with local-aws's env.json and credentials (in ``local_aws``). ``timeout``: for
    each of at most two attempts (default: by whether ``arch`` is this machine's; the tests' own
    limit is 300 s)."""
    if timeout is None:
        timeout = NATIVE_TIMEOUT if arch == host_arch() else EMULATED_TIMEOUT
    credentials = read_exports(local_aws / CONTAINER_CREDENTIALS)
    invoke = [SAM_PYTHON, HOST_NETWORK, "local", "invoke", FUNCTION, "--template", template]
    options = ["--parameter-overrides", f"Architecture={arch}", "--skip-pull-image"]
    inputs = ["--env-vars", local_aws / ENV_JSON, "--event", event]
    for attempt in (1, 2):
        _wait_for_emulator_port()
        result, why = sam_attempt(
            [*invoke, *options, *inputs], _clean_environment(**credentials), timeout
        )
        if why is None:
            break
        # An invoke whose emulator never started, or that gave no answer, is sent again once
        # (a function that hangs hangs twice); any other failure is the function's, reported
        # as it is.
        if attempt == 1:
            warnings.warn(f"sam local invoke {event.name}: {why}: sent again", stacklevel=2)
            continue
        raise InvokeFailed(
            f"sam local invoke {event.name}: {why}, twice: "
            f"{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
        )
    lines = result.stdout.strip().splitlines()
    response: Any = json.loads(lines[-1]) if lines else None
    if result.returncode != 0 or not isinstance(response, dict) or "errorType" in response:
        raise InvokeFailed(
            f"sam local invoke {event.name} failed (exit {result.returncode}): "
            f"{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
        )
    return response


def sam_attempt(
    args: list[Any], env: dict[str, str], timeout: float
) -> tuple[subprocess.CompletedProcess[str], str | None]:
    """One run of ``args`` (``sam local invoke``), and why it was stopped, if it was.

    An invoke hung in 5 of 12 full runs of the suite on 2026-12-07. In the one captured whole
    (py-spy and SAM's output), the emulator could not listen on 127.0.0.1:9001, though the port
    was free when :func:`_wait_for_emulator_port` looked; SAM CLI printed the emulator's panic
    and "No response from invoke container", and did not exit: its main thread waited for its
    timer of the function's timeout (900 s). So SAM is stopped as soon as the panic appears in
    what it prints, or after ``timeout``."""
    process = subprocess.Popen(  # noqa: S603 - SAM CLI, our arguments
        args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    stdout: list[str] = []
    stderr: list[str] = []
    why: list[str] = []

    def watch_stderr() -> None:
        for line in process.stderr or ():
            stderr.append(line)
            if not why and any(sign in line for sign in EMULATOR_NEVER_STARTED):
                why.append(f"its emulator never started ({line.strip()[:200]})")
                process.kill()

    readers = [
        threading.Thread(target=watch_stderr, daemon=True),
        threading.Thread(target=lambda: stdout.append(process.stdout.read()), daemon=True),  # type: ignore[union-attr]
    ]
    for reader in readers:
        reader.start()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        why.append(f"no answer in {timeout:.0f} s")
        process.kill()
        process.wait()
    for reader in readers:
        reader.join()
    completed = subprocess.CompletedProcess(
        args, process.returncode, "".join(stdout), "".join(stderr)
    )
    return completed, (why[0] if why else None)


LOOPBACK = ("--host", "127.0.0.1", "--container-host", "127.0.0.1")
# The Lambda emulator's Runtime API listens here; on the host network, on the host's port.
EMULATOR_PORT = 9001
# What the emulator prints when its Runtime API could not listen, so the function never ran: its
# log line, or (seen once) only logrus's panic from the function that listens, with no message.
EMULATOR_NEVER_STARTED = (
    "Runtime API Server failed to listen",
    "rapid.startRuntimeAPI(",
)


def _wait_for_emulator_port(timeout: float = 30) -> None:
    """Until the emulator's port is free (bound as the emulator binds it, SO_REUSEADDR)."""
    deadline = time.monotonic() + timeout
    while True:
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", EMULATOR_PORT))
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise InvokeFailed(
                        f"127.0.0.1:{EMULATOR_PORT} stayed in use for {timeout:.0f} s: the "
                        "Lambda emulator on the host network needs it (is another sam local "
                        "invoke running?)"
                    ) from None
        time.sleep(0.2)


def start_local_aws(
    directory: Path, items: int = 30, *, port: int | None = None, hosts: Sequence[str] = LOOPBACK
) -> None:
    """``table-sync local-aws --detach``, writing its files into ``directory``: on loopback by
    default, where a container on the host network reaches it at 127.0.0.1."""
    from table_sync_dev.local.server import free_port

    where = ["--port", str(port or free_port()), "--dir", str(directory), "--items", str(items)]
    started = _run(
        [sys.executable, "-m", "table_sync_dev.cli", "local-aws", "--detach", *hosts, *where],
        timeout=180,
    )
    if started.returncode != 0:
        raise InvokeFailed(f"table-sync local-aws --detach failed: {started.stderr[-2000:]}")


def stop_local_aws(directory: Path) -> None:
    _run([sys.executable, "-m", "table_sync_dev.cli", "local-aws", "--stop", "--dir", directory])


def verify(local_aws: Path, *options: str) -> subprocess.CompletedProcess[str]:
    """``table-sync verify`` from a shell that sourced local-aws.env."""
    return _run(
        [sys.executable, "-m", "table_sync_dev.cli", "verify", *options],
        env=_clean_environment(**read_exports(local_aws / HOST_ENV)),
    )


def main(events: list[str]) -> int:
    arch = os.environ.get("ARCH") or host_arch()  # arm64 on x86_64 runs under qemu: slow
    print(f"base image: {ensure_base_image(arch)}", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="sam-local-") as work:
        template = sam_build(Path(work, "build"), arch)
        local_aws = Path(work, "local-aws")
        local_aws.mkdir()
        start_local_aws(local_aws)
        try:
            for event in events or ["events/scheduled-event.json"]:
                summary = sam_local_invoke(template, ROOT / event, local_aws, arch)
                print(f"{event}: {summary.get('status')}", file=sys.stderr)
            checked = verify(local_aws)
            print(checked.stdout + checked.stderr, file=sys.stderr)
            return checked.returncode
        finally:
            stop_local_aws(local_aws)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
