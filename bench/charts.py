"""The documentation's performance charts, as SVG, from a `make bench` result.

``make bench`` writes them from its run (bench/results/latest.json); ``python -m bench.charts
<result.json>`` writes them from another. Two charts:

* items/s per segment, lean and botocore clients, on the latency model (the run's figures);
* a month of nightly copies against the share of items changed, full copy and mirror, for a
  10-million-item table with two encrypted attributes (a cost model at the settings' list
  prices, the arithmetic of docs/performance.md).

The SVG is written here, by hand, in about sixty lines: the charts are two simple bar and line
plots, and a plotting library (matplotlib and its compiled wheels) would be the dev
environment's largest dependency for them.
"""

from __future__ import annotations

import json
import sys
from html import escape
from pathlib import Path
from typing import Any

from table_sync.models import Settings

OUT = Path(__file__).resolve().parents[1] / "docs" / "assets" / "bench"
WIDTH, HEIGHT, LEFT, BOTTOM, TOP = 640, 320, 70, 40, 40
COLOURS = ("#3f51b5", "#ff7043")


def _frame(title: str, y_label: str, y_max: float, ticks: int = 5) -> list[str]:
    plot_h = HEIGHT - BOTTOM - TOP
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">',
        f'<text x="{WIDTH / 2}" y="20" text-anchor="middle" font-size="14">{escape(title)}</text>',
        f'<text x="14" y="{TOP + plot_h / 2}" transform="rotate(-90 14 {TOP + plot_h / 2})" '
        f'text-anchor="middle">{escape(y_label)}</text>',
    ]
    for n in range(ticks + 1):
        value = y_max * n / ticks
        y = HEIGHT - BOTTOM - plot_h * n / ticks
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - 10}" y1="{y}" y2="{y}" stroke="#ddd"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{y + 4}" text-anchor="end">{value:,.0f}</text>')
    return parts


def _legend(names: list[str]) -> list[str]:
    return [
        f'<rect x="{LEFT + 10 + 150 * i}" y="{TOP - 12}" width="10" height="10" fill="{c}"/>'
        f'<text x="{LEFT + 24 + 150 * i}" y="{TOP - 3}">{escape(name)}</text>'
        for i, (name, c) in enumerate(zip(names, COLOURS, strict=False))
    ]


def bars(title: str, y_label: str, groups: list[str], series: dict[str, list[float]]) -> str:
    """Grouped bars: one group per label, one bar per series."""
    y_max = max(max(values) for values in series.values()) * 1.15
    plot_w, plot_h = WIDTH - LEFT - 10, HEIGHT - BOTTOM - TOP
    parts = _frame(title, y_label, y_max) + _legend(list(series))
    slot = plot_w / len(groups)
    bar_w = slot * 0.8 / len(series)
    for g, group in enumerate(groups):
        x0 = LEFT + g * slot + slot * 0.1
        for s, (values, colour) in enumerate(zip(series.values(), COLOURS, strict=False)):
            h = plot_h * values[g] / y_max
            x, y = x0 + s * bar_w, HEIGHT - BOTTOM - h
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                f'fill="{colour}"><title>{values[g]:,.0f}</title></rect>'
            )
        parts.append(
            f'<text x="{x0 + slot * 0.4:.1f}" y="{HEIGHT - BOTTOM + 16}" '
            f'text-anchor="middle">{escape(group)}</text>'
        )
    return "\n".join([*parts, "</svg>"]) + "\n"


def lines(title: str, y_label: str, x: list[float], series: dict[str, list[float]]) -> str:
    """Lines over ``x`` (a share, plotted on a log scale from its first value to its last)."""
    import math

    y_max = max(max(values) for values in series.values()) * 1.1
    plot_w, plot_h = WIDTH - LEFT - 10, HEIGHT - BOTTOM - TOP
    low, high = math.log10(x[0]), math.log10(x[-1])

    def px(value: float) -> float:
        return LEFT + plot_w * (math.log10(value) - low) / (high - low)

    parts = _frame(title, y_label, y_max) + _legend(list(series))
    for values, colour in zip(series.values(), COLOURS, strict=False):
        points = " ".join(
            f"{px(a):.1f},{HEIGHT - BOTTOM - plot_h * b / y_max:.1f}"
            for a, b in zip(x, values, strict=True)
        )
        parts.append(
            f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"/>'
        )
    for share in x:
        if math.log10(share).is_integer():
            parts.append(
                f'<text x="{px(share):.1f}" y="{HEIGHT - BOTTOM + 16}" '
                f'text-anchor="middle">{share:g}%</text>'
            )
    return "\n".join([*parts, "</svg>"]) + "\n"


def monthly_cost(share_percent: float, *, items: int = 10_000_000, attributes: int = 2) -> float:
    """A month (30 nights) of the mirror at ``share_percent`` of items changed a night: KMS
    for the changed items' attributes, their writes, and a strongly consistent read of every
    copy's digest (one read unit per item of up to 4 KB)."""
    kms, write = _prices()
    read = 0.125 / 1e6  # on-demand read unit, us-east-1 (not a setting: no estimate uses it)
    changed = items * share_percent / 100
    return 30 * (changed * attributes * kms + changed * write + items * read)


def full_cost(*, items: int = 10_000_000, attributes: int = 2) -> float:
    kms, write = _prices()
    return 30 * items * (attributes * kms + write)


def _prices() -> tuple[float, float]:
    """USD per KMS request and per write unit: the settings' defaults (us-east-1 list prices)."""
    fields = Settings.model_fields
    return (
        float(fields["kms_price_per_10k_requests"].default) / 10_000,
        float(fields["write_price_per_million_units"].default) / 1e6,
    )


def write_charts(result: dict[str, Any], out: Path = OUT) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    model = result.get("latency_model")
    if model:
        lean = [row["items_per_s"] for row in model["throughput"]["segments"]]
        boto = [row["items_per_s"] for row in model["throughput_botocore"]["segments"]]
        svg = bars(
            "items/s per segment on the latency model",
            "items/s",
            [f"segment {n}" for n in range(len(lean))],
            {"KMS_CLIENT=lean": lean, "KMS_CLIENT=botocore": boto},
        )
        (out / "items-per-segment.svg").write_text(svg)
        written.append(out / "items-per-segment.svg")
    shares = [0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100]
    svg = lines(
        "a month of nightly copies, 10 million items: USD against the share changed",
        "USD a month",
        shares,
        {
            "full copy every night": [full_cost() for _ in shares],
            "change-aware mirror": [monthly_cost(s) for s in shares],
        },
    )
    (out / "nightly-cost.svg").write_text(svg)
    written.append(out / "nightly-cost.svg")
    return written


if __name__ == "__main__":
    source = (
        Path(sys.argv[1]) if len(sys.argv) > 1 else OUT.parents[2] / "bench/results/latest.json"
    )
    for path in write_charts(json.loads(source.read_text())):
        print(f"written {path}")
