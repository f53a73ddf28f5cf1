"""Server-rendered SVG charts for the dashboard: geometry computed here, markup in
templates/subscribers/_weekly_chart.html. No JavaScript."""

import math
from dataclasses import dataclass

from .services import WeekActivity

WIDTH, HEIGHT = 640, 260
LEFT, RIGHT, TOP, BOTTOM = 44, 8, 12, 44
SERIES = (("signups", "Signups"), ("unsubscribes", "Unsubscribes"))


@dataclass(frozen=True)
class Bar:
    """One bar: its box in SVG units, the series it belongs to, and what a tooltip says."""

    x: float
    y: float
    width: float
    height: float
    series: str
    tooltip: str


@dataclass(frozen=True)
class Tick:
    """A gridline with its value, at height y."""

    y: float
    value: int


@dataclass(frozen=True)
class Label:
    """A week label under the x axis."""

    x: float
    text: str


@dataclass(frozen=True)
class BarChart:
    """Everything the template needs to draw the chart."""

    width: int
    height: int
    left: int
    right: float
    top: int
    baseline: float
    bars: list[Bar]
    ticks: list[Tick]
    labels: list[Label]
    series: tuple[tuple[str, str], ...]
    description: str


def nice_step(raw: float) -> int:
    """The smallest of 1, 2, 5 × 10ⁿ that is at least `raw` (and at least 1)."""
    if raw <= 1:
        return 1
    power = 10 ** math.floor(math.log10(raw))
    return next(step * power for step in (1, 2, 5, 10) if step * power >= raw)


def week_label(activity: WeekActivity) -> str:
    """'3 Mar' for the week starting on 3 March."""
    return f"{activity.week_start.day} {activity.week_start:%b}"


def weekly_chart(weeks: list[WeekActivity]) -> BarChart:
    """A grouped bar chart of signups and unsubscribes per week, with a plain-language description."""
    highest = max([w.signups for w in weeks] + [w.unsubscribes for w in weeks] + [0])
    step = nice_step(highest / 4)
    top_value = step * 4
    baseline = HEIGHT - BOTTOM
    plot_height = baseline - TOP
    slot = (WIDTH - LEFT - RIGHT) / max(len(weeks), 1)
    bar_width = slot * 0.36
    bars, labels = [], []
    for index, week in enumerate(weeks):
        slot_left = LEFT + index * slot
        for offset, (series, title) in enumerate(SERIES):
            value = getattr(week, series)
            height = plot_height * value / top_value
            x = slot_left + slot * 0.14 + offset * bar_width
            tooltip = f"Week of {week_label(week)}: {value} {title.lower()}"
            bars.append(
                Bar(round(x, 1), round(baseline - height, 1), round(bar_width, 1), round(height, 1), series, tooltip)
            )
        if (len(weeks) - 1 - index) % 2 == 0:  # every other week, ending with the current one
            labels.append(Label(round(slot_left + slot / 2, 1), week_label(week)))
    ticks = [Tick(round(baseline - plot_height * k / 4, 1), step * k) for k in range(5)]
    total_in = sum(w.signups for w in weeks)
    total_out = sum(w.unsubscribes for w in weeks)
    description = (
        f"Bar chart of the last {len(weeks)} weeks"
        + (f", from the week of {week_label(weeks[0])} to the week of {week_label(weeks[-1])}" if weeks else "")
        + f": {total_in} signups and {total_out} unsubscribes in all. The table below gives each week's numbers."
    )
    return BarChart(WIDTH, HEIGHT, LEFT, WIDTH - RIGHT, TOP, baseline, bars, ticks, labels, SERIES, description)
