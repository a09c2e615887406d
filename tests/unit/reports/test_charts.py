"""SVG charts: parse the output as XML and look for the elements and labels that must be there."""
import math
import xml.etree.ElementTree as ET

import pytest

from services.reports import charts

NS = "{http://www.w3.org/2000/svg}"


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)  # raises on anything not well-formed
    assert root.tag == f"{NS}svg"
    return root


def texts(root: ET.Element, css_class: str) -> list[str]:
    return [el.text for el in root.iter() if css_class in el.get("class", "").split()]


def by_class(root: ET.Element, css_class: str) -> list[ET.Element]:
    return [el for el in root.iter() if css_class in el.get("class", "").split()]


def test_line_chart_draws_each_series_with_labels():
    svg = charts.line_chart({"east": [("2026-06", 0.1), ("2026-07", 0.25), ("2026-08", 0.2)],
                             "west": [("2026-06", 0.3), ("2026-07", 0.0), ("2026-08", 0.5)]},
                            "Churn rate", "share of active base", percent=True)
    root = parse(svg)
    assert root.find(f"{NS}title").text == "Churn rate"
    assert texts(root, "chart-title") == ["Churn rate"] and texts(root, "axis-label") == ["share of active base"]
    assert texts(root, "x-label") == ["2026-06", "2026-07", "2026-08"]
    assert texts(root, "y-tick")[0] == "0%" and texts(root, "y-tick")[-1] == "50%"
    series = by_class(root, "series")
    assert [g.get("data-series") for g in series] == ["east", "west"]
    assert all(len(g.findall(f"{NS}polyline")) == 1 and len(g.findall(f"{NS}circle")) == 3 for g in series)
    assert [el.text for el in root.iter(f"{NS}text") if el.text in ("east", "west")] == ["east", "west"]  # legend


def test_line_chart_breaks_at_none_gaps():
    root = parse(charts.line_chart({"rate": [("W1", 1), ("W2", 2), ("W3", None), ("W4", 4), ("W5", None),
                                             ("W6", 6), ("W7", math.nan)]}, "Gaps", "n"))
    (group,) = by_class(root, "series")
    # W1-W2 is a line, W4 and W6 stand alone as points, W3 W5 W7 are gaps
    assert [len(p.get("points").split()) for p in group.findall(f"{NS}polyline")] == [2]
    assert len(group.findall(f"{NS}circle")) == 4
    assert len(texts(root, "x-label")) == 7


def test_higher_values_are_drawn_higher():
    root = parse(charts.line_chart({"n": [("a", 1), ("b", 5)]}, "t", "n"))
    low, high = (float(c.get("cy")) for c in by_class(root, "point"))
    assert high < low  # SVG y grows downwards


def test_text_is_escaped():
    svg = charts.line_chart({'R&D <"east">': [("Q1 & Q2", 1.0)]}, "Sales <&> 'growth'", 'y "label"')
    root = parse(svg)
    assert texts(root, "chart-title") == ["Sales <&> 'growth'"]
    assert by_class(root, "series")[0].get("data-series") == 'R&D <"east">'
    assert root.get("aria-label") == "Sales <&> 'growth'"


@pytest.mark.parametrize("svg", [
    charts.line_chart({}, "Empty", "n"),
    charts.line_chart({"a": []}, "Empty", "n"),
    charts.line_chart({"a": [("2026-07", None)]}, "Only gaps", "n"),
    charts.bar_chart([], "Empty", "n"),
    charts.funnel_chart([], "Empty"),
])
def test_empty_data_says_so(svg):
    root = parse(svg)
    assert texts(root, "no-data") == ["No data"]


def test_long_axes_are_thinned():
    points = [(f"2026-{m:02d}-{day:02d}", day) for m in (7, 8) for day in range(1, 29)]
    root = parse(charts.line_chart({"daily": points}, "Daily", "n"))
    labels = texts(root, "x-label")
    assert labels[0] == "2026-07-01" and len(labels) <= charts.MAX_X_LABELS


def test_bar_chart_per_rep_coverage():
    root = parse(charts.bar_chart([("r1", 1.0), ("r2", None), ("r3", 0.5)], "Follow-up coverage", "coverage",
                                  percent=True))
    bars = by_class(root, "bar")
    assert [b.get("data-label") for b in bars] == ["r1", "r3"]
    heights = [float(b.get("height")) for b in bars]
    assert heights[0] == pytest.approx(2 * heights[1])
    assert texts(root, "x-label") == ["r1", "r2", "r3"]
    assert texts(root, "bar-value") == ["100%", "n/a", "50%"]
    assert texts(root, "axis-label") == ["coverage"]


def test_bar_chart_negative_and_all_missing_values():
    root = parse(charts.bar_chart([("a", -2), ("b", 3)], "Net moves", "customers"))
    a, b = by_class(root, "bar")
    zero_line = float(by_class(root, "x-axis")[0].get("y1"))
    assert float(a.get("y")) == pytest.approx(zero_line) and float(b.get("y")) + float(b.get("height")) == \
        pytest.approx(zero_line)
    root = parse(charts.bar_chart([("a", None)], "Nothing", "n"))
    assert by_class(root, "bar") == [] and texts(root, "bar-value") == ["n/a"]


def test_funnel_chart():
    root = parse(charts.funnel_chart([("first_contact", 3), ("needs_analysis", 2), ("proposal", 2), ("won", 0)]))
    stages = by_class(root, "stage")
    assert [s.get("data-stage") for s in stages] == ["first_contact", "needs_analysis", "proposal", "won"]
    widths = [float(s.get("width")) for s in stages]
    assert widths[0] > widths[1] == widths[2] > widths[3] > 0  # an empty stage stays a visible sliver
    assert texts(root, "stage-label") == ["first_contact: 3", "needs_analysis: 2 (66.7%)", "proposal: 2 (100%)",
                                          "won: 0 (0%)"]
    assert texts(root, "chart-title") == ["Pipeline funnel"]


def test_funnel_chart_all_zero():
    root = parse(charts.funnel_chart([("first_contact", 0), ("won", 0)]))
    assert texts(root, "stage-label") == ["first_contact: 0", "won: 0"]


@pytest.mark.parametrize("low, high, expected", [
    (0, 0.75, [0, 0.2, 0.4, 0.6, 0.8]),
    (0, 900.5, [0, 200, 400, 600, 800, 1000]),
    (-3, 17, [-5, 0, 5, 10, 15, 20]),
    (0, 0, [0, 0.2, 0.4, 0.6, 0.8, 1.0]),
])
def test_nice_ticks(low, high, expected):
    assert charts.nice_ticks(low, high) == pytest.approx(expected)


def test_format_value():
    assert charts.format_value(0.6667, percent=True) == "66.7%"
    assert charts.format_value(1234.5) == "1,234.5" and charts.format_value(3.0) == "3"
    assert charts.format_value(None) == "n/a"
