"""Charts as SVG, drawn on the server: no script and no CDN, so they work under
the pages' CSP and print. Colours come from classes (admin.css), never from inline
styles, which the CSP forbids."""

import math
from collections.abc import Sequence
from datetime import datetime, tzinfo

from markupsafe import Markup, escape

WIDTH, HEIGHT = 760, 300
LEFT, RIGHT, TOP, BOTTOM = 52, 16, 16, 64
SERIES_CLASSES = 8


def nice_max(value: float) -> float:
    """A round axis maximum at or above `value` (1, 2, 2.5, 5 times a power of ten)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * power:
            return step * power
    return 10 * power  # pragma: no cover - the loop always returns


def _number(value: float) -> str:
    return f"{value:g}" if abs(value) < 1e6 else f"{value:.3g}"


def _axis(top: float, unit: str) -> list[str]:
    parts = []
    plot_h = HEIGHT - TOP - BOTTOM
    for n in range(5):
        value = top * n / 4
        y = HEIGHT - BOTTOM - plot_h * n / 4
        parts.append(
            f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>'
        )
        parts.append(
            f'<text class="tick" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{escape(_number(value))}{escape(unit)}</text>"
        )
    return parts


def _frame(title: str, parts: list[str], kind: str) -> Markup:
    body = "".join(parts)
    return Markup(
        f'<svg class="chart chart-{kind}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{escape(title)}</title>{body}</svg>"
    )


def bars(
    title: str,
    labels: Sequence[str],
    values: Sequence[float | None],
    *,
    unit: str = "",
    maximum: float | None = None,
    empty: str = "",
) -> Markup:
    """One bar per label; a missing value draws no bar."""
    parts: list[str] = []
    known = [v for v in values if v is not None]
    top = maximum if maximum is not None else nice_max(max(known, default=0.0))
    parts += _axis(top, unit)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    if not labels:
        parts.append(
            f'<text class="empty" x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle">'
            f"{escape(empty)}</text>"
        )
        return _frame(title, parts, "bars")
    slot = plot_w / len(labels)
    width = max(2.0, min(48.0, slot * 0.7))
    for index, (label, value) in enumerate(zip(labels, values, strict=True)):
        x = LEFT + slot * index + (slot - width) / 2
        centre = x + width / 2
        if value is not None:
            h = plot_h * min(value, top) / top if top else 0
            y = HEIGHT - BOTTOM - h
            parts.append(
                f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" height="{h:.1f}">'
                f"<title>{escape(label)}: {escape(_number(value))}{escape(unit)}</title></rect>"
            )
            parts.append(
                f'<text class="value" x="{centre:.1f}" y="{y - 4:.1f}" text-anchor="middle">'
                f"{escape(_number(value))}</text>"
            )
        ly = HEIGHT - BOTTOM + 14
        parts.append(
            f'<text class="label" x="{centre:.1f}" y="{ly}" text-anchor="end" '
            f'transform="rotate(-30 {centre:.1f} {ly})">{escape(label[:24])}</text>'
        )
    return _frame(title, parts, "bars")


def lines(
    title: str,
    series: Sequence[tuple[str, Sequence[tuple[float, float]]]],
    start: float,
    end: float,
    zone: tzinfo,
    *,
    unit: str = "",
    empty: str = "",
) -> Markup:
    """One line per series over time: points are (epoch seconds, value)."""
    parts: list[str] = []
    known = [v for _, points in series for _, v in points]
    top = nice_max(max(known, default=0.0))
    parts += _axis(top, unit)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    span = max(end - start, 1.0)
    for n in range(5):
        when = start + span * n / 4
        x = LEFT + plot_w * n / 4
        text = datetime.fromtimestamp(when, zone).strftime("%m-%d")
        parts.append(
            f'<text class="label" x="{x:.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle">'
            f"{escape(text)}</text>"
        )
    if not known:
        parts.append(
            f'<text class="empty" x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle">'
            f"{escape(empty)}</text>"
        )
    for index, (name, points) in enumerate(series):
        css = f"series series-{index % SERIES_CLASSES}"
        xy = [
            (LEFT + plot_w * (t - start) / span, HEIGHT - BOTTOM - plot_h * min(v, top) / top)
            for t, v in points
        ]
        if len(xy) > 1:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in xy)
            parts.append(f'<polyline class="{css}" points="{path}"/>')
        for (x, y), (_, v) in zip(xy, points, strict=True):
            parts.append(
                f'<circle class="{css}" cx="{x:.1f}" cy="{y:.1f}" r="3">'
                f"<title>{escape(name)}: {escape(_number(v))}{escape(unit)}</title></circle>"
            )
        ly = TOP + 14 * index
        parts.append(
            f'<text class="legend {css}" x="{WIDTH - RIGHT - 4}" y="{ly + 10}" '
            f'text-anchor="end">{escape(name[:24])}</text>'
        )
    return _frame(title, parts, "lines")
