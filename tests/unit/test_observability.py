"""The handler's tracing (observability.capture_lambda_handler): Powertools' Tracer where
tracing is on, and no X-Ray SDK at all where it is off (the template's default).

Each case runs in a fresh interpreter, so what it imported is its own. With tracing on, the
"X-Ray daemon" is a UDP socket on loopback that this test reads: the handler's subsegment must
arrive there, as it would at Lambda's daemon.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

from tests.conftest import ROOT

CALL = r"""
import json, sys
from table_sync.observability import capture_lambda_handler

@capture_lambda_handler
def handler(event, context):
    return {"echo": event["n"]}

results = [handler({"n": n}, None) for n in (1, 2)]
print(json.dumps({"results": results, "xray": "aws_xray_sdk.core" in sys.modules}))
"""

TRACE_ID = "Root=1-67891233-abcdef012345678912345678;Parent=53995c3f42cd8ad8;Sampled=1"


def _call(env: dict[str, str]) -> dict[str, object]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("POWERTOOLS_", "LAMBDA_"))}
    done = subprocess.run(
        [sys.executable, "-c", CALL],
        env={**clean, **env},
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=True,
    )
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def test_with_tracing_off_the_handler_runs_without_importing_the_xray_sdk() -> None:
    for env in (
        {"POWERTOOLS_TRACE_DISABLED": "true", "LAMBDA_TASK_ROOT": "/var/task"},  # deployed
        {},  # the CLI and tests: outside Lambda, Powertools traces nothing either
    ):
        out = _call(env)
        assert out == {"results": [{"echo": 1}, {"echo": 2}], "xray": False}, env


def test_with_tracing_on_the_handler_is_traced_by_powertools() -> None:
    daemon = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    daemon.bind(("127.0.0.1", 0))
    daemon.settimeout(10)
    port = daemon.getsockname()[1]
    with daemon:
        out = _call(
            {
                "POWERTOOLS_TRACE_DISABLED": "false",
                "LAMBDA_TASK_ROOT": "/var/task",
                "_X_AMZN_TRACE_ID": TRACE_ID,
                "AWS_XRAY_DAEMON_ADDRESS": f"127.0.0.1:{port}",
            }
        )
        assert out == {"results": [{"echo": 1}, {"echo": 2}], "xray": True}
        sent = daemon.recv(65536).decode()
    header, document = sent.split("\n", 1)
    assert json.loads(header) == {"format": "json", "version": 1}
    subsegment = json.loads(document)
    assert subsegment["name"] == "## handler"
    assert subsegment["trace_id"] == "1-67891233-abcdef012345678912345678"
    assert subsegment["annotations"]["Service"] == "table-sync"
