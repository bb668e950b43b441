"""`table-sync local-aws`: the kit for `sam local invoke` against the embedded AWS.

test_sam_local_invoke.py runs the function in a real container (where Docker is). This is the
quick check that needs none: start the command, take the two files it writes, have SAM CLI's
own code (run by the SAM CLI tool's Python: see sam_local_env.py) resolve the environment
`sam local invoke SyncFunction --env-vars env.json` would give the container, with the
credentials file sourced in the shell, and run the handler in a fresh process with exactly
that environment.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from table_sync_dev.local.paths import ROOT, SAM_PYTHON
from table_sync_dev.local.server import free_port

RUN_HANDLER = """
import json, sys
from table_sync.handler import lambda_handler
from table_sync_dev.local.context import LocalLambdaContext
event = json.load(open(sys.argv[1]))
print(json.dumps(lambda_handler(event, LocalLambdaContext())))
"""


def sam_local_environment(env_json: Path, shell: dict[str, str]) -> dict[str, str]:
    """The container environment SAM CLI 1.170's resolver makes from template.yaml, env.json
    and the shell's credentials and region."""
    if not SAM_PYTHON.exists():
        pytest.skip("aws-sam-cli is not installed: run `make test`, which installs it")
    result = subprocess.run(
        [
            str(SAM_PYTHON),
            str(Path(__file__).with_name("sam_local_env.py")),
            "template.yaml",
            str(env_json),
            "SyncFunction",
        ],
        env={"PATH": os.environ["PATH"], "SAM_CLI_TELEMETRY": "0", **shell},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        cwd=ROOT,
    )
    resolved: dict[str, str] = json.loads(result.stdout)
    return resolved


def test_local_aws_writes_env_files_a_function_can_run_with(tmp_path: Path) -> None:
    """Before, env.json named only the settings; sam local filled the others in from the
    template (STATE_TABLE=StateTable, DESTINATION_KMS_KEY_ARN=arn:aws:lambda:...:CopyKey) and
    the handler failed."""
    port = free_port()
    env_json, creds = tmp_path / "env.json", tmp_path / "local-aws-credentials.sh"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "table_sync_dev.cli",
            "local-aws",
            "--port",
            str(port),
            "--items",
            "30",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not (creds.exists() and creds.stat().st_size) and time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.2)
        settings = json.loads(env_json.read_text())["SyncFunction"]
        assert settings["AWS_ENDPOINT_URL"] == f"http://127.0.0.1:{port}"
        # No --host: loopback only. Before, it served 0.0.0.0, a fake AWS with working
        # credentials open to the network (Linux's /proc/net/tcp says where it listens).
        if Path("/proc/net/tcp").exists():
            assert _listening_addresses(port) == {"127.0.0.1"}
        assert oct(creds.stat().st_mode & 0o777) == "0o600"
        exported = dict(
            shlex.split(line.removeprefix("export "))[0].split("=", 1)
            for line in creds.read_text().splitlines()
        )
        assert set(exported) == {
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_DEFAULT_REGION",
        }
        shell = {
            "AWS_CONFIG_FILE": "/dev/null",
            "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
            "AWS_EC2_METADATA_DISABLED": "true",
            **exported,
        }
        container_env = {"PATH": os.environ["PATH"], **sam_local_environment(env_json, shell)}
        assert container_env["STATE_TABLE"] == settings["STATE_TABLE"]
        assert container_env["AWS_ACCESS_KEY_ID"] == exported["AWS_ACCESS_KEY_ID"]
        result = subprocess.run(
            [sys.executable, "-c", RUN_HANDLER, "events/scheduled-event.json"],
            env=container_env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            cwd=ROOT,
        )
        assert result.returncode == 0, result.stderr
        summary = json.loads(result.stdout.strip().splitlines()[-1])
        assert summary["items_written"] == 30
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)


def _listening_addresses(port: int) -> set[str]:
    """The IPv4 addresses something on this machine listens on at ``port`` (/proc/net/tcp)."""
    addresses = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, hex_port = local.split(":")
        if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
            addresses.add(".".join(str(b) for b in reversed(bytes.fromhex(address))))
    return addresses
