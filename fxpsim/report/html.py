"""``report.html``: one self-contained page (inline CSS, inline SVG charts with hover
tooltips, a few lines of inline script for zooming, no network) rendered from the data of
``summary.json`` and ``layers.csv`` only, so ``fxpsim report <folder>`` re-renders it byte
for byte without re-simulating.

Sections: totals, per pass, per-layer cycles stacked by pass, energy by component (total and
per pass), roofline (every point labelled with its layer), utilization and stalls, accuracy
and loss curves, training metrics (SQNR, zig-zag, steps to target, and any other per-layer
numbers the training plane reports), overflow counts, the per-layer table. Training sections
say "no training in this run" when it did not train. Warnings are listed at the top.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from fxpsim.report import svg

Row = Mapping[str, str]  # one layers.csv row (strings, as read back)

CSS = """
body{font-family:DejaVu Sans,Helvetica,Arial,sans-serif;margin:24px auto;max-width:1100px;
color:#222;line-height:1.4}
h1{font-size:22px}h2{font-size:17px;border-bottom:1px solid #ccc;padding-bottom:3px;
margin-top:28px}
table{border-collapse:collapse;font-size:12px;margin:8px 0}
th,td{border:1px solid #ccc;padding:2px 7px;text-align:right}
th{background:#f0f0f0}td:first-child,th:first-child{text-align:left}
img{max-width:100%;display:block;margin:6px 0}
.note{color:#666;font-style:italic}code{background:#f4f4f4;padding:0 3px}
nav a{margin-right:10px;font-size:13px}
footer{margin-top:30px;font-size:11px;color:#777}
.scroll{overflow-x:auto;max-width:100%}.scroll td:first-child,.scroll th:first-child{
position:sticky;left:0;background:#fff}
.warn{color:#8a5300;background:#fff4e0;padding:2px 6px}
"""

SECTIONS: tuple[tuple[str, str], ...] = (
    ("totals", "Totals"),
    ("passes", "Per pass"),
    ("cycles", "Cycles per layer"),
    ("energy", "Energy by component"),
    ("area", "Area by component"),
    ("dram", "DRAM traffic by tensor"),
    ("roofline", "Roofline"),
    ("utilization", "Utilization and stalls"),
    ("accuracy", "Accuracy and loss"),
    ("metrics", "Training metrics"),
    ("overflow", "Overflow counts"),
    ("layers", "Per layer"),
    ("mappings", "DRAM traffic and mappings"),
)
NO_TRAINING = "no training in this run"


# ---- small helpers ---------------------------------------------------------------------------
def num(row: Row, key: str) -> float:
    """A numeric CSV cell (empty -> 0)."""
    text = row.get(key, "") or "0"
    return float(text) if any(c in text for c in ".eEn") else int(text)


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    head = "".join(f"<th>{escape(str(h))}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def img(uri: str, alt: str) -> str:
    """An embedded PNG (the sweep report's matplotlib charts)."""
    return f'<img src="{uri}" alt="{escape(alt)}">'


def note(text: str) -> str:
    return f'<p class="note">{escape(text)}</p>'


def ordered(items) -> list:
    return list(dict.fromkeys(items))


def pass_names(summary: Mapping[str, Any]) -> list[str]:
    """Passes in run order: ``pass_order`` if present, then any other ``per_pass`` key."""
    order = [p for p in summary.get("pass_order", []) if p in summary["per_pass"]]
    return order + sorted(set(summary["per_pass"]) - set(order))


def uj(pj: float) -> str:
    return f"{pj / 1e6:,.3f}"


# ---- data shaping ----------------------------------------------------------------------------
def layer_pass_sums(rows: Sequence[Row], key: str) -> tuple[list[str], dict[str, list[float]]]:
    """(layers in order, {pass: [sum of ``key`` per layer]}) over the CSV rows."""
    layers = ordered(r["layer"] for r in rows)
    passes = ordered(r["pass"] for r in rows)
    index = {name: i for i, name in enumerate(layers)}
    out = {p: [0.0] * len(layers) for p in passes}
    for r in rows:
        out[r["pass"]][index[r["layer"]]] += num(r, key)
    return layers, out


def history_series(summary: Mapping[str, Any], variant: str = ""
                   ) -> tuple[dict[str, list], dict[str, list]]:
    """({name: [(x, loss)]}, {name: [(x, accuracy)]}) from ``summary["accuracy"]["history"]``.

    Every numeric field of the history entries whose name contains ``loss`` (or ``acc``) is
    a series; x is ``epoch`` (else ``step``, else the entry's index).
    """
    acc = summary.get("accuracy")
    hist = acc.get("history") if isinstance(acc, Mapping) else None
    loss: dict[str, list] = {}
    accuracy: dict[str, list] = {}
    if not isinstance(hist, list):
        return loss, accuracy
    for i, entry in enumerate(hist):
        if not isinstance(entry, Mapping):
            continue
        x = entry.get("epoch", entry.get("step", i))
        for k, v in entry.items():
            if k in ("epoch", "step") or not isinstance(v, int | float) or isinstance(v, bool):
                continue
            name = f"{variant} {k}".strip()
            if "loss" in k:
                loss.setdefault(name, []).append((x, v))
            elif "acc" in k:
                accuracy.setdefault(name, []).append((x, v))
    return loss, accuracy


def overflow_counts(summary: Mapping[str, Any]) -> tuple[list[str], dict[str, list[float]]]:
    """(layers, {counter: [count per layer]}) for every field of
    ``summary["training"]["layers"]`` (a list of {layer|name: ..} or a {layer: {..}} map)
    whose name contains ``overflow``, ``saturat`` or ``clip``."""
    training = summary.get("training")
    raw = training.get("layers") if isinstance(training, Mapping) else None
    items: list[tuple[str, Mapping]] = []
    if isinstance(raw, Mapping):
        items = [(str(k), v) for k, v in raw.items() if isinstance(v, Mapping)]
    elif isinstance(raw, list):
        for i, v in enumerate(raw):
            if isinstance(v, Mapping):
                items.append((str(v.get("layer", v.get("name", i))), v))
    layers = [name for name, _ in items]
    counters: dict[str, list[float]] = {}
    for i, (_, stats) in enumerate(items):
        for k, v in _flatten(stats).items():
            if any(w in k for w in ("overflow", "saturat", "clip")):
                counters.setdefault(k, [0.0] * len(items))[i] = v
    return layers, counters


def _flatten(d: Mapping, prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(_flatten(v, key + "."))
        elif isinstance(v, int | float) and not isinstance(v, bool):
            out[key] = v
    return out


#: per-layer bar charts show at most this many layers (the ones with the most cycles): a bar
#: per layer for a 10,000-layer workload is unreadable and costs minutes of drawing
MAX_BAR_LAYERS = 64


def top_layers(layers: Sequence[str], weight: Sequence[float],
               limit: int = MAX_BAR_LAYERS) -> tuple[list[int], str]:
    """(indices of the ``limit`` layers with the largest ``weight``, in model order; a note
    saying so, or "" when every layer is shown)."""
    if len(layers) <= limit:
        return list(range(len(layers))), ""
    keep = sorted(sorted(range(len(layers)), key=lambda i: (-weight[i], i))[:limit])
    return keep, (f"showing the {limit} of {len(layers):,} layers with the most cycles; "
                  "every layer is in the table below and in layers.csv")


def _pick(values: Sequence[Any], keep: Sequence[int]) -> list[Any]:
    return [values[i] for i in keep]


# ---- sections --------------------------------------------------------------------------------
def _header(s: Mapping[str, Any]) -> str:
    hw, model, run = s["hw"], s["model"], s["run"]
    items = [
        f"accelerator: <b>{escape(hw['name'])}</b> ({escape(hw['source'])}), "
        f"{escape(hw['array'])}, {hw['freq_mhz']:g} MHz, config digest "
        f"<code>{escape(hw['digest'][:16])}</code>",
        f"model: <b>{escape(model['name'])}</b> ({escape(model['source'])}), "
        f"{model['macs_per_sample']:,} MACs/sample, {model['params']:,} parameters",
        f"step: phase <code>{escape(run['phase'])}</code>, algo <code>{escape(run['algo'])}"
        f"</code>, batch {run['batch']}, W/A/G bits {run['w_bits']}/{run['a_bits']}/"
        f"{run['g_bits']}, rounding W/A/G {escape(run['rounding_w'])}/"
        f"{escape(run['rounding_a'])}/{escape(run['rounding_g'])}, seed {run['seed']}, "
        f"timing <code>{escape(run['timing'])}</code>",
        f"energy table: {escape(hw['energy_table'])}",
        *[f"note: {escape(n)}" for n in s.get("notes", [])],
        *[f'<span class="warn">warning: {escape(w)}</span>' for w in s.get("warnings", [])],
    ]
    nav = "".join(f'<a href="#{k}">{escape(t)}</a>' for k, t in SECTIONS)
    return (f"<h1>fxpsim run <code>{escape(s['name'])}</code></h1><ul>"
            + "".join(f"<li>{i}</li>" for i in items) + f"</ul><nav>{nav}</nav>")


def _totals(s: Mapping[str, Any]) -> str:
    t = s["totals"]
    row = [f"{t['cycles']:,}", f"{t['seconds'] * 1e3:.4f}", uj(t["energy_pj"]), f"{t['macs']:,}",
           f"{t['dram_bytes']:,}", f"{t['stall_cycles']:,}", f"{t['rng_bits']:,}",
           f"{t['requant_events']:,}", t["bound"]]
    head = ["cycles", "time (ms)", "energy (uJ)", "MACs", "DRAM bytes", "stall cycles",
            "RNG bits", "requant events", "bound"]
    passes = [[p, f"{m['cycles']:,}", uj(m["energy_pj"]), f"{m['macs']:,}", f"{m['dram_bytes']:,}",
               f"{m['stall_cycles']:,}", f"{m['rng_bits']:,}"]
              for p, m in ((p, s["per_pass"][p]) for p in pass_names(s))]
    return (_section("totals", table(head, [row]))
            + _section("passes", table(["pass", "cycles", "energy (uJ)", "MACs", "DRAM bytes",
                                        "stall cycles", "RNG bits"], passes)))


def _cycles(rows: Sequence[Row]) -> str:
    layers, stacks = layer_pass_sums(rows, "cycles")
    if not layers:
        return _section("cycles", note("no layers"))
    keep, why = top_layers(layers, [sum(v[i] for v in stacks.values())
                                    for i in range(len(layers))])
    stacks = {p: _pick(v, keep) for p, v in stacks.items()}
    return _section("cycles", svg.stacked_bars(
        _pick(layers, keep), stacks, title="cycles per layer, stacked by pass", ylabel="cycles",
        unit="cycles") + (note(why) if why else ""))


def _energy(s: Mapping[str, Any]) -> str:
    t = s["totals"]
    comp = sorted(t["energy_by_component"].items(), key=lambda kv: (-kv[1], kv[0]))
    names = [k for k, _ in comp]
    parts = []
    if comp:
        parts.append(svg.hbars(names, [v / 1e6 for _, v in comp],
                               title="energy by component (whole step)", xlabel="uJ"))
        passes = pass_names(s)
        stacks = {k: [s["per_pass"][p]["energy_by_component"].get(k, 0.0) / 1e6 for p in passes]
                  for k in names}
        parts.append(svg.stacked_bars(passes, stacks, title="energy per pass by component",
                                      ylabel="uJ", unit="uJ", zoom=len(passes) > 8))
    total = t["energy_pj"]
    parts.append(table(["component", "energy (uJ)", "share"], [
        [k, uj(v), f"{v / total:.2%}" if total else "-"] for k, v in comp]))
    parts.append(note("mac.<mode>: MACs by precision; sram.<name>: each on-chip memory; "
                      "rng: random bits for stochastic rounding; requant: rounding "
                      "(output scaling) in the requantizer; leakage: static power x time."))
    return _section("energy", "".join(parts))


def _dram(rows: Sequence[Row]) -> str:
    """Per-layer DRAM bytes stacked by tensor kind, from the ``dram_<kind>_bytes`` columns
    of layers.csv (whichever kinds the time plane reports)."""
    kinds = [c[5:-6] for c in (rows[0] if rows else {})
             if c.startswith("dram_") and c.endswith("_bytes")
             and c not in ("dram_read_bytes", "dram_write_bytes")]
    layers = ordered(r["layer"] for r in rows)
    stacks = {k: layer_pass_sums(rows, f"dram_{k}_bytes")[1] for k in kinds}
    per_kind = {k: [sum(v[p][i] for p in v) for i in range(len(layers))]
                for k, v in stacks.items()}
    per_kind = {k: v for k, v in per_kind.items() if any(v)}
    if not per_kind:
        return _section("dram", note("this run's layers.csv has no per-tensor DRAM traffic "
                                     "columns; DRAM bytes per layer are in the per-layer "
                                     "table"))
    return _section("dram", svg.stacked_bars(
        layers, per_kind, title="DRAM traffic per layer, by tensor (all passes)",
        ylabel="bytes", unit="bytes"))


def _area(s: Mapping[str, Any]) -> str:
    area = s.get("area")
    if not isinstance(area, Mapping):  # a summary.json written before the area model
        return _section("area", note("no area in this summary"))
    return _section("area", table(["component", "area (mm2)", "share"], area_rows(area))
                    + note(f"area table: {area['reference']}"))


def area_rows(area: Mapping[str, Any]) -> list[list[object]]:
    """``[component, mm2, share]`` rows, largest first, then the total."""
    total = area["total_mm2"]
    comp = sorted(area["by_component_mm2"].items(), key=lambda kv: (-kv[1], kv[0]))
    return ([[k, f"{v:.4f}", f"{v / total:.1%}" if total else "-"] for k, v in comp]
            + [["total", f"{total:.4f}", "100.0%"]])


def _roofline(s: Mapping[str, Any], rows: Sequence[Row]) -> str:
    cfg = s.get("config", {})
    try:
        arr = cfg["mac_array"]
        peak_by_mode = {m["name"]: arr["rows"] * arr["cols"] * m["macs_per_pe_per_cycle"]
                        for m in arr["precision_modes"]}
        bpc = (cfg["dram"]["bandwidth_gb_s"] * 1e9 * cfg["dram"]["efficiency"]
               / (cfg["clock"]["freq_mhz"] * 1e6))
    except (KeyError, TypeError):
        return _section("roofline", note("the config in summary.json has no array/DRAM data"))
    gemm = [r for r in rows if r.get("m") and num(r, "cycles") > 0]
    points: dict[str, list[tuple[float, float, str]]] = {}
    no_dram = 0
    for r in gemm:
        b = num(r, "dram_read_bytes") + num(r, "dram_write_bytes")
        if b == 0:
            no_dram += 1
            continue
        points.setdefault(r["pass"], []).append((num(r, "macs") / b,
                                                 num(r, "macs") / num(r, "cycles"), r["layer"]))
    modes = ordered(r["precision"] for r in gemm)
    peaks = {m: peak_by_mode[m] for m in modes if m in peak_by_mode}
    if not points or not peaks:
        return _section("roofline", note("no GEMM work with DRAM traffic in this run"))
    extra = f"; {no_dram} GEMM(s) without DRAM traffic not shown" if no_dram else ""
    return _section("roofline", svg.roofline(
        points, peaks, bpc, title="roofline: one point per GEMM layer x pass")
        + note(f"DRAM roof: {bpc:.3g} bytes/cycle achievable; compute roof per precision "
               f"mode{extra}."))


def _utilization(rows: Sequence[Row]) -> str:
    layers = ordered(r["layer"] for r in rows if r.get("m"))
    if not layers:
        return _section("utilization", note("no GEMM layers"))
    busy = {k: 0.0 for k in layers}  # sum(util x cycles) = MACs / peak
    cyc = {k: 0.0 for k in layers}
    for r in rows:
        if r.get("m"):
            busy[r["layer"]] += num(r, "utilization") * num(r, "cycles")
            cyc[r["layer"]] += num(r, "cycles")
    util = [busy[k] / cyc[k] if cyc[k] else 0.0 for k in layers]
    all_layers = ordered(r["layer"] for r in rows)
    causes = ("compute_cycles", "stall_dram", "stall_buffer", "stall_requant", "stall_vector")
    stacks = {c.replace("_cycles", ""): [0.0] * len(all_layers) for c in causes}
    idx = {k: i for i, k in enumerate(all_layers)}
    for r in rows:
        for c in causes:
            stacks[c.replace("_cycles", "")][idx[r["layer"]]] += num(r, c)
    stacks = {k: v for k, v in stacks.items() if any(v)}
    keep, why = top_layers(layers, [cyc[k] for k in layers])
    keep_all, why_all = top_layers(all_layers, [sum(v[i] for v in stacks.values())
                                                for i in range(len(all_layers))])
    stacks = {k: _pick(v, keep_all) for k, v in stacks.items()}
    return _section("utilization", svg.bars(
        _pick(layers, keep), _pick(util, keep),
        title="MAC array utilization per GEMM layer (MACs / (cycles x peak))",
        ylabel="utilization (%)", percent=True) + (note(why) if why else "")
        + svg.stacked_bars(_pick(all_layers, keep_all), stacks, title="cycles per layer: "
                           "compute and stalls by cause", ylabel="cycles", unit="cycles")
        + (note(why_all) if why_all else ""))


def _accuracy(s: Mapping[str, Any]) -> str:
    loss, acc = history_series(s)
    final = s.get("accuracy")
    parts = []
    if isinstance(final, Mapping):
        scalars = [[k, f"{v:.4f}"] for k, v in final.items()
                   if isinstance(v, int | float) and not isinstance(v, bool)]
        if scalars:
            parts.append(table(["metric", "value"], scalars))
    if acc:
        parts.append(svg.curves(acc, title="accuracy", xlabel="epoch", ylabel="accuracy"))
    if loss:
        parts.append(svg.curves(loss, title="loss", xlabel="epoch", ylabel="loss"))
    parts.extend(_training_metrics(s))
    if not parts:
        parts.append(note(NO_TRAINING if final is None else "no accuracy history recorded"))
    return _section("accuracy", "".join(parts))


def _training_metrics(s: Mapping[str, Any]) -> list[str]:
    """Code flips, probe zig-zag, MACs to target, per-method logs and loss vs MACs."""
    t = s.get("training")
    if not isinstance(t, Mapping):
        return []
    zigzag = t.get("zigzag")
    z: Mapping[str, Any] = zigzag if isinstance(zigzag, Mapping) else {}
    rows = [[k, v] for k, v in (
        ("code flip rate (per weight per step)", t.get("code_flip_rate")),
        ("code flip-back rate (A→B→A)", t.get("code_flip_back_rate")),
        ("zig-zag on the probe batch (cos<0 fraction)", z.get("probe_neg_cos_fraction")),
        ("zig-zag of the FB blend on the probe batch", z.get("probe_blend_neg_cos_fraction")),
        ("steps to target", t.get("steps_to_target")),
        ("MACs to target", t.get("macs_to_target"))) if v is not None]
    logs = t.get("method_logs")
    if isinstance(logs, Mapping):
        rows += [[f"{name} (final)", v.get("final")] for name, v in sorted(logs.items())
                 if isinstance(v, Mapping) and v.get("final") is not None]
    out = [table(["training metric", "value"], rows)] if rows else []
    curve = t.get("loss_curve")
    if isinstance(curve, list) and len(curve) > 1:
        pts = [(p["macs"], p["loss"]) for p in curve
               if isinstance(p, Mapping) and p.get("loss") is not None]
        out.append(svg.curves({"batch loss": pts}, title="loss against GEMM MACs",
                              xlabel="MACs executed", ylabel="loss"))
    return out


def _overflow(s: Mapping[str, Any]) -> str:
    if "training" not in s:
        return _section("overflow", note(NO_TRAINING + " (overflow and saturation counts "
                                         "come from the bit-exact training plane)"))
    layers, counters = overflow_counts(s)
    if not counters:
        return _section("overflow", note("the training plane reported no overflow counts"))
    # event counts and clipped fractions have different units: one chart each
    counts = {k: v for k, v in counters.items() if "fraction" not in k}
    fractions = {k: [x * 100 for x in v] for k, v in counters.items() if "fraction" in k}
    body = ""
    if any(any(v) for v in counts.values()):
        body += svg.stacked_bars(layers, {k: v for k, v in counts.items() if any(v)},
                                 title="accumulator overflow / saturation events per layer",
                                 ylabel="events", unit="events")
    else:
        body += note("no accumulator overflow or saturation events in any layer")
    if any(any(v) for v in fractions.values()):
        body += svg.grouped_bars(layers, {k: v for k, v in fractions.items() if any(v)},
                                 title="clipped values per layer (%)", ylabel="%", unit="%")
    body += '<div class="scroll">' + table(["layer", *counters], [
        [name, *(f"{counters[c][i]:.4%}" if "fraction" in c else f"{counters[c][i]:,.0f}"
                 for c in counters)] for i, name in enumerate(layers)]) + "</div>"
    return _section("overflow", body)


def _scalar(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool) or not isinstance(v, int | float):
        return escape(str(v))
    return f"{v:,}" if isinstance(v, int) else f"{v:.4g}"


def _metrics(s: Mapping[str, Any]) -> str:
    """SQNR, zig-zag, steps to target and whatever other per-layer numbers the training
    plane reported (columns follow the keys present, so new metrics show up by themselves)."""
    t = s.get("training")
    if not isinstance(t, Mapping):
        return _section("metrics", note(NO_TRAINING))
    parts = []
    head = [["steps to target loss", f"{_scalar(t.get('steps_to_target'))} (target "
             f"{_scalar(t.get('target_loss'))})"]]
    zz = t.get("zigzag")
    z: Mapping[str, Any] = zz if isinstance(zz, Mapping) else {}
    for k, v in z.items():
        if not isinstance(v, list | dict):
            head.append([f"zig-zag {k.replace('_', ' ')}", _scalar(v)])
    for k, v in t.items():  # other scalar metrics (e.g. code flips) as they appear
        if k not in ("steps_to_target", "target_loss", "accuracy") and isinstance(
                v, int | float) and not isinstance(v, bool) and any(
                w in k for w in ("flip", "sqnr", "zig", "osc", "clip")):
            head.append([k.replace("_", " "), _scalar(v)])
    parts.append(table(["metric", "value"], head))
    per_layer: dict[str, dict[str, Any]] = {}
    for src, prefix in ((t.get("layers"), ""), (z.get("layers"), "zig-zag ")):
        for row in src if isinstance(src, list) else []:
            if isinstance(row, Mapping):
                cells = per_layer.setdefault(str(row.get("layer", "?")), {})
                for k, v in _flatten(row).items():
                    if "overflow" not in k and k != "layer":
                        cells[prefix + k.replace("_", " ")] = v
    cols = ordered(k for cells in per_layer.values() for k in cells)
    if per_layer:
        sqnr = {k: [per_layer[name].get(k) or 0.0 for name in per_layer]
                for k in cols if "sqnr" in k}
        if any(any(v) for v in sqnr.values()):
            parts.append(svg.grouped_bars(list(per_layer), sqnr, title="SQNR per layer "
                                          "against the float shadow (dB)", ylabel="dB",
                                          unit="dB"))
        parts.append('<div class="scroll">' + table(["layer", *cols], [
            [name, *(_scalar(per_layer[name].get(c)) for c in cols)] for name in per_layer])
            + "</div>")
    parts.append(note("SQNR: signal to quantization noise of activations/gradients against a "
                      "float shadow; zig-zag: fraction of steps whose gradient points against "
                      "the previous one (cos < 0), and weight oscillation."))
    return _section("metrics", "".join(parts))


def _layers(rows: Sequence[Row]) -> str:
    layers, by_pass = layer_pass_sums(rows, "cycles")
    _, energy = layer_pass_sums(rows, "energy_pj")
    _, dram_r = layer_pass_sums(rows, "dram_read_bytes")
    _, dram_w = layer_pass_sums(rows, "dram_write_bytes")
    ops: dict[str, str] = {}
    for r in rows:
        ops.setdefault(r["layer"], r["op"])
    out = []
    for i, layer in enumerate(layers):
        cyc = [by_pass[p][i] for p in by_pass]
        dram = sum(d[i] for d in dram_r.values()) + sum(d[i] for d in dram_w.values())
        out.append([layer, ops[layer], *(f"{c:,.0f}" if c else "" for c in cyc),
                    f"{sum(cyc):,.0f}", uj(sum(e[i] for e in energy.values())), f"{dram:,.0f}"])
    return _section("layers", '<div class="scroll">' + table(
        ["layer", "op", *by_pass, "cycles", "energy (uJ)", "DRAM bytes"], out) + "</div>")


def _mappings(s: Mapping[str, Any], rows: Sequence[Row]) -> str:
    """DRAM bytes by tensor kind (totals) and each GEMM's mapping, binding and residency."""
    kinds = s["totals"].get("dram_bytes_by_kind", {})
    body = table(["tensor kind", "DRAM bytes"], [[k, f"{v:,}"] for k, v in sorted(kinds.items())])
    gemms = [r for r in rows if r.get("mapping")]
    body += '<div class="scroll">' + table(
        ["layer", "pass", "binding", "on chip", "DRAM bytes", "mapping"], [
            [r["layer"], r["pass"], r.get("binding", ""), r.get("on_chip", ""),
             f"{int(r['dram_read_bytes']) + int(r['dram_write_bytes']):,}", r["mapping"]]
            for r in gemms]) + "</div>"
    return _section("mappings", body)


def _section(key: str, body: str) -> str:
    title = dict(SECTIONS)[key]
    return f'<section id="{key}"><h2>{escape(title)}</h2>{body}</section>\n'


def page(title: str, body: str) -> str:
    """A complete HTML document with the shared CSS (used by run and compare reports)."""
    script = f"<script>{svg.ZOOM_JS}</script>\n" if 'class="chart zoom"' in body else ""
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{escape(title)}</title><style>{CSS}{svg.CSS}</style></head>\n<body>\n"
            f"{body}{script}</body></html>\n")


def report_html(summary: Mapping[str, Any], rows: Sequence[Row]) -> str:
    """The whole ``report.html`` from ``summary.json`` data and ``layers.csv`` rows."""
    meta = summary.get("meta", {})
    versions = ", ".join(f"{k} {v}" for k, v in sorted(meta.get("versions", {}).items()))
    body = "".join([
        _header(summary), _totals(summary), _cycles(rows), _energy(summary), _area(summary),
        _dram(rows), _roofline(summary, rows), _utilization(rows), _accuracy(summary),
        _metrics(summary), _overflow(summary), _layers(rows), _mappings(summary, rows),
        f"<footer>{escape(str(summary.get('schema', '')))}; {escape(versions)}</footer>\n",
    ])
    return page(f"fxpsim run {summary['name']}", body)
