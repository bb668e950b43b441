"""The documentation's performance charts: drawn from a bench result, and the cost model is the
arithmetic docs/performance.md states."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from bench.charts import full_cost, monthly_cost, write_charts
from tests.conftest import ROOT


def test_the_cost_model_is_the_documented_one() -> None:
    # docs/performance.md: about $1,990 a month for a full copy, about $57 for the mirror.
    assert full_cost() == pytest.approx(1987.5)
    assert monthly_cost(1) == pytest.approx(57.375)
    assert monthly_cost(0.1) < monthly_cost(1) < monthly_cost(10) < full_cost()


def test_the_charts_are_svg_with_the_results_figures(tmp_path: Path) -> None:
    result = json.loads((ROOT / "bench" / "published.json").read_text())
    written = write_charts(result, tmp_path)
    assert {p.name for p in written} == {"items-per-segment.svg", "nightly-cost.svg"}
    bars = ET.parse(tmp_path / "items-per-segment.svg").getroot()  # noqa: S314 - our own file
    ns = "{http://www.w3.org/2000/svg}"
    titles = [t.text for t in bars.iter(f"{ns}title")]
    model = result["latency_model"]
    lean = [r["items_per_s"] for r in model["throughput"]["segments"]]
    boto = [r["items_per_s"] for r in model["throughput_botocore"]["segments"]]
    # Segment by segment, the lean bar and then the botocore one.
    assert titles == [f"{v:,.0f}" for pair in zip(lean, boto, strict=True) for v in pair]
    lines = ET.parse(tmp_path / "nightly-cost.svg").getroot()  # noqa: S314 - our own file
    assert len(list(lines.iter(f"{ns}polyline"))) == 2
    # The committed charts are the ones drawn from the published figures.
    for path in written:
        assert path.read_text() == (ROOT / "docs" / "assets" / "bench" / path.name).read_text()
