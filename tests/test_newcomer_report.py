"""What the interactive report shows: tooltips naming layer, pass and value; labelled
roofline points; overflow charts that say "none" instead of an empty axis; training
metrics; one colour per variant in compare.html; and the notebook API's typed results."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pandas as pd
import pytest

import fxpsim
from fxpsim.report import svg
from fxpsim.report.html import report_html
from fxpsim.report.rerender import parse_layers_csv

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run() -> fxpsim.Result:
    return fxpsim.run(hw="tiny", model="lenet5", batch=2, steps=0, progress=False)


def _page(r: fxpsim.Result, summary: dict | None = None) -> str:
    from fxpsim.report.csvmd import layers_csv

    rows = parse_layers_csv(layers_csv(r.outcome))
    return report_html(summary if summary is not None else r.summary, rows)


def test_tooltips_name_layer_pass_and_value(run: fxpsim.Result) -> None:
    text = _page(run)
    conv1_fwd = int(run.layers[(run.layers.layer == "conv1") &
                               (run.layers["pass"] == "forward")].cycles.iloc[0])
    assert f"<title>conv1 · forward: {conv1_fwd:,} cycles" in text
    assert 'class="chart zoom"' in text and "<script>" in text and "data-z" in text


def test_roofline_points_are_labelled(run: fxpsim.Result) -> None:
    text = _page(run)
    section = text.split('<section id="roofline">')[1].split("</section>")[0]
    for layer in ("conv1", "conv2", "fc1"):
        assert re.search(rf"<title>{layer} · forward: [\d,.]+ MACs/byte, [\d,.]+ MACs/cycle",
                         section)
        assert f">{layer}</text>" in section  # a visible label beside the point


def test_overflow_all_zero_says_so_and_units_are_split(run: fxpsim.Result) -> None:
    s = copy.deepcopy(run.summary)
    s["training"] = {"layers": [
        {"layer": "conv1", "acc_overflow_events": {"forward": 0}, "grad_clipped_fraction": 0.0},
        {"layer": "fc1", "acc_overflow_events": {"forward": 0}, "grad_clipped_fraction": 0.02}]}
    section = _page(run, s).split('<section id="overflow">')[1].split("</section>")[0]
    assert "no accumulator overflow or saturation events" in section
    assert section.count("<svg") == 1 and "clipped values per layer (%)" in section
    s["training"]["layers"][0]["acc_overflow_events"]["forward"] = 12
    section = _page(run, s).split('<section id="overflow">')[1].split("</section>")[0]
    assert section.count("<svg") == 2 and "conv1 · acc_overflow_events.forward: 12" in section


def test_training_metrics_section_shows_what_is_there(run: fxpsim.Result) -> None:
    s = copy.deepcopy(run.summary)
    s["training"] = {
        "steps_to_target": 42, "target_loss": 0.5, "code_flips": 1234,
        "zigzag": {"neg_cos_fraction": 0.27, "window": 100,
                   "layers": [{"layer": "conv1", "neg_cos_fraction": 0.3}]},
        "layers": [{"layer": "conv1", "act_sqnr_db": 31.5, "grad_sqnr_db": 12.25,
                    "code_flip_rate": 0.01}]}
    section = _page(run, s).split('<section id="metrics">')[1].split("</section>")[0]
    for needle in ("steps to target loss", "42", "zig-zag neg cos fraction", "0.27",
                   "code flips", "1,234", "act sqnr db", "31.5", "code flip rate",
                   "zig-zag neg cos fraction"):
        assert needle in section
    assert "SQNR per layer" in section


def test_accuracy_x_axis_has_whole_epochs_only() -> None:
    chart = svg.curves({"test accuracy": [(1, 0.5), (2, 0.7)]}, title="a", xlabel="epoch",
                       ylabel="acc")
    ticks = re.findall(r'text-anchor="middle">([^<]+)</text>', chart)
    assert "1" in ticks and "2" in ticks and "1.2" not in ticks and "1.5" not in ticks


def test_compare_uses_one_colour_per_variant(tmp_path: Path) -> None:
    from fxpsim.compare_report import compare_html

    cmp = {"name": "x", "axes": {"rounding.g": ["a", "b"]}, "shared": {}, "seed": 0,
           "variants": []}
    for i, label in enumerate(("rounding.g=a", "rounding.g=b")):
        cmp["variants"].append({
            "label": label, "values": {"rounding.g": "ab"[i]}, "run_name": label, "hw": "h",
            "model": "m", "pass_order": ["forward"],
            "totals": {"cycles": 10, "seconds": 1e-6, "energy_pj": 5e6 + i, "dram_bytes": 1,
                       "stall_cycles": 0, "rng_bits": i, "requant_events": 1,
                       "energy_by_component": {"rng": float(i), "requant": 1.0}},
            "per_pass": {"forward": {"cycles": 10, "energy_pj": 5e6 + i}},
            "accuracy": {"test": 0.5, "history": [{"epoch": 1, "loss": 1.0},
                                                   {"epoch": 2, "loss": 0.5 + i}]},
            "deltas": {"cycles": {"abs": 0, "rel": 0.0}, "energy_pj": {"abs": i, "rel": 0.0},
                       "accuracy": {"abs": 0.0, "rel": 0.0}}})
    text = compare_html(cmp)
    for i, label in enumerate(("rounding.g=a", "rounding.g=b")):
        colour = svg.color(i)
        fills = set(re.findall(rf'fill="(#[0-9a-f]+)"><title>{re.escape(label)} · ', text))
        assert fills == {colour}, (label, fills)
        assert re.search(rf'stroke="{colour}" stroke-width="2"[^>]*><title>{re.escape(label)}',
                         text)
    assert "every variant has the same cycles" in text


def test_notebook_result_is_typed(run: fxpsim.Result, tmp_path: Path) -> None:
    assert isinstance(run, fxpsim.Result)
    assert isinstance(run.layers, pd.DataFrame) and isinstance(run.per_pass, pd.DataFrame)
    assert run.layers.cycles.dtype.kind == "i"
    assert int(run.layers.cycles.sum()) == run.totals["cycles"]
    assert list(run.per_pass["pass"]) == run.summary["pass_order"]
    assert run.accuracy is None  # steps=0
    folder = run.write(tmp_path / "nb")
    on_disk = json.loads((folder / "summary.json").read_text())
    assert on_disk == run.summary


def test_notebook_accepts_hwconfig_dict_and_typed_overrides() -> None:
    from fxpsim.config.load import load_hwconfig

    cfg = load_hwconfig("tiny").config
    a = fxpsim.run(hw=cfg, model="lenet5", batch=2, steps=0, progress=False)
    b = fxpsim.run(hw=cfg.model_dump(mode="json"), model="lenet5", batch=2, steps=0,
                   progress=False)
    c = fxpsim.run(hw="tiny", model="lenet5", batch=2, steps=0, progress=False)
    assert a.totals == b.totals == c.totals
    d = fxpsim.run(hw=cfg, model="lenet5", batch=2, steps=0, mac_array__rows=8,
                   progress=False)
    e = fxpsim.run(hw="tiny", model="lenet5", batch=2, steps=0,
                   options={"mac_array.rows": 8}, progress=False)
    assert d.totals == e.totals != a.totals
    assert d.summary["overrides"]["hw"] == {"mac_array.rows": "8"}
    with pytest.raises(fxpsim.errors.FxpsimError, match="rows"):
        fxpsim.run(hw=cfg, model="lenet5", steps=0, mac_array__rows=-1, progress=False)
    with pytest.raises(fxpsim.errors.FxpsimError, match="did you mean 'batch'"):
        fxpsim.run(hw="tiny", model="lenet5", steps=0, bacth=2, progress=False)


def test_notebook_compare_returns_a_dataframe() -> None:
    df = fxpsim.compare(hw="tiny", model="lenet5", batch=2, steps=0,
                        rounding_g=["half_even", "stochastic"],
                        mac_array__requantizer__rounding_modes=[["rne", "stochastic"]])
    assert isinstance(df, pd.DataFrame) and len(df) == 2
    assert list(df["rounding.g"]) == ["half_even", "stochastic"]
    assert df.rng_bits.iloc[1] > 0 == df.rng_bits.iloc[0]


def test_fxpsim_compare_is_still_the_module() -> None:
    import fxpsim.compare as mod

    assert callable(fxpsim.compare) and fxpsim.compare is mod
    assert mod.split_top_level("a,[b,c]") == ["a", "[b,c]"]


def test_dram_traffic_by_tensor_chart_when_layers_csv_has_it(run: fxpsim.Result) -> None:
    from fxpsim.report.csvmd import layers_csv

    rows = parse_layers_csv(layers_csv(run.outcome))
    kinds = [c for c in rows[0] if c.startswith("dram_") and c.endswith("_bytes")
             and c not in ("dram_read_bytes", "dram_write_bytes")]
    assert kinds  # the cost model's per-tensor columns
    section = report_html(run.summary, rows).split('<section id="dram">')[1].split(
        "</section>")[0]
    assert section.count("<svg") == 1
    conv1 = [r for r in rows if r["layer"] == "conv1"]
    kind = next(k for k in kinds if sum(int(r[k]) for r in conv1))
    total = sum(int(r[kind]) for r in conv1)
    assert f"<title>conv1 · {kind[5:-6]}: {total:,} bytes" in section
    bare = [{k: v for k, v in r.items() if k not in kinds} for r in rows]
    section = report_html(run.summary, bare).split('<section id="dram">')[1]
    assert "no per-tensor DRAM traffic" in section.split("</section>")[0]


@pytest.mark.skipif(__import__("shutil").which("node") is None, reason="node not installed")
def test_zoom_script_widens_and_resets_the_chart(tmp_path: Path) -> None:
    """Run the inline zoom script in node against a minimal stand-in for the DOM."""
    import subprocess

    harness = """
const handlers = {};
function el(name) { return {name, style: {}, dataset: {},
  addEventListener(ev, fn) { handlers[name + ':' + ev] = fn; }}; }
const svg = el('svg'), box = el('box');
const buttons = [['plus', '1.5'], ['minus', '0.6667'], ['reset', '0']].map(([n, z]) => {
  const b = el(n); b.dataset.z = z; return b; });
const fig = {querySelector: s => (s === 'svg' ? svg : box),
             querySelectorAll: s => buttons};
global.document = {querySelectorAll: s => [fig]};
""" + svg.ZOOM_JS + """
handlers['plus:click'](); handlers['plus:click']();
const wide = svg.style.width;
handlers['minus:click']();
const mid = svg.style.width;
handlers['reset:click']();
let prevented = false;
handlers['box:wheel']({ctrlKey: true, deltaY: -1, preventDefault() { prevented = true; }});
console.log(JSON.stringify([wide, mid, svg.style.width, prevented]));
"""
    script = tmp_path / "zoom.js"
    script.write_text(harness)
    out = subprocess.run(["node", str(script)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    wide, mid, after_wheel, prevented = json.loads(out.stdout)
    assert wide == "225%" and mid.startswith("150") and after_wheel == "125%" and prevented
