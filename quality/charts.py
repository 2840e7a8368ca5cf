"""The report's charts, drawn with matplotlib as PNG bytes.

Figures are built without pyplot (no global state, no GUI backend), so charts can be drawn
from any thread or worker process.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter, date2num
from matplotlib.figure import Figure

from quality.report_inputs import Point

_SIZE = (7.2, 2.6)  # inches; at 100 dpi a 720 x 260 image, the width of a mail column
_DPI = 100
_COLOURS = ("#1f6feb", "#8250df", "#bf3989", "#1a7f37")
_SEVERITY_COLOURS = {"warning": "#bf8700", "critical": "#cf222e"}


@dataclass(frozen=True)
class ThresholdLine:
    severity: str
    value: float


def _png(figure: Figure) -> bytes:
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    # No "Software" entry: the same chart gives the same bytes whatever matplotlib wrote it.
    figure.savefig(buffer, format="png", dpi=_DPI, metadata={"Software": None})
    return buffer.getvalue()


def trend_chart(
    title: str,
    unit: str,
    series: Mapping[str, Sequence[Point]],
    *,
    since: datetime,
    until: datetime,
    thresholds: Sequence[ThresholdLine] = (),
    log_scale: bool = False,
) -> bytes | None:
    """Lines over [since, until], one per series, with the alert thresholds as dashed lines.
    ``log_scale`` draws the values on a log axis when they are all positive (latencies of
    seconds and of minutes in one chart). None when no series has a point."""
    if not any(series.values()):
        return None
    figure = Figure(figsize=_SIZE, layout="constrained")
    axes = figure.add_subplot()
    for colour, (label, points) in zip(_COLOURS, series.items(), strict=False):
        if not points:
            continue
        axes.plot(
            date2num([p.taken_at for p in points]),  # type: ignore[no-untyped-call]
            [p.value for p in points],
            label=label,
            color=colour,
            linewidth=1.6,
            marker="o" if len(points) < 3 else None,
            markersize=3,
        )
    for line in thresholds:
        axes.axhline(
            line.value,
            color=_SEVERITY_COLOURS.get(line.severity, "#57606a"),
            linestyle="--",
            linewidth=1,
            label=f"{line.severity} {line.value:g}",
        )
    if log_scale and all(p.value > 0 for points in series.values() for p in points):
        axes.set_yscale("log")
    locator = AutoDateLocator()  # type: ignore[no-untyped-call]
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]
    axes.set_xlim(date2num([since, until]))  # type: ignore[no-untyped-call]
    axes.set_title(title, loc="left", fontsize=11)
    axes.set_ylabel(unit)
    axes.grid(True, alpha=0.3)
    axes.margins(y=0.15)
    axes.legend(loc="upper left", fontsize=8, frameon=False, ncols=4)
    return _png(figure)


def confidence_chart(counts: Sequence[int]) -> bytes | None:
    """Bars of the confidence distribution in ten buckets of 0.1; None without any count."""
    if not counts or not any(counts):
        return None
    figure = Figure(figsize=_SIZE, layout="constrained")
    axes = figure.add_subplot()
    edges = [bucket / 10 for bucket in range(len(counts))]
    colours = ["#cf222e" if edge < 0.7 else "#1a7f37" for edge in edges]
    axes.bar(edges, counts, width=0.095, align="edge", color=colours)
    axes.axvline(0.7, color="#57606a", linestyle="--", linewidth=1, label="high confidence 0.7")
    axes.set_xlim(0, 1)
    axes.set_xlabel("confidence")
    axes.set_ylabel("rows")
    axes.set_title("Confidence distribution (AI stage outputs)", loc="left", fontsize=11)
    axes.grid(True, axis="y", alpha=0.3)
    axes.legend(loc="upper left", fontsize=8, frameon=False)
    return _png(figure)
