"""template.yaml's state machine and the function agree on the worker contract."""

from __future__ import annotations

from typing import Any, get_args

from cfnlint.decode import cfn_yaml

from table_sync.models import SkippedRun, SyncSummary, parse_event
from tests.conftest import ROOT


def _definition() -> dict[str, Any]:
    template = cfn_yaml.load(str(ROOT / "template.yaml"))
    return dict(template["Resources"]["ParallelSync"]["Properties"]["Definition"])


def _walk(node: Any) -> list[dict[str, Any]]:
    found = []
    if isinstance(node, dict):
        found.append(node)
        for value in node.values():
            found += _walk(value)
    elif isinstance(node, list):
        for value in node:
            found += _walk(value)
    return found


def test_every_payload_the_state_machine_sends_is_an_event_the_function_accepts() -> None:
    payloads = [n["Payload"] for n in _walk(_definition()) if "Payload" in n]
    assert {p["trigger"] for p in payloads} == {"segment", "finalize"}
    for payload in payloads:
        example = {
            k.removesuffix(".$"): ("run-1" if k.startswith("run_id") else 2) for k in payload
        }
        example["trigger"] = payload["trigger"]
        if "segment" in example:
            example["segment"] = 1
        assert parse_event(example).trigger == payload["trigger"]


def test_the_statuses_the_state_machine_branches_on_are_the_ones_the_function_returns() -> None:
    segment = _definition()["States"]["EachSegment"]["ItemProcessor"]["States"]
    branched = {c["StringEquals"] for c in segment["SegmentStatus"]["Choices"]}
    returned = set(get_args(SyncSummary.model_fields["status"].annotation)) | set(
        get_args(SkippedRun.model_fields["status"].annotation)
    )
    assert branched == {"continue", "skipped"}
    assert branched <= returned
    assert segment["SegmentStatus"]["Default"] == "SegmentDone"  # segment-done (or succeeded)
