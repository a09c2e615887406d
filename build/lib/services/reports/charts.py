"""Standalone SVG charts, hand-written (no plotting library): trend lines, bars, funnel.

Every chart is a complete SVG document with the SVG namespace, a <title>, its
labels as text, and a "No data" note instead of a crash when there is nothing
to draw. None values are gaps: a line breaks there, a bar shows "n/a".
Elements carry classes (series, point, bar, stage, x-label, y-tick, legend...)
so tests and stylesheets can find them.
"""
from __future__ import annotations

import math
from xml.sax.saxutils import escape

WIDTH, HEIGHT = 720, 400
LEFT, RIGHT, TOP, BOTTOM = 80, 20, 60, 80  # plot margins: room for ticks, labels and legend
MAX_X_LABELS = 12
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")
FONT = 'font-family="sans-serif"'


def _text(value: object) -> str:
    return escape(str(value), {'"': "&quot;"})


def _n(x: float) -> str:
    return f"{x:.1f}"


def _value(v: float | None) -> float | None:
    return None if v is None or not math.isfinite(v) else float(v)


def format_value(v: float | None, percent: bool = False) -> str:
    if v is None:
        return "n/a"
    if percent:
        return f"{v * 100:.1f}".rstrip("0").rstrip(".") + "%"
    return f"{v:,.2f}".rstrip("0").rstrip(".")


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high], about `count` steps of 1, 2, 2.5 or 5 x 10^n."""
    if high <= low:
        high = low + 1
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first, last = math.floor(low / step), math.ceil(high / step)
    return [round(i * step, 10) for i in range(first, last + 1)]


def _document(title: str, body: list[str], width: int = WIDTH, height: int = HEIGHT) -> str:
    return "\n".join([
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{_text(title)}">',
        f"<title>{_text(title)}</title>",
        f'<rect class="background" x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>',
        f'<text class="chart-title" x="{width / 2}" y="28" text-anchor="middle" {FONT} font-size="18" '
        f'font-weight="bold">{_text(title)}</text>',
        *body,
        "</svg>",
    ])


def _no_data(width: int = WIDTH, height: int = HEIGHT) -> list[str]:
    return [f'<text class="no-data" x="{width / 2}" y="{height / 2}" text-anchor="middle" {FONT} '
            f'font-size="14" fill="#666666">No data</text>']


class _Frame:
    """The plot area, a y scale from the tick range, and evenly spaced x slots."""

    def __init__(self, values: list[float], slots: int):
        self.x0, self.x1 = LEFT, WIDTH - RIGHT
        self.y0, self.y1 = HEIGHT - BOTTOM, TOP  # y0 is the bottom edge (SVG y grows downwards)
        self.ticks = nice_ticks(min([0.0, *values]), max([0.0, *values]))
        self.slots = slots

    def y(self, value: float) -> float:
        low, high = self.ticks[0], self.ticks[-1]
        return self.y0 - (value - low) / (high - low) * (self.y0 - self.y1)

    def slot_width(self) -> float:
        return (self.x1 - self.x0) / self.slots

    def x(self, index: int) -> float:
        return self.x0 + self.slot_width() * (index + 0.5)

    def axes(self, labels: list[str], y_label: str, percent: bool) -> list[str]:
        parts = []
        for tick in self.ticks:
            y = _n(self.y(tick))
            parts.append(f'<line class="grid" x1="{self.x0}" y1="{y}" x2="{self.x1}" y2="{y}" stroke="#e5e5e5"/>')
            parts.append(f'<text class="y-tick" x="{self.x0 - 8}" y="{y}" text-anchor="end" dominant-baseline="middle" '
                         f'{FONT} font-size="11">{_text(format_value(tick, percent))}</text>')
        zero = _n(self.y(0))
        parts.append(f'<line class="axis x-axis" x1="{self.x0}" y1="{zero}" x2="{self.x1}" y2="{zero}" stroke="#333333"/>')
        parts.append(f'<line class="axis y-axis" x1="{self.x0}" y1="{self.y0}" x2="{self.x0}" y2="{self.y1}" '
                     f'stroke="#333333"/>')
        every = max(1, math.ceil(len(labels) / MAX_X_LABELS))  # thin out long axes
        for index, label in enumerate(labels):
            if index % every == 0:
                parts.append(f'<text class="x-label" x="{_n(self.x(index))}" y="{self.y0 + 18}" text-anchor="middle" '
                             f'{FONT} font-size="11">{_text(label)}</text>')
        middle = _n((self.y0 + self.y1) / 2)
        parts.append(f'<text class="axis-label" x="18" y="{middle}" text-anchor="middle" {FONT} font-size="12" '
                     f'transform="rotate(-90 18 {middle})">{_text(y_label)}</text>')
        return parts


def line_chart(series: dict[str, list[tuple[str, float | None]]], title: str, y_label: str,
               percent: bool = False) -> str:
    """One line per series over period labels; a None value breaks the line."""
    labels: list[str] = []
    for points in series.values():
        labels += [label for label, _ in points if label not in labels]
    values = [v for points in series.values() for _, raw in points if (v := _value(raw)) is not None]
    if not labels or not values:
        return _document(title, _no_data())
    frame = _Frame(values, len(labels))
    body = frame.axes(labels, y_label, percent)
    for number, (name, points) in enumerate(series.items()):
        colour = PALETTE[number % len(PALETTE)]
        by_label = {label: _value(raw) for label, raw in points}
        body.append(f'<g class="series" data-series="{_text(name)}" fill="none" stroke="{colour}" stroke-width="2">')
        segment: list[str] = []
        for index, label in enumerate(labels + [None]):  # the sentinel closes the last segment
            value = by_label.get(label) if label is not None else None
            if value is not None:
                segment.append(f"{_n(frame.x(index))},{_n(frame.y(value))}")
                body.append(f'<circle class="point" cx="{_n(frame.x(index))}" cy="{_n(frame.y(value))}" r="3" '
                            f'fill="{colour}"><title>{_text(name)} {_text(label)}: '
                            f'{_text(format_value(value, percent))}</title></circle>')
            elif segment:
                if len(segment) > 1:
                    body.append(f'<polyline class="line" points="{" ".join(segment)}"/>')
                segment = []
        body.append("</g>")
        legend_x, legend_y = LEFT + 150 * (number % 4), HEIGHT - 36 + 16 * (number // 4)  # 4 a row, under the axis
        body.append(f'<g class="legend"><rect x="{legend_x}" y="{legend_y - 9}" width="12" height="12" '
                    f'fill="{colour}"/><text x="{legend_x + 18}" y="{legend_y + 1}" {FONT} font-size="12">'
                    f'{_text(name)}</text></g>')
    return _document(title, body)


def bar_chart(bars: list[tuple[str, float | None]], title: str, y_label: str, percent: bool = False) -> str:
    """One bar per label (e.g. coverage per rep); None shows as "n/a"."""
    values = [v for _, raw in bars if (v := _value(raw)) is not None]
    if not bars:
        return _document(title, _no_data())
    frame = _Frame(values, len(bars))
    body = frame.axes([label for label, _ in bars], y_label, percent)
    width = frame.slot_width() * 0.7
    for index, (label, raw) in enumerate(bars):
        value, x = _value(raw), frame.x(index)
        if value is None:
            body.append(f'<text class="bar-value missing" x="{_n(x)}" y="{_n(frame.y(0) - 6)}" text-anchor="middle" '
                        f'{FONT} font-size="11" fill="#666666">n/a</text>')
            continue
        top, bottom = sorted((frame.y(value), frame.y(0)))
        body.append(f'<rect class="bar" data-label="{_text(label)}" x="{_n(x - width / 2)}" y="{_n(top)}" '
                    f'width="{_n(width)}" height="{_n(bottom - top)}" fill="{PALETTE[0]}">'
                    f'<title>{_text(label)}: {_text(format_value(value, percent))}</title></rect>')
        body.append(f'<text class="bar-value" x="{_n(x)}" y="{_n(top - 6)}" text-anchor="middle" {FONT} '
                    f'font-size="11">{_text(format_value(value, percent))}</text>')
    return _document(title, body)


def funnel_chart(stages: list[tuple[str, int]], title: str = "Pipeline funnel") -> str:
    """Centred bars as wide as each stage's count, with conversion from the stage above."""
    if not stages:
        return _document(title, _no_data())
    widest = max(count for _, count in stages) or 1
    usable, row = WIDTH - 2 * LEFT, (HEIGHT - TOP - 20) / len(stages)
    body = []
    for index, (stage, count) in enumerate(stages):
        width = max(usable * count / widest, 2)  # a 2px sliver keeps an empty stage visible
        y = TOP + row * index
        note = f"{stage}: {count}"
        if index and stages[index - 1][1]:
            note += f" ({format_value(count / stages[index - 1][1], percent=True)})"
        body.append(f'<rect class="stage" data-stage="{_text(stage)}" x="{_n((WIDTH - width) / 2)}" y="{_n(y + 4)}" '
                    f'width="{_n(width)}" height="{_n(row - 8)}" fill="{PALETTE[index % len(PALETTE)]}"/>')
        body.append(f'<text class="stage-label" x="{WIDTH / 2}" y="{_n(y + row / 2)}" text-anchor="middle" '
                    f'dominant-baseline="middle" {FONT} font-size="13">{_text(note)}</text>')
    return _document(title, body)
