"""Charts for the dashboard's pages, drawn by matplotlib as SVG documents.

Every ``*_svg`` function returns the text of one standalone SVG image, and ``await draw(chart,
...)`` runs one off the event loop. A page serves the image from a route of its own and shows it
with ``<img src=... alt=...>`` next to a table of the same figures (the table is what a screen
reader reads). An image, not SVG inside the page: matplotlib styles its
shapes with ``style`` attributes, which the dashboard's Content-Security-Policy forbids in the
page itself, and an image can carry no script either.

matplotlib is imported inside ``_figure``: the running bot pays for it only once a chart is
drawn. Figures are ``matplotlib.figure.Figure`` objects with their own canvas, never pyplot's
global state, so two requests drawing at once do not share anything.
"""

from __future__ import annotations

import asyncio
import io
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ParamSpec

from aiohttp import web

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

SVG_CONTENT_TYPE = "image/svg+xml"
# The accessible palette matplotlib calls "tableau-colorblind10": groups stay apart for readers
# who do not see red and green.
PALETTE = (
    "#006BA4",
    "#FF800E",
    "#ABABAB",
    "#595959",
    "#5F9ED1",
    "#C85200",
    "#898989",
    "#A2C8EC",
    "#FFBC79",
    "#CFCFCF",
)
# matplotlib's font cache is not made for several threads: one chart is drawn at a time.
_DRAWING = threading.RLock()
P = ParamSpec("P")
WIDTH_INCHES = 7.0
HEIGHT_INCHES = 3.6


def _figure(height: float = HEIGHT_INCHES) -> tuple[Figure, Axes]:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(WIDTH_INCHES, height), layout="constrained")
    axes = figure.add_subplot()
    axes.spines[["top", "right"]].set_visible(False)
    axes.set_prop_cycle(color=PALETTE)
    return figure, axes


def _svg(figure: Figure) -> str:
    from matplotlib import rc_context

    buffer = io.StringIO()
    # No timestamp and no random ids in the file: the same figures give the same bytes. The
    # salt is a setting of matplotlib's shared state, so it is set under the drawing lock.
    with _DRAWING, rc_context({"svg.hashsalt": "borgerdialog"}):
        figure.savefig(buffer, format="svg", metadata={"Date": None})
    return buffer.getvalue()


def _counts(axis: Any, values: Sequence[float]) -> None:
    # Counts get whole-number ticks (no "2.5 participants"); shares and scores keep fractions.
    from matplotlib.ticker import MaxNLocator

    if all(float(value).is_integer() for value in values):
        axis.set_major_locator(MaxNLocator(integer=True))


def _titles(axes: Axes, title: str, x_label: str, y_label: str) -> None:
    axes.set_title(title, loc="left")
    if x_label:
        axes.set_xlabel(x_label)
    if y_label:
        axes.set_ylabel(y_label)


def bar_chart_svg(
    labels: Sequence[str],
    values: Sequence[float],
    title: str,
    *,
    horizontal: bool = False,
    x_label: str = "",
    y_label: str = "",
) -> str:
    """Bars, one per label: upright by default, lying down with ``horizontal`` (long labels)."""
    height = max(HEIGHT_INCHES, 0.35 * len(labels) + 1.2) if horizontal else HEIGHT_INCHES
    figure, axes = _figure(height)
    positions = range(len(labels))
    if horizontal:
        axes.barh(positions, values, color=PALETTE[0])
        axes.set_yticks(positions, labels)
        axes.invert_yaxis()  # the first label on top, as in the table beside it
        _counts(axes.xaxis, values)
    else:
        axes.bar(positions, values, color=PALETTE[0])
        # Many bars (the days of a long consultation): about a dozen labels, evenly spread.
        step = max(1, len(labels) // 12)
        axes.set_xticks(
            list(positions)[::step],
            list(labels)[::step],
            rotation=45 if len(labels) > 8 else 0,
            ha="right" if len(labels) > 8 else "center",
        )
        _counts(axes.yaxis, values)
    _titles(axes, title, x_label, y_label)
    return _svg(figure)


def line_chart_svg(
    labels: Sequence[str],
    series: Mapping[str, Sequence[float]],
    title: str,
    *,
    x_label: str = "",
    y_label: str = "",
) -> str:
    """One line per named series over the same labels (days, rounds); a legend from two on."""
    figure, axes = _figure()
    positions = list(range(len(labels)))
    for name, values in series.items():
        axes.plot(positions, values, marker="o", label=name)
    # Not every day's label fits under a long consultation: about a dozen, evenly spread.
    step = max(1, len(labels) // 12)
    axes.set_xticks(positions[::step], list(labels)[::step], rotation=45, ha="right")
    _counts(axes.yaxis, [value for values in series.values() for value in values])
    axes.set_ylim(bottom=0)
    if len(series) > 1:
        axes.legend(frameon=False)
    _titles(axes, title, x_label, y_label)
    return _svg(figure)


def histogram_svg(
    values: Sequence[float],
    title: str,
    *,
    bins: int | Sequence[float] = 10,
    x_label: str = "",
    y_label: str = "",
) -> str:
    """How many values fall in each bin (a number of equal bins, or the bins' edges)."""
    figure, axes = _figure()
    axes.hist(values, bins=bins, color=PALETTE[0], edgecolor="white")
    _counts(axes.yaxis, [0])
    _titles(axes, title, x_label, y_label)
    return _svg(figure)


def scatter_svg(
    groups: Mapping[str, Sequence[tuple[float, float]]],
    title: str,
    *,
    x_label: str = "",
    y_label: str = "",
) -> str:
    """Points in groups (opinion groups, say), each group its colour and marker, with a legend."""
    figure, axes = _figure(HEIGHT_INCHES + 1)
    markers = "osD^v<>pPX"
    for index, (name, points) in enumerate(groups.items()):
        xs = [x for x, _ in points]
        ys = [y for _, y in points]
        axes.scatter(xs, ys, label=name, marker=markers[index % len(markers)], alpha=0.8)
    if groups:
        axes.legend(frameon=False)
    _titles(axes, title, x_label, y_label)
    return _svg(figure)


async def draw(chart: Callable[P, str], *args: P.args, **kwargs: P.kwargs) -> str:
    """Draw a chart (one of the functions above) in a thread: a chart takes tens of
    milliseconds, which the event loop (and every citizen's chat) must not wait for."""

    def locked() -> str:
        from matplotlib import rc_context

        # Labels are what staff and citizens wrote: "$" must stay a dollar sign. matplotlib
        # reads text between two of them as TeX-like maths, drawn as something else than written,
        # and "$\foo$" (an unknown symbol) made the chart a 500. Set while the texts are made,
        # under the lock: rc settings are matplotlib's shared state.
        with _DRAWING, rc_context({"text.parse_math": False}):
            return chart(*args, **kwargs)

    return await asyncio.to_thread(locked)


def svg_response(svg: str) -> web.Response:
    """An SVG chart as the answer to its route (not kept in a shared computer's cache)."""
    return web.Response(
        text=svg, content_type=SVG_CONTENT_TYPE, headers={"Cache-Control": "no-store"}
    )


# -- the results page's charts (bot/admin/results.py) -------------------------------------------


def stacked_bar_chart_svg(
    labels: Sequence[str],
    series: Mapping[str, Sequence[float]],
    title: str,
    *,
    x_label: str = "",
    y_label: str = "",
) -> str:
    """Lying bars, one per label, each split into the named series (agree, disagree, pass);
    each series has its colour and a hatching, so it is told apart without colour too."""
    height = max(HEIGHT_INCHES, 0.4 * len(labels) + 1.4)
    figure, axes = _figure(height)
    positions = range(len(labels))
    hatches = ("", "//", "..", "xx", "\\\\")
    left = [0.0] * len(labels)
    for index, (name, values) in enumerate(series.items()):
        axes.barh(
            positions,
            values,
            left=left,
            label=name,
            color=PALETTE[index % len(PALETTE)],
            hatch=hatches[index % len(hatches)],
            edgecolor="white",
        )
        left = [start + value for start, value in zip(left, values, strict=True)]
    axes.set_yticks(positions, labels)
    axes.invert_yaxis()  # the first label on top, as in the table beside it
    _counts(axes.xaxis, left)
    if series:
        # Under the chart, clear of the title and of the bars.
        figure.legend(frameon=False, ncols=len(series), loc="outside lower center")
    _titles(axes, title, x_label, y_label)
    return _svg(figure)
