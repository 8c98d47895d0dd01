"""Sweep reports: ``sweep.html`` (self-contained: PNG plots as data URIs, inline CSS and a
few lines of inline JavaScript to sort the table, no network) and the terminal table of the
Pareto set. Rendered from the results DataFrame only.

Plots: Pareto fronts of accuracy vs energy (when points trained) and cycles vs area (points
on the front of the sweep's objectives are highlighted, infeasible points drawn hollow), and
for a grid of exactly two axes a heatmap of energy (and accuracy) over the two axes.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any

from fxpsim.report import plots
from fxpsim.report.html import img, note, page
from fxpsim.sweeps.spec import SweepSpec

TABLE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("label", "point"), ("status", "status"), ("cycles", "cycles"),
    ("energy_uj", "energy (uJ)"), ("area_mm2", "area (mm2)"), ("accuracy", "accuracy"),
    ("dram_bytes", "DRAM bytes"), ("feasible", "feasible"), ("pareto", "Pareto"),
    ("error", "error"),
)
SORT_JS = """<script>
document.querySelectorAll('table.sortable th').forEach(function(th, col){
 th.style.cursor='pointer'; th.title='click to sort';
 th.addEventListener('click', function(){
  var tb=th.closest('table').tBodies[0], rows=Array.from(tb.rows);
  var asc=th.dataset.asc!=='1'; th.dataset.asc=asc?'1':'0';
  rows.sort(function(a,b){
   var x=a.cells[col].dataset.v||a.cells[col].textContent, y=b.cells[col].dataset.v||b.cells[col].textContent;
   var fx=parseFloat(x), fy=parseFloat(y);
   var c=(!isNaN(fx)&&!isNaN(fy))?fx-fy:x.localeCompare(y);
   return asc?c:-c;});
  rows.forEach(function(r){tb.appendChild(r);});});});
</script>"""


def _num(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if f != f else f


def _fmt(col: str, v: Any) -> tuple[str, str]:
    """(shown text, sort key) of one cell."""
    f = _num(v)
    if col in ("label", "status", "error"):
        return ("" if v is None or (isinstance(v, float) and v != v) else str(v)), ""
    if col in ("feasible", "pareto"):
        return ("yes" if v else ""), ("1" if v else "0")
    if f is None:
        return "", ""
    if col == "accuracy":
        return f"{f:.4f}", repr(f)
    if col in ("energy_uj", "area_mm2"):
        return f"{f:,.4f}", repr(f)
    return f"{f:,.0f}", repr(f)


def _table(frame: Any) -> str:
    head = "".join(f"<th>{escape(t)}</th>" for _, t in TABLE_COLUMNS)
    body = []
    for _, r in frame.iterrows():
        cells = []
        for col, _t in TABLE_COLUMNS:
            text, key = _fmt(col, r.get(col))
            if col == "label" and r.get("status") == "ok" and isinstance(r.get("run_dir"), str):
                rel = "runs/" + r["run_dir"].rstrip("/").split("/")[-1] + "/report.md"
                text = f'<a href="{escape(rel)}">{escape(text)}</a>'
            else:
                text = escape(text)
            attr = f' data-v="{escape(key)}"' if key else ""
            cells.append(f"<td{attr}>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (f'<table class="sortable"><thead><tr>{head}</tr></thead><tbody>'
            + "\n".join(body) + "</tbody></table>")


def front_plot(frame: Any, x: str, y: str, *, title: str, xlabel: str, ylabel: str) -> str:
    """Scatter of ``y`` against ``x`` for successful points; the sweep's Pareto points are
    red, the 2-D front of (x min, y min or max for accuracy) is drawn as a step line."""
    from fxpsim.sweeps.pareto import front

    ok = frame[(frame["status"] == "ok")]
    pts: list[tuple[float, float, bool, bool]] = []
    for a, b, p, f in zip(ok[x], ok[y], ok["pareto"], ok["feasible"], strict=True):
        fa, fb = _num(a), _num(b)
        if fa is not None and fb is not None:
            pts.append((fa, fb, bool(p), bool(f)))
    maximize_y = y == "accuracy"
    feas = [(a, b) for a, b, _, f in pts if f]
    on = front([(a, -b if maximize_y else b) for a, b in feas])
    line = sorted(pt for pt, flag in zip(feas, on, strict=True) if flag)

    def draw(fig: Any) -> None:
        ax = fig.add_subplot()
        for a, b, p, f in pts:
            ax.scatter([a], [b], s=28 if p else 14, zorder=3 if p else 2,
                       facecolors=(plots.color(3) if p else plots.color(0)) if f else "none",
                       edgecolors=plots.color(3) if p else plots.color(0))
        if line:
            ax.step([a for a, _ in line], [b for _, b in line], where="post",
                    color=plots.color(3), linewidth=1, alpha=0.7)
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)

    return plots._render(draw, 7.0, 4.2)


def heatmap(frame: Any, spec: SweepSpec, metric: str, label: str) -> str:
    """``metric`` over a 2-axis grid (first axis = rows); blank cells for failed points."""
    a0, a1 = spec.axes
    grid: list[list[float | None]] = [[None] * len(a1.values) for _ in a0.values]
    for _, r in frame.iterrows():
        v = _num(r.get(metric)) if r.get("status") == "ok" else None
        k0, k1 = str(r.get(a0.key)), str(r.get(a1.key))
        if k0 in a0.values and k1 in a1.values:
            grid[a0.values.index(k0)][a1.values.index(k1)] = v

    def draw(fig: Any) -> None:
        import numpy as np

        ax = fig.add_subplot()
        data = np.array([[np.nan if v is None else v for v in row] for row in grid])
        im = ax.imshow(data, cmap="viridis", aspect="auto")
        fig.colorbar(im, ax=ax, label=label)
        ax.set_xticks(range(len(a1.values)), list(a1.values), fontsize=8)
        ax.set_yticks(range(len(a0.values)), list(a0.values), fontsize=8)
        ax.set_xlabel(a1.key)
        ax.set_ylabel(a0.key)
        if data.size <= 120:
            for i, row in enumerate(grid):
                for j, v in enumerate(row):
                    if v is not None:
                        ax.text(j, i, f"{v:.4g}", ha="center", va="center", fontsize=7,
                                color="white")
        ax.set_title(f"{label} over {a0.key} x {a1.key}")

    return plots._render(draw, 7.0, 0.9 + 0.45 * max(4, len(a0.values)))


def sweep_html(frame: Any, spec: SweepSpec, objectives: Sequence[tuple[str, str]],
               name: str) -> str:
    ok = frame[frame["status"] == "ok"]
    n_fail = int((frame["status"] != "ok").sum())
    parts = [f"<h1>fxpsim sweep {escape(name)}</h1>",
             "<p>" + escape(
                 f"{len(frame)} points ({len(ok)} done, {n_fail} failed), mode {spec.mode}; "
                 "axes: " + "; ".join(f"{a.key} = {', '.join(a.values)}" for a in spec.axes)
                 + "; fixed: " + (", ".join(f"{k}={v}" for k, v in spec.fixed) or "-"))
             + "</p>",
             "<p>" + escape("objectives: " + ", ".join(f"{d} {m}" for m, d in objectives)
                            + "; constraints: "
                            + (", ".join(c.text for c in spec.constraints) or "none"))
             + "</p>"]
    parts.append("<h2>Pareto fronts</h2>")
    has_acc = "accuracy" in ok and ok["accuracy"].notna().any()
    if has_acc:
        parts.append(img(front_plot(frame, "energy_uj", "accuracy", title="accuracy vs energy",
                                    xlabel="energy per step (uJ)", ylabel="test accuracy"),
                         "accuracy vs energy"))
    else:
        parts.append(note("accuracy vs energy: no point trained (timing only)"))
    if len(ok):
        parts.append(img(front_plot(frame, "area_mm2", "cycles", title="cycles vs area",
                                    xlabel="area (mm2)", ylabel="cycles per step"),
                         "cycles vs area"))
    parts.append(note("filled: feasible; hollow: violates a constraint; red: on the Pareto "
                      "front of all objectives; line: the 2-D front of the two plotted "
                      "metrics among feasible points"))
    if spec.mode == "grid" and len(spec.axes) == 2 and len(ok):
        parts.append("<h2>Heatmaps</h2>")
        parts.append(img(heatmap(frame, spec, "energy_uj", "energy (uJ)"), "energy heatmap"))
        if has_acc:
            parts.append(img(heatmap(frame, spec, "accuracy", "accuracy"), "accuracy heatmap"))
    parts.append("<h2>Points</h2>")
    parts.append(note("click a column header to sort; a point links to its run folder"))
    parts.append(_table(frame))
    parts.append(SORT_JS)
    return page(f"fxpsim sweep {name}", "\n".join(parts) + "\n")


def print_pareto(frame: Any, objectives: Sequence[tuple[str, str]], axes: Sequence[str]) -> None:
    """Terminal table of the Pareto set (rich)."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:
        console.width = max(console.width, 140)
    front_rows = frame[frame["pareto"]]
    table = Table(title=f"Pareto set ({len(front_rows)} of {len(frame)} points; "
                        + ", ".join(f"{d} {m}" for m, d in objectives) + ")")
    for a in axes:
        table.add_column(a)
    cols = [("cycles", "cycles"), ("energy_uj", "energy uJ"), ("area_mm2", "area mm2"),
            ("accuracy", "accuracy")]
    for _, t in cols:
        table.add_column(t, justify="right")
    for _, r in front_rows.iterrows():
        table.add_row(*[str(r.get(a, "")) for a in axes],
                      *[_fmt(c, r.get(c))[0] for c, _ in cols])
    console.print(table)
