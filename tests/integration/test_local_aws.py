"""`table-sync local-aws`: the kit for `sam local invoke` against the embedded AWS.

There is no Docker engine here, so the closest honest check: start the command, take the two
files it writes, and run the handler in a fresh process whose environment is exactly what the
container would get (env.json's variables plus the sourced credentials).
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

from table_sync_dev.local.server import free_port

RUN_HANDLER = """
import json, sys
from table_sync.handler import lambda_handler
from table_sync_dev.local.context import LocalLambdaContext
event = json.load(open(sys.argv[1]))
print(json.dumps(lambda_handler(event, LocalLambdaContext())))
"""


def test_local_aws_writes_env_files_a_function_can_run_with(tmp_path: Path) -> None:
    port = free_port()
    env_json, creds = tmp_path / "env.json", tmp_path / "creds.sh"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "table_sync_dev.cli",
            "local-aws",
            "--port",
            str(port),
            "--host",
            "127.0.0.1",
            "--container-host",
            "127.0.0.1",
            "--items",
            "30",
            "--env-file",
            str(env_json),
            "--credentials-file",
            str(creds),
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
        container_env = {
            "PATH": os.environ["PATH"],
            "AWS_CONFIG_FILE": "/dev/null",
            "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_REGION": exported["AWS_DEFAULT_REGION"],
            **settings,
            **exported,
        }
        result = subprocess.run(
            [sys.executable, "-c", RUN_HANDLER, "events/scheduled-event.json"],
            env=container_env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            cwd=Path(__file__).resolve().parents[2],
        )
        assert result.returncode == 0, result.stderr
        summary = json.loads(result.stdout.strip().splitlines()[-1])
        assert summary["items_written"] == 30
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
