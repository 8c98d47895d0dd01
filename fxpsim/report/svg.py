"""Interactive charts for the HTML reports as inline SVG: self-contained, no network.

Every bar, point and line carries a ``<title>``, so hovering shows what it is (layer, pass,
variant) and its value; per-layer charts sit in a ``zoom`` figure whose buttons (and
ctrl/cmd + wheel) widen the chart inside a scrolling box (:data:`ZOOM_JS`, inlined once per
page). Plain string building: no plotting library is imported, so writing ``report.html``
costs milliseconds, and the output is deterministic (fixed geometry, data in the order
given, numbers formatted the same way every time).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape

#: fixed palette (tab10 then tab20 light shades), cycled for more series
PALETTE: tuple[str, ...] = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94",
    "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5",
)
W, H = 960, 380  # viewBox of a full-width chart
LEFT, RIGHT, TOP, BOTTOM = 78, 190, 30, 96

CSS = """
figure.chart{margin:10px 0}figure.chart svg{width:100%;height:auto;display:block}
figure.chart .box{overflow:auto;border:1px solid #eee}
figure.chart .tools{font-size:11px;color:#666}
figure.chart .tools button{font-size:11px;margin-left:4px;padding:0 6px}
svg rect.d:hover,svg circle.d:hover{stroke:#000;stroke-width:1.5}
svg path.d:hover{stroke-width:3.5}
svg text{font-family:DejaVu Sans,Helvetica,Arial,sans-serif}
"""

ZOOM_JS = """
document.querySelectorAll('figure.zoom').forEach(function(f){
 var s=f.querySelector('svg'),z=1;
 function set(n){z=Math.max(1,Math.min(16,n));s.style.width=(100*z)+'%';}
 f.querySelectorAll('button').forEach(function(b){b.addEventListener('click',function(){
  var k=parseFloat(b.dataset.z);set(k===0?1:z*k);});});
 f.querySelector('.box').addEventListener('wheel',function(e){
  if(e.ctrlKey||e.metaKey){e.preventDefault();set(z*(e.deltaY<0?1.25:0.8));}},
  {passive:false});});
"""


def color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def num(v: float) -> str:
    """A value for a tooltip: integers with thousands separators, else 4 significant."""
    if isinstance(v, int) or (isinstance(v, float) and v.is_integer() and abs(v) < 1e15):
        return f"{int(v):,}"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:,.4g}"


def tick(v: float) -> str:
    """A short axis label (1.2M, 350k, 0.25)."""
    a = abs(v)
    for div, unit in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if a >= div:
            return f"{v / div:.3g}{unit}"
    return f"{v:.3g}"


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = min((m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw), default=10 * mag)
    out = [round(math.floor(lo / step) * step, 12)]
    while out[-1] < hi - step * 1e-9:  # the last tick is at or above hi: bars stay inside
        out.append(round(out[-1] + step, 12))
    return out


def _f(x: float) -> str:
    return f"{x:.1f}"


def _svg(body: list[str], title: str, width: int = W, height: int = H) -> str:
    # inline in HTML5: no xmlns needed (and no URL of any kind in the page)
    return (f'<svg viewBox="0 0 {width} {height}" '
            f'role="img" aria-label="{escape(title)}">'
            f'<text x="{width / 2:.0f}" y="18" text-anchor="middle" font-size="14">'
            f"{escape(title)}</text>" + "".join(body) + "</svg>")


def figure(svg: str, zoom: bool = False) -> str:
    """Wrap a chart; ``zoom`` adds the zoom buttons (per-layer charts)."""
    if not zoom:
        return f'<figure class="chart"><div class="box">{svg}</div></figure>'
    tools = ('<div class="tools">hover for values; zoom <button data-z="1.5">+</button>'
             '<button data-z="0.6667">&minus;</button><button data-z="0">reset</button>'
             " (or ctrl + wheel)</div>")
    return f'<figure class="chart zoom">{tools}<div class="box">{svg}</div></figure>'


def _legend(names: Sequence[str], colors: Sequence[str], x: float, y: float,
            dashed: Sequence[bool] = ()) -> list[str]:
    out = []
    for i, (name, c) in enumerate(zip(names, colors, strict=True)):
        yy = y + 16 * i
        if dashed and dashed[i]:
            out.append(f'<line x1="{_f(x)}" y1="{_f(yy + 5)}" x2="{_f(x + 12)}" '
                       f'y2="{_f(yy + 5)}" stroke="{c}" stroke-width="2" '
                       'stroke-dasharray="3,2"/>')
        else:
            out.append(f'<rect x="{_f(x)}" y="{_f(yy)}" width="11" height="11" fill="{c}"/>')
        out.append(f'<text x="{_f(x + 16)}" y="{_f(yy + 10)}" font-size="11">'
                   f"{escape(name)}</text>")
    return out


def _y_axis(ticks: Sequence[float], y_of, label: str, x0: float, x1: float,
            fmt=tick) -> list[str]:
    out = [f'<line x1="{x0}" y1="{TOP}" x2="{x0}" y2="{H - BOTTOM}" stroke="#444"/>']
    for t in ticks:
        y = y_of(t)
        out.append(f'<line x1="{x0}" y1="{_f(y)}" x2="{_f(x1)}" y2="{_f(y)}" stroke="#ddd"/>')
        out.append(f'<text x="{x0 - 5}" y="{_f(y + 4)}" text-anchor="end" font-size="11">'
                   f"{escape(fmt(t))}</text>")
    mid = (TOP + H - BOTTOM) / 2
    out.append(f'<text x="14" y="{_f(mid)}" font-size="12" text-anchor="middle" '
               f'transform="rotate(-90 14 {_f(mid)})">{escape(label)}</text>')
    return out


def _x_labels(labels: Sequence[str], x_of, width: float) -> list[str]:
    out = []
    rotate = len(labels) > 8 or max((len(s) for s in labels), default=0) * 6 > width
    for i, lab in enumerate(labels):
        x = x_of(i)
        y = H - BOTTOM + 14
        if rotate:
            out.append(f'<text x="{_f(x)}" y="{y}" font-size="10" text-anchor="end" '
                       f'transform="rotate(-60 {_f(x)} {y})">{escape(lab)}</text>')
        else:
            out.append(f'<text x="{_f(x)}" y="{y}" font-size="11" text-anchor="middle">'
                       f"{escape(lab)}</text>")
    return out


def stacked_bars(labels: Sequence[str], stacks: Mapping[str, Sequence[float]], *, title: str,
                 ylabel: str, unit: str = "", zoom: bool = True,
                 colors: Sequence[str] | None = None) -> str:
    """Vertical bars per label, one coloured segment per series; tooltip = label, series,
    value (and the bar's total)."""
    names = list(stacks)
    cols = list(colors) if colors is not None else [color(i) for i in range(len(names))]
    totals = [sum(stacks[s][i] for s in names) for i in range(len(labels))]
    ticks = nice_ticks(0.0, max(totals, default=0.0) or 1.0)
    top = ticks[-1]
    plot_w = W - LEFT - RIGHT
    slot = plot_w / max(len(labels), 1)

    def y_of(v: float) -> float:
        return H - BOTTOM - (H - BOTTOM - TOP) * v / top

    body = _y_axis(ticks, y_of, ylabel, LEFT, W - RIGHT)
    for i, lab in enumerate(labels):
        base = 0.0
        x = LEFT + slot * i + slot * 0.1
        for s, c in zip(names, cols, strict=True):
            v = stacks[s][i]
            if v <= 0:
                continue
            y0, y1 = y_of(base), y_of(base + v)
            body.append(f'<rect class="d" x="{_f(x)}" y="{_f(y1)}" width="{_f(slot * 0.8)}" '
                        f'height="{_f(max(y0 - y1, 0.5))}" fill="{c}"><title>{escape(lab)} · '
                        f"{escape(s)}: {num(v)} {escape(unit)} (of {num(totals[i])})"
                        "</title></rect>")
            base += v
    body += _x_labels(labels, lambda i: LEFT + slot * (i + 0.5), slot)
    body += _legend(names, cols, W - RIGHT + 12, TOP + 4)
    return figure(_svg(body, title), zoom)


def grouped_bars(groups: Sequence[str], series: Mapping[str, Sequence[float]], *, title: str,
                 ylabel: str, unit: str = "", colors: Sequence[str] | None = None) -> str:
    """Side-by-side bars: one group per x label, one bar (and colour) per series."""
    names = list(series)
    cols = list(colors) if colors is not None else [color(i) for i in range(len(names))]
    ticks = nice_ticks(0.0, max((v for s in names for v in series[s]), default=0.0) or 1.0)
    top = ticks[-1]
    slot = (W - LEFT - RIGHT) / max(len(groups), 1)
    bar = slot * 0.8 / max(len(names), 1)

    def y_of(v: float) -> float:
        return H - BOTTOM - (H - BOTTOM - TOP) * v / top

    body = _y_axis(ticks, y_of, ylabel, LEFT, W - RIGHT)
    for g, grp in enumerate(groups):
        for j, (s, c) in enumerate(zip(names, cols, strict=True)):
            v = series[s][g]
            x = LEFT + slot * g + slot * 0.1 + bar * j
            y = y_of(max(v, 0.0))
            body.append(f'<rect class="d" x="{_f(x)}" y="{_f(y)}" width="{_f(bar)}" '
                        f'height="{_f(max(H - BOTTOM - y, 0.5 if v > 0 else 0))}" '
                        f'fill="{c}"><title>{escape(s)} · {escape(grp)}: {num(v)} '
                        f"{escape(unit)}</title></rect>")
    body += _x_labels(groups, lambda i: LEFT + slot * (i + 0.5), slot)
    body += _legend(names, cols, W - RIGHT + 12, TOP + 4)
    return figure(_svg(body, title), zoom=len(groups) > 8)


def bars(labels: Sequence[str], values: Sequence[float], *, title: str, ylabel: str,
         percent: bool = False, unit: str = "") -> str:
    """One bar per label (``percent``: values are fractions shown 0..100 %)."""
    ys = [v * 100 for v in values] if percent else list(values)
    return stacked_bars(labels, {ylabel: ys}, title=title, ylabel=ylabel,
                        unit="%" if percent else unit)


def hbars(labels: Sequence[str], values: Sequence[float], *, title: str, xlabel: str) -> str:
    """Horizontal bars (first label on top), value printed at the end of each bar."""
    height = 50 + 22 * max(len(labels), 1)
    left, right = 170, 110
    top = max(values, default=0.0) or 1.0
    scale = (W - left - right) / top
    body = []
    for i, (lab, v) in enumerate(zip(labels, values, strict=True)):
        y = 30 + 22 * i
        body.append(f'<text x="{left - 6}" y="{y + 13}" text-anchor="end" font-size="11">'
                    f"{escape(lab)}</text>")
        body.append(f'<rect class="d" x="{left}" y="{y}" width="{_f(max(v * scale, 0.5))}" '
                    f'height="17" fill="{color(i)}"><title>{escape(lab)}: {num(v)} '
                    f"{escape(xlabel)}</title></rect>")
        body.append(f'<text x="{_f(left + v * scale + 5)}" y="{y + 13}" font-size="10">'
                    f"{num(v)}</text>")
    return figure(_svg(body, f"{title} ({xlabel})", height=height))


def curves(series: Mapping[str, Sequence[tuple[float, float]]], *, title: str, xlabel: str,
           ylabel: str, colors: Mapping[str, str] | None = None,
           dashed: Sequence[str] = (), integer_x: bool = True) -> str:
    """One line with point markers per series; ``integer_x``: ticks only on whole numbers
    (epochs)."""
    names = list(series)
    cols = [(colors or {}).get(n, color(i)) for i, n in enumerate(names)]
    xs = [p[0] for s in names for p in series[s]]
    ys = [p[1] for s in names for p in series[s]]
    x_lo, x_hi = min(xs, default=0.0), max(xs, default=1.0)
    if x_hi == x_lo:
        x_lo, x_hi = x_lo - 1, x_hi + 1
    y_ticks = nice_ticks(min(ys, default=0.0), max(ys, default=1.0))
    y_lo, y_hi = y_ticks[0], y_ticks[-1]
    if integer_x:
        step = max(1, math.ceil((x_hi - x_lo) / 10))
        x_ticks = [float(v) for v in range(math.ceil(x_lo), math.floor(x_hi) + 1, step)]
    else:
        x_ticks = nice_ticks(x_lo, x_hi)

    def x_of(v: float) -> float:
        return LEFT + (W - LEFT - RIGHT) * (v - x_lo) / (x_hi - x_lo)

    def y_of(v: float) -> float:
        return H - BOTTOM - (H - BOTTOM - TOP) * (v - y_lo) / ((y_hi - y_lo) or 1.0)

    body = _y_axis(y_ticks, y_of, ylabel, LEFT, W - RIGHT)
    for t in x_ticks:
        body.append(f'<text x="{_f(x_of(t))}" y="{H - BOTTOM + 16}" font-size="11" '
                    f'text-anchor="middle">{escape(tick(t))}</text>')
    body.append(f'<text x="{(LEFT + W - RIGHT) / 2:.0f}" y="{H - BOTTOM + 36}" font-size="12" '
                f'text-anchor="middle">{escape(xlabel)}</text>')
    for name, c in zip(names, cols, strict=True):
        pts = series[name]
        dash = ' stroke-dasharray="6,4"' if name in dashed else ""
        path = " ".join(f"{'M' if i == 0 else 'L'}{_f(x_of(x))},{_f(y_of(y))}"
                        for i, (x, y) in enumerate(pts))
        body.append(f'<path class="d" d="{path}" fill="none" stroke="{c}" stroke-width="2"'
                    f"{dash}><title>{escape(name)}</title></path>")
        for x, y in pts:
            body.append(f'<circle class="d" cx="{_f(x_of(x))}" cy="{_f(y_of(y))}" r="3.5" '
                        f'fill="{c}"><title>{escape(name)} · {escape(xlabel)} {num(x)}: '
                        f"{num(y)}</title></circle>")
    body += _legend(names, cols, W - RIGHT + 12, TOP + 4, [n in dashed for n in names])
    return figure(_svg(body, title))


def roofline(points: Mapping[str, Sequence[tuple[float, float, str]]],
             peaks: Mapping[str, float], bytes_per_cycle: float, *, title: str) -> str:
    """Log-log roofline: x = MACs per DRAM byte, y = MACs per cycle. ``points``: series
    (pass) -> (intensity, achieved MACs/cycle, label); each point is labelled with its layer
    and its tooltip gives layer, pass and both coordinates. Roofs per precision mode."""
    pts = [(x, y) for s in points.values() for x, y, _ in s if x > 0 and y > 0]
    top = max(peaks.values(), default=1.0)
    knee = top / bytes_per_cycle if bytes_per_cycle > 0 else 1.0
    x_lo = 10 ** math.floor(math.log10(min([p[0] for p in pts] + [knee / 8])))
    x_hi = 10 ** math.ceil(math.log10(max([p[0] for p in pts] + [knee * 8])))
    y_lo = 10 ** math.floor(math.log10(min([p[1] for p in pts] + [top / 1e3])))
    y_hi = 10 ** math.ceil(math.log10(top * 1.01))

    def x_of(v: float) -> float:
        return LEFT + (W - LEFT - RIGHT) * math.log10(v / x_lo) / math.log10(x_hi / x_lo)

    def y_of(v: float) -> float:
        return H - BOTTOM - (H - BOTTOM - TOP) * math.log10(v / y_lo) / math.log10(y_hi / y_lo)

    y_ticks = [10.0 ** e for e in range(round(math.log10(y_lo)), round(math.log10(y_hi)) + 1)]
    body = _y_axis(y_ticks, y_of, "achieved MACs per cycle", LEFT, W - RIGHT)
    for e in range(round(math.log10(x_lo)), round(math.log10(x_hi)) + 1):
        x = x_of(10.0 ** e)
        body.append(f'<line x1="{_f(x)}" y1="{TOP}" x2="{_f(x)}" y2="{H - BOTTOM}" '
                    'stroke="#eee"/>')
        body.append(f'<text x="{_f(x)}" y="{H - BOTTOM + 16}" font-size="11" '
                    f'text-anchor="middle">{escape(tick(10.0 ** e))}</text>')
    body.append(f'<text x="{(LEFT + W - RIGHT) / 2:.0f}" y="{H - BOTTOM + 36}" font-size="12" '
                'text-anchor="middle">operational intensity (MACs per DRAM byte)</text>')
    for i, (mode, peak) in enumerate(peaks.items()):
        knee_x = peak / bytes_per_cycle
        a = (x_lo, min(peak, bytes_per_cycle * x_lo))
        path = (f"M{_f(x_of(a[0]))},{_f(y_of(max(a[1], y_lo)))} "
                f"L{_f(x_of(knee_x))},{_f(y_of(peak))} L{_f(x_of(x_hi))},{_f(y_of(peak))}")
        dash = ("", ' stroke-dasharray="6,4"', ' stroke-dasharray="2,3"')[min(i, 2)]
        body.append(f'<path class="d" d="{path}" fill="none" stroke="#222" stroke-width="1.5"'
                    f"{dash}><title>roof {escape(mode)}: {num(peak)} MACs/cycle, knee at "
                    f"{num(knee_x)} MACs/byte</title></path>")
        body.append(f'<text x="{_f(x_of(x_hi) - 4)}" y="{_f(y_of(peak) - 4)}" font-size="10" '
                    f'text-anchor="end">{escape(mode)} peak {num(peak)}/cycle</text>')
    names = list(points)
    for i, name in enumerate(names):
        for x, y, lab in points[name]:
            if x <= 0 or y <= 0:
                continue
            cx, cy = x_of(x), y_of(y)
            body.append(f'<circle class="d" cx="{_f(cx)}" cy="{_f(cy)}" r="4" fill="{color(i)}"'
                        f' fill-opacity="0.85"><title>{escape(lab)} · {escape(name)}: '
                        f"{num(x)} MACs/byte, {num(y)} MACs/cycle</title></circle>")
            body.append(f'<text x="{_f(cx + 5)}" y="{_f(cy - 4)}" font-size="8" '
                        f'fill="{color(i)}">{escape(lab)}</text>')
    body += _legend(names, [color(i) for i in range(len(names))], W - RIGHT + 12, TOP + 4)
    return figure(_svg(body, title), zoom=True)
