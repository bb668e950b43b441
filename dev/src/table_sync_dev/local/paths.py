"""Where the project's own tools live: the checkout, and what the Makefile installs under it."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[4]
TOOLS = ROOT / ".tools"
SAM = TOOLS / "bin" / "sam"
# aws-sam-cli's own environment (`make install`): its interpreter runs SAM's translator, and SAM
# itself with the host-network wrapper (sam_host_network.py).
SAM_PYTHON = TOOLS / "uv-tools" / "aws-sam-cli" / "bin" / "python"
