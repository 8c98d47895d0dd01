"""Charts for the HTML reports, as PNG ``data:`` URIs (self-contained, no network).

Matplotlib is used through ``Figure`` + the Agg canvas (no pyplot global state, no backend
switch) and imported lazily, so only report writing pays for it. Output bytes are
deterministic: fixed figure sizes and dpi, the bundled DejaVu font, PNG metadata without the
``Software`` entry, a fixed ``svg.hashsalt`` and data in the order given.

Every function takes plain numbers and labels (the HTML writers shape the data) and returns
``data:image/png;base64,...``.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from typing import Any

DPI = 100
#: fixed palette (matplotlib's tab10 then tab20 light shades), cycled for more series
PALETTE: tuple[str, ...] = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94",
    "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5",
)
_RC: dict[Any, Any] = {  # matplotlib rc names -> values
    "svg.hashsalt": "fxpsim",
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.axisbelow": True,
}


def color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png_uri(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _render(draw, width: float, height: float) -> str:
    import matplotlib

    with matplotlib.rc_context(_RC):
        fig = _figure(width, height)
        draw(fig)
        return _png_uri(fig)


def stacked_bars(labels: Sequence[str], stacks: Mapping[str, Sequence[float]], *, title: str,
                 ylabel: str, width: float = 10.0, height: float = 4.2) -> str:
    """Vertical bars per label, one colored stack segment per series (legend = series)."""

    def draw(fig) -> None:
        ax = fig.add_subplot()
        xs = range(len(labels))
        bottom = [0.0] * len(labels)
        for i, (name, values) in enumerate(stacks.items()):
            ax.bar(xs, values, bottom=bottom, label=name, color=color(i), width=0.8)
            bottom = [b + v for b, v in zip(bottom, values, strict=True)]
        ax.set_xticks(list(xs))
        long = max((len(s) for s in labels), default=0) > 14
        rotate = 90 if len(labels) > 8 else (20 if long else 0)
        ax.set_xticklabels(list(labels), rotation=rotate, fontsize=7 if rotate else 9,
                           ha="right" if rotate == 20 else "center")
        ax.set_title(title)
        ax.set_ylabel(ylabel)
        ax.set_xlim(-0.6, len(labels) - 0.4)
        if stacks:  # outside the axes: never hides a bar
            ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0),
                      ncols=1 if len(stacks) <= 14 else 2)

    return _render(draw, width, height)


def bars(labels: Sequence[str], values: Sequence[float], *, title: str, ylabel: str,
         percent: bool = False, width: float = 10.0, height: float = 3.6) -> str:
    """One bar per label (``percent``: values are fractions, axis shows 0..100 %)."""

    def draw(fig) -> None:
        ax = fig.add_subplot()
        ys = [v * 100 for v in values] if percent else list(values)
        ax.bar(range(len(labels)), ys, color=color(0), width=0.8)
        ax.set_xticks(list(range(len(labels))))
        rotate = 90 if len(labels) > 8 else 0
        ax.set_xticklabels(list(labels), rotation=rotate, fontsize=7 if rotate else 9)
        ax.set_title(title)
        ax.set_ylabel(ylabel)
        if percent:
            ax.set_ylim(0, 100)
        ax.set_xlim(-0.6, len(labels) - 0.4)

    return _render(draw, width, height)


def hbars(labels: Sequence[str], values: Sequence[float], *, title: str, xlabel: str,
          width: float = 10.0) -> str:
    """Horizontal bars (first label on top), value printed at the end of each bar."""
    height = 1.2 + 0.28 * max(len(labels), 1)

    def draw(fig) -> None:
        ax = fig.add_subplot()
        ys = list(range(len(labels)))[::-1]
        ax.barh(ys, list(values), color=[color(i) for i in range(len(labels))])
        ax.set_yticks(ys)
        ax.set_yticklabels(list(labels))
        top = max(values, default=0.0) or 1.0
        for y, v in zip(ys, values, strict=True):
            ax.text(v + top * 0.01, y, f"{v:,.3g}", va="center", fontsize=7)
        ax.set_xlim(0, top * 1.15)
        ax.set_title(title)
        ax.set_xlabel(xlabel)

    return _render(draw, width, height)


def curves(series: Mapping[str, Sequence[tuple[float, float]]], *, title: str, xlabel: str,
           ylabel: str, width: float = 6.0, height: float = 3.6) -> str:
    """One line (with markers) per series of (x, y) points."""

    def draw(fig) -> None:
        ax = fig.add_subplot()
        for i, (name, pts) in enumerate(series.items()):
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", markersize=3,
                    label=name, color=color(i))
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        if series:
            ax.legend(fontsize=7, loc="best")

    return _render(draw, width, height)


def roofline(points: Mapping[str, Sequence[tuple[float, float]]],
             peaks: Mapping[str, float], bytes_per_cycle: float, *, title: str,
             width: float = 7.0, height: float = 4.6) -> str:
    """Log-log roofline: x = MACs per DRAM byte, y = MACs per cycle.

    ``points``: series name -> (intensity, achieved MACs/cycle); ``peaks``: roof name ->
    peak MACs/cycle; the slanted roof is ``bytes_per_cycle x intensity``.
    """

    def draw(fig) -> None:
        ax = fig.add_subplot()
        xs = [p[0] for pts in points.values() for p in pts if p[0] > 0]
        lo = min(xs, default=1.0) / 4
        hi = max(xs, default=1.0) * 4
        top = max(peaks.values(), default=1.0)
        lo = min(lo, top / bytes_per_cycle / 8) if bytes_per_cycle > 0 else lo
        hi = max(hi, top / bytes_per_cycle * 8) if bytes_per_cycle > 0 else hi
        grid = [lo * (hi / lo) ** (i / 200) for i in range(201)]
        for i, (name, peak) in enumerate(peaks.items()):
            roof = [min(peak, bytes_per_cycle * x) for x in grid]
            ax.plot(grid, roof, color="black", linewidth=1.2 - 0.3 * min(i, 2),
                    linestyle=("-", "--", ":")[min(i, 2)], label=f"roof {name} ({peak:g}/cycle)")
        for i, (name, pts) in enumerate(points.items()):
            good = [p for p in pts if p[0] > 0 and p[1] > 0]
            ax.scatter([p[0] for p in good], [p[1] for p in good], s=14, color=color(i),
                       label=name, alpha=0.85)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(lo, hi)
        ax.set_title(title)
        ax.set_xlabel("operational intensity (MACs per DRAM byte)")
        ax.set_ylabel("achieved MACs per cycle")
        ax.legend(fontsize=7, loc="lower right")

    return _render(draw, width, height)
