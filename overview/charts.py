"""Bar charts as server-rendered SVG: geometry here, markup in overview/_chart.html.

No chart library and no script: the page works under the strict CSP (no inline script or
style; colours come from classes in overview.css), prints, and needs nothing vendored.
Sent mails are the lower part of each bar, failed ones stacked on top.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

WIDTH = 720
HEIGHT = 180
# Room for the y-axis labels on the left and the x-axis labels below.
LEFT = 36
RIGHT = 24  # half a date label: the last one is centred under the last bar
TOP = 8
BOTTOM = 22
GAP = 1  # between bars


@dataclass(frozen=True)
class Bar:
    x: float
    width: float
    sent_y: float
    sent_height: float
    failed_y: float
    failed_height: float
    title: str


@dataclass(frozen=True)
class Tick:
    position: float
    label: str


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    plot_left: int
    plot_right: int
    plot_top: int
    plot_height: int
    baseline: int
    bars: list[Bar]
    x_ticks: list[Tick]
    y_ticks: list[Tick]
    sent_total: int
    failed_total: int


def nice_ceiling(value: int) -> int:
    """The axis maximum: 1, 2 or 5 times a power of ten, at least value (and 1)."""
    if value <= 1:
        return 1
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * power >= value:
            return step * power
    return 10 * power  # pragma: no cover - the loop always returns


def bar_chart(
    keys: Sequence[object],
    sent: dict,
    failed: dict,
    *,
    title: Callable[[object, int, int], str],
    label: Callable[[object], str],
    label_every: int,
) -> Chart:
    """One bar per key (a day or an hour), in order. title(key, sent, failed) is the bar's
    tooltip, label(key) the axis label under every label_every-th bar (the last included)."""
    count = max(len(keys), 1)
    plot_width = WIDTH - LEFT - RIGHT
    plot_height = HEIGHT - TOP - BOTTOM
    baseline = TOP + plot_height
    top = nice_ceiling(max((sent.get(k, 0) + failed.get(k, 0) for k in keys), default=0))
    slot = plot_width / count
    bars = []
    x_ticks = []
    for index, key in enumerate(keys):
        n_sent, n_failed = sent.get(key, 0), failed.get(key, 0)
        sent_height = plot_height * n_sent / top
        failed_height = plot_height * n_failed / top
        x = LEFT + index * slot
        bars.append(
            Bar(
                x=round(x + GAP / 2, 2),
                width=round(max(slot - GAP, 1), 2),
                sent_y=round(baseline - sent_height, 2),
                sent_height=round(sent_height, 2),
                failed_y=round(baseline - sent_height - failed_height, 2),
                failed_height=round(failed_height, 2),
                title=title(key, n_sent, n_failed),
            )
        )
        if (len(keys) - 1 - index) % label_every == 0:
            x_ticks.append(Tick(position=round(x + slot / 2, 2), label=label(key)))
    y_ticks = [
        Tick(position=round(baseline - plot_height * value / top, 2), label=str(value))
        for value in sorted({0, top // 2, top})
        if value == 0 or value * 2 == top or value == top
    ]
    return Chart(
        width=WIDTH,
        height=HEIGHT,
        plot_left=LEFT,
        plot_right=WIDTH - RIGHT,
        plot_top=TOP,
        plot_height=plot_height,
        baseline=baseline,
        bars=bars,
        x_ticks=x_ticks,
        y_ticks=y_ticks,
        sent_total=sum(sent.get(k, 0) for k in keys),
        failed_total=sum(failed.get(k, 0) for k in keys),
    )


def hour_key(hour: dt.datetime) -> dt.datetime:
    """How the selectors key an hour: its start in UTC."""
    return hour.astimezone(dt.UTC)
