"""The files and the terminal table of ``fxpsim compare``, all rendered from the
``compare.json`` data (:func:`fxpsim.compare.compare_dict`).

Columns show the hardware cost of the number formats and rounding modes beside the usual
totals: random bits drawn (stochastic rounding), the energy of the RNG and of the
requantizer's rounding (``requant``: a round-to-nearest adder, or the stochastic adder fed by
the RNG), each with its delta against the first variant.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any, cast

from fxpsim.compare import accuracy_value
from fxpsim.report import strict_json, svg
from fxpsim.report.html import NO_TRAINING, history_series, note, page, table

CSV_COLUMNS: tuple[str, ...] = (
    "variant", "cycles", "cycles_delta_pct", "seconds", "energy_uj", "energy_delta_pct",
    "dram_bytes", "stall_cycles", "rng_bits", "rng_energy_uj", "requant_events",
    "requant_energy_uj", "accuracy", "accuracy_delta",
)


#: terminal columns left out first when the table does not fit
COMPARE_DROP: tuple[str, ...] = ("RNG (uJ)", "requant (uJ)", "DRAM MB", "Δ acc", "RNG bits",
                                 "Δ energy", "Δ cycles")


def _pct(d: Mapping[str, Any] | None) -> str:
    if not d or d.get("rel") is None:
        return ""
    return f"{d['rel'] * 100:+.3g}"


def _comp(v: Mapping[str, Any], name: str) -> float:
    return v["totals"]["energy_by_component"].get(name, 0.0)


def _diverged(v: Mapping[str, Any]) -> int | None:
    """The step at which the variant's training diverged (NaN/inf), if it did."""
    acc = v.get("accuracy")
    return acc.get("diverged_at_step") if isinstance(acc, Mapping) else None




def rows(cmp: Mapping[str, Any]) -> list[dict[str, object]]:
    """One flat row per variant (the CSV columns plus one column per axis)."""
    out = []
    for v in cmp["variants"]:
        t, d = v["totals"], v["deltas"]
        acc = accuracy_value(v)
        row: dict[str, object] = {"variant": v["label"], **v["values"]}
        row.update(
            cycles=t["cycles"], cycles_delta_pct=_pct(d["cycles"]), seconds=t["seconds"],
            energy_uj=round(t["energy_pj"] / 1e6, 6), energy_delta_pct=_pct(d["energy_pj"]),
            dram_bytes=t["dram_bytes"], stall_cycles=t["stall_cycles"], rng_bits=t["rng_bits"],
            rng_energy_uj=round(_comp(v, "rng") / 1e6, 6), requant_events=t["requant_events"],
            requant_energy_uj=round(_comp(v, "requant") / 1e6, 6),
            accuracy=(acc if acc is not None else
                      f"diverged at step {_diverged(v)}" if _diverged(v) else ""),
            accuracy_delta=f"{d['accuracy']['abs']:+.4f}" if "accuracy" in d else "",
        )
        out.append(row)
    return out


def compare_csv(cmp: Mapping[str, Any]) -> str:
    buf = io.StringIO()
    cols = ["variant", *cmp["axes"], *CSV_COLUMNS[1:]]
    writer = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    writer.writeheader()
    for r in rows(cmp):
        writer.writerow(r)
    return buf.getvalue()


def _display_rows(cmp: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    head = ["variant", "cycles", "Δ cycles", "energy (uJ)", "Δ energy", "DRAM MB", "RNG bits",
            "RNG (uJ)", "requant (uJ)", "accuracy", "Δ acc"]
    body = []
    for r in rows(cmp):
        first = r["variant"] == cmp["variants"][0]["label"]
        body.append([
            str(r["variant"]), f"{r['cycles']:,}", "(base)" if first else f"{r['cycles_delta_pct']}%",
            f"{r['energy_uj']:,.3f}", "(base)" if first else f"{r['energy_delta_pct']}%",
            f"{cast(float, r['dram_bytes']) / 1e6:,.2f}", f"{r['rng_bits']:,}",
            f"{r['rng_energy_uj']:,.3f}", f"{r['requant_energy_uj']:,.3f}",
            ("-" if r["accuracy"] == "" else r["accuracy"] if isinstance(r["accuracy"], str)
             else f"{r['accuracy']:.4f}"),
            "" if first or not r["accuracy_delta"] else str(r["accuracy_delta"]),
        ])
    return head, body


def _describe(cmp: Mapping[str, Any]) -> list[str]:
    axes = "; ".join(f"{k} = {', '.join(v)}" for k, v in cmp["axes"].items())
    shared = " ".join(f"{k}={v}" for k, v in cmp["shared"].items()) or "(defaults)"
    return [f"axes: {axes}", f"shared options: {shared}; seed {cmp['seed']}",
            "deltas are against the first variant"]


def compare_md(cmp: Mapping[str, Any]) -> str:
    head, body = _display_rows(cmp)
    lines = [f"# fxpsim compare `{cmp['name']}`", ""]
    lines += [f"- {d}" for d in _describe(cmp)]
    lines += ["", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    passes = _passes(cmp)
    lines += ["", "## Cycles per pass", "", "| variant | " + " | ".join(passes) + " |",
              "|" + "---|" * (len(passes) + 1)]
    for v in cmp["variants"]:
        cells = [f"{v['per_pass'][p]['cycles']:,}" if p in v["per_pass"] else "" for p in passes]
        lines.append(f"| {v['label']} | " + " | ".join(cells) + " |")
    lines.append("")
    return "\n".join(lines)


def _passes(cmp: Mapping[str, Any]) -> list[str]:
    return list(dict.fromkeys(p for v in cmp["variants"] for p in v["pass_order"]))


def _components(cmp: Mapping[str, Any]) -> list[str]:
    total: dict[str, float] = {}
    for v in cmp["variants"]:
        for k, e in v["totals"]["energy_by_component"].items():
            total[k] = total.get(k, 0.0) + e
    return [k for k, _ in sorted(total.items(), key=lambda kv: (-kv[1], kv[0]))]


def compare_html(cmp: Mapping[str, Any]) -> str:
    """compare.html: the table, then grouped bar charts (one colour per variant, the same
    in every chart) of cycles and energy by pass, energy by component, rounding cost, and
    the accuracy/loss curves in the variants' colours."""
    variants = cmp["variants"]
    colors = [svg.color(i) for i in range(len(variants))]
    passes = _passes(cmp)

    def by_pass(field: str, scale: float) -> dict[str, list[float]]:
        return {v["label"]: [v["per_pass"].get(p, {}).get(field, 0) / scale for p in passes]
                for v in variants}

    def same(field: str) -> str:
        values = {v["totals"][field] for v in variants}
        return note(f"every variant has the same {field.replace('_', ' ')}: the axes change "
                    "no work on the accelerator") if len(values) == 1 else ""

    head, body = _display_rows(cmp)
    comps = _components(cmp)
    parts = [f"<h1>fxpsim compare <code>{escape(cmp['name'])}</code></h1><ul>"
             + "".join(f"<li>{escape(d)}</li>" for d in _describe(cmp)) + "</ul>",
             '<section id="table"><h2>Variants</h2>', table(head, body), "</section>\n",
             '<section id="cycles"><h2>Cycles per pass</h2>', same("cycles"),
             svg.grouped_bars(passes, by_pass("cycles", 1), title="cycles per pass",
                              ylabel="cycles", unit="cycles", colors=colors),
             "</section>\n", '<section id="energy"><h2>Energy</h2>',
             svg.grouped_bars(passes, by_pass("energy_pj", 1e6), title="energy per pass",
                              ylabel="uJ", unit="uJ", colors=colors)]
    by_comp = {v["label"]: [_comp(v, k) / 1e6 for k in comps] for v in variants}
    parts.append(svg.grouped_bars(comps, by_comp, title="energy by component", ylabel="uJ",
                                  unit="uJ", colors=colors))
    parts.append("</section>\n")
    cost = {v["label"]: [_comp(v, "rng") / 1e6, _comp(v, "requant") / 1e6] for v in variants}
    parts += ['<section id="rounding_cost"><h2>Hardware cost of rounding</h2>',
              svg.grouped_bars(["RNG", "requantizer"], cost, title="rounding hardware energy",
                               ylabel="uJ", unit="uJ", colors=colors),
              table(["variant", "RNG bits", "RNG (uJ)", "requant events", "requant (uJ)"],
                    [[r["variant"], f"{r['rng_bits']:,}", f"{r['rng_energy_uj']:,.3f}",
                      f"{r['requant_events']:,}", f"{r['requant_energy_uj']:,.3f}"]
                     for r in rows(cmp)]),
              note("stochastic rounding draws random bits (RNG energy) and uses the stochastic "
                   "requantizer price; nearest rounding pays the rounding adder (requant)."),
              "</section>\n", '<section id="accuracy"><h2>Accuracy and loss</h2>']
    loss: dict[str, list] = {}
    acc: dict[str, list] = {}
    line_color: dict[str, str] = {}
    for v, c in zip(variants, colors, strict=True):
        lo, ac = history_series(v, v["label"])
        for series in (lo, ac):
            line_color.update(dict.fromkeys(series, c))
        loss.update(lo)
        acc.update(ac)
    test = [k for k in (*loss, *acc) if "test" in k]  # test curves dashed, train solid
    if acc:
        parts.append(svg.curves(acc, title="accuracy per variant (dashed: test)",
                                xlabel="epoch", ylabel="accuracy", colors=line_color,
                                dashed=test))
    if loss:
        parts.append(svg.curves(loss, title="loss per variant (dashed: test)", xlabel="epoch",
                                ylabel="loss", colors=line_color, dashed=test))
    if not acc and not loss:
        parts.append(note(NO_TRAINING if all(v["accuracy"] is None for v in variants)
                          else "no accuracy history recorded"))
    parts.append("</section>\n")
    return page(f"fxpsim compare {cmp['name']}", "".join(parts))


def compare_json(cmp: Mapping[str, Any]) -> str:
    return strict_json.dumps(cmp, "compare.json", indent=2, sort_keys=True) + "\n"


def compare_files(cmp: Mapping[str, Any], formats: Sequence[str]) -> dict[str, str]:
    render = {"json": ("compare.json", compare_json), "csv": ("compare.csv", compare_csv),
              "md": ("compare.md", compare_md), "html": ("compare.html", compare_html)}
    return {render[f][0]: render[f][1](cmp) for f in formats}


def print_compare(cmp: Mapping[str, Any], console=None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    if not console.is_terminal:
        console.width = max(console.width, 160)
    from rich.markup import escape as esc  # values such as [rne,stochastic] are not markup

    from fxpsim.report.fit import dropped_note, fit_table

    head, body = _display_rows(cmp)
    caption = "; ".join(_describe(cmp))

    def build(cols: Sequence[str]) -> Table:
        tab = Table(title=esc(f"compare {cmp['name']}"), caption=esc(caption))
        keep = [head.index(c) for c in cols]
        for i in keep:
            # numbers never wrap or get cut; a long variant label folds onto a second line
            tab.add_column(head[i], justify="left" if i == 0 else "right", no_wrap=i > 0,
                           overflow="fold")
        for row in body:
            tab.add_row(*(esc(row[i]) for i in keep))
        return tab

    tab, dropped = fit_table(console, build, head, COMPARE_DROP)
    if dropped:
        tab.caption = esc(caption + dropped_note(dropped, "compare.csv"))
    console.print(tab)
