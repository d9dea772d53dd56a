"""gitreg.charts: round ticks, and SVG that is well-formed XML whatever the names hold."""

from __future__ import annotations

import itertools
import math
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gitreg.charts import ChartPoint, best_index, line_chart, nice_ticks, number, plain, tick_label, xml_text

T0 = datetime(2025, 7, 1, tzinfo=UTC)
HOSTILE = ["<script>alert('x')</script>", "\x1b]0;pwned\x07", 'a & b "q"', "\x9b31m", "x\ny", "\ud800"]


def points(values: list[float], roles: dict[int, tuple[str, ...]] | None = None) -> list[ChartPoint]:
    return [
        ChartPoint(f"v2025-07-{i + 1:02d}--10h00", v, T0 + timedelta(days=i), (roles or {}).get(i, ()))
        for i, v in enumerate(values)
    ]


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == "svg"
    return root


@pytest.mark.parametrize(("lo", "hi"), [(0.0, 1.0), (182.2, 292.8), (0.12, 0.074), (5.0, 5.0), (-3.0, 7.0)])
def test_ticks_are_round_evenly_spaced_and_cover_the_range(lo: float, hi: float):
    ticks = nice_ticks(lo, hi)
    assert ticks[0] <= min(lo, hi) and ticks[-1] >= max(lo, hi)
    steps = [b - a for a, b in itertools.pairwise(ticks)]
    assert all(abs(s - steps[0]) <= 1e-9 * abs(steps[0]) for s in steps)
    assert round(steps[0] / 10 ** math.floor(math.log10(steps[0])), 9) in (1, 2, 2.5, 5, 10)


@given(
    st.floats(-1e12, 1e12, allow_nan=False, allow_infinity=False),
    st.floats(-1e12, 1e12, allow_nan=False, allow_infinity=False),
)
def test_ticks_cover_any_finite_range(a: float, b: float):
    ticks = nice_ticks(a, b)
    assert 2 <= len(ticks) <= 12
    assert ticks[0] <= min(a, b) + 1e-9 * max(1.0, abs(a), abs(b))
    assert ticks[-1] >= max(a, b) - 1e-9 * max(1.0, abs(a), abs(b))


def test_ticks_of_non_finite_values_fall_back():
    assert nice_ticks(float("nan"), 1.0) == [0.0, 1.0]
    assert nice_ticks(0.0, float("inf")) == [0.0, 1.0]


def test_tick_labels_and_numbers():
    assert tick_label(1000.0, 500.0) == "1,000"
    assert tick_label(0.25, 0.05) == "0.25"
    assert tick_label(0.5, 0.5) == "0.5"
    assert number(1234567.0) == "1,234,567"
    assert number(0.123456) == "0.1235"
    assert number(None) == "—" and number(float("nan")) == "—"


def test_a_line_chart_is_well_formed_with_a_mark_per_point():
    marked = {1: ("production",), 3: ("staging", "best")}
    svg = line_chart(points([1.0, 3.0, 2.0, 5.0], marked), metric="reward", subject="p")
    root = parse(svg)
    groups = [g for g in root.iter("g") if (g.get("class") or "").startswith("pt")]
    assert [g.get("class") for g in groups] == ["pt", "pt", "pt prod", "pt stag"]  # marked ones drawn last
    assert len(root.findall(".//title")) == 4
    assert root.find("polyline") is not None
    ys = [float(t.text.replace(",", "")) for t in root.iter("text") if t.get("class") == "ytick"]
    assert ys == sorted(ys) and ys[0] <= 1.0 and ys[-1] >= 5.0
    assert any(t.text == "production" for t in root.iter("text"))


def test_one_point_and_no_points():
    assert len(parse(line_chart(points([2.0]), metric="m", subject="s")).findall(".//title")) == 1
    root = parse(line_chart([], metric="m", subject="s"))
    assert "no values" in (root.get("aria-label") or "")


def test_huge_series_keep_hover_labels_for_marked_points_only():
    svg = line_chart(points([float(i) for i in range(1000)], {500: ("production",)}), metric="m", subject="s")
    root = parse(svg)
    assert len([g for g in root.iter("g") if g.get("class") == "tip"]) == 1


@pytest.mark.parametrize("evil", HOSTILE)
def test_names_are_escaped_and_the_svg_stays_xml(evil: str):
    svg = line_chart(
        [ChartPoint(evil, 1.0, T0, ("production",)), ChartPoint("v2", 2.0, T0 + timedelta(days=1))],
        metric=evil,
        subject=evil,
    )
    root = parse(svg)  # control characters would make this fail: XML forbids them
    assert "<script" not in svg
    assert plain(evil) in (root.get("aria-label") or "")
    assert any(plain(evil) in (t.text or "") for t in root.iter("text"))


def test_xml_text_and_plain():
    assert xml_text("<a href='x'>&") == "&lt;a href=&#x27;x&#x27;&gt;&amp;"
    assert plain("\x1b[2J\n\u202e") == "\\x1b[2J⏎\\u202e"
    assert plain("модель 🚀") == "модель 🚀"


def test_best_index():
    assert best_index([1.0, 3.0, 2.0], "higher") == 1
    assert best_index([1.0, 3.0, 0.5], "lower") == 2
    assert best_index([1.0], None) is None
    assert best_index([], "higher") is None
