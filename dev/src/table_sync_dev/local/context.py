"""A Lambda context for running the handler outside Lambda (demo, tests, built-artifact checks)."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

from table_sync_dev.local.accounts import ACCOUNT_B, REGION


@dataclass
class LocalLambdaContext:
    function_name: str = "table-sync"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 512
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = "/aws/lambda/table-sync"
    log_stream_name: str = "local"
    timeout_seconds: float = 900.0
    _started: float = field(default_factory=time.monotonic, repr=False)

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{REGION}:{ACCOUNT_B}:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_seconds - (time.monotonic() - self._started)) * 1000))
