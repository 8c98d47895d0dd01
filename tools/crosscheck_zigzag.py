"""Cross-check fxpsim's time plane against ZigZag on the same edge_npu description.

Needs ZigZag in a scratch environment (not a dependency of fxpsim; ``six`` is a ZigZag
dependency its package forgets, the rest are what fxpsim's time plane imports)::

    python3 -m venv zz && zz/bin/pip install zigzag-dse six pydantic simpy rich pyyaml
    zz/bin/python tools/crosscheck_zigzag.py --opt latency --out tests/fixtures/zigzag_edge_npu.json

It lowers the workloads with fxpsim (so both tools see the same GEMM shapes), describes
edge_npu for ZigZag (16x16 array with K on the columns and C on the rows, PE registers, the
16 KiB accumulator SRAM for outputs, the 256 KiB global SRAM for everything, LPDDR4 at
12.8 B/cycle; the same per-access energies, per access of the same widths), runs both and
prints per-layer cycles, energy and DRAM bytes side by side. Workloads: ImageNet VGG16
forward at batch 1, and the forward, backward-data and backward-weight GEMMs of a CIFAR
VGG16 training step at batch 1. ``--out`` stores both tools' per-layer numbers as the fixture
``tests/test_timing_zigzag.py`` checks fxpsim against.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fxpsim.config.load import load_hwconfig  # noqa: E402
from fxpsim.graph.resolve import load_model  # noqa: E402
from fxpsim.timing.lowering import lower  # noqa: E402
from fxpsim.timing.mapping import pass_kind  # noqa: E402
from fxpsim.timing.ops import GemmOp, TimingRequest  # noqa: E402
from fxpsim.timing.simulate import simulate  # noqa: E402

CASES = {
    "imagenet_vgg16_forward_b1": ("vgg16_imagenet", "infer"),
    "cifar_vgg16_train_step_b1": ("vgg16", "train"),
}


def accelerator(hw: Any) -> dict[str, Any]:
    """edge_npu as a ZigZag accelerator. Bandwidths are bits per cycle; ZigZag counts
    accesses in words of the port's ``bandwidth_max`` bits and prices each at ``r_cost`` /
    ``w_cost``, so energies are per access of that width (8 banks x 128 bits for the global
    SRAM, 102 bits = 12.8 B/cycle for DRAM)."""
    mems = {m.name: m for m in hw.memory}
    g, acc, regs = mems["global_sram"], mems["acc_sram"], mems["pe_regs"]
    rate_bits = int(hw.dram_bytes_per_cycle * 8)
    bit = regs.energy_pj_per_bit or 0.0

    def port(name: str, kind: str, lo: int, hi: int, alloc: list[str]) -> dict[str, Any]:
        return {"name": name, "type": kind, "bandwidth_min": lo, "bandwidth_max": hi,
                "allocation": alloc}

    return {
        "name": "edge_npu",
        "memories": {
            "w_reg": {"size": 8, "r_cost": 8 * bit, "w_cost": 8 * bit, "area": 0, "latency": 1,
                      "operands": ["I2"], "served_dimensions": [],
                      "ports": [port("r_port_1", "read", 8, 8, ["I2, tl"]),
                                port("w_port_1", "write", 8, 8, ["I2, fh"])]},
            "psum_reg": {"size": 32, "r_cost": 32 * bit, "w_cost": 32 * bit, "area": 0,
                         "latency": 1, "operands": ["O"], "served_dimensions": ["D2"],
                         "ports": [port("r_port_1", "read", 32, 32, ["O, tl"]),
                                   port("r_port_2", "read", 32, 32, ["O, th"]),
                                   port("w_port_1", "write", 32, 32, ["O, fh"]),
                                   port("w_port_2", "write", 32, 32, ["O, fl"])]},
            "acc_sram": {"size": acc.size_bytes * 8, "r_cost": acc.read_energy_pj,
                         "w_cost": acc.write_energy_pj, "area": 0, "latency": 1,
                         "operands": ["O"], "served_dimensions": ["D1", "D2"],
                         "ports": [port("r_port_1", "read", acc.width_bits, acc.width_bits,
                                        ["O, tl", "O, th"]),
                                   port("w_port_1", "write", acc.width_bits, acc.width_bits,
                                        ["O, fh", "O, fl"])]},
            "global_sram": {"size": g.size_bytes * 8, "r_cost": g.read_energy_pj * g.banks,
                            "w_cost": g.write_energy_pj * g.banks, "area": 0, "latency": 1,
                            "operands": ["I1", "I2", "O"], "served_dimensions": ["D1", "D2"],
                            "ports": [port("r_port_1", "read", g.width_bits, g.width_bits * g.banks,
                                           ["I1, tl", "I2, tl", "O, tl", "O, th"]),
                                      port("w_port_1", "write", g.width_bits, g.width_bits * g.banks,
                                           ["I1, fh", "I2, fh", "O, fh", "O, fl"])]},
            "dram": {"size": 10**10, "r_cost": hw.dram.read_energy_pj_per_byte * rate_bits / 8,
                     "w_cost": hw.dram.write_energy_pj_per_byte * rate_bits / 8, "area": 0, "latency": 1,
                     "operands": ["I1", "I2", "O"], "served_dimensions": ["D1", "D2"],
                     "ports": [port("rw_port_1", "read_write", 8, rate_bits,
                                    ["I1, fh", "I1, tl", "I2, fh", "I2, tl", "O, fh",
                                     "O, tl", "O, fl", "O, th"])]},
        },
        "operational_array": {"unit_energy": hw.energy.mac["int8"], "unit_area": 1,
                              "dimensions": ["D1", "D2"],
                              "sizes": [hw.mac_array.cols, hw.mac_array.rows]},
    }


def layer(op: GemmOp, idx: int, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """One lowered GEMM as a ZigZag layer, and its mapping entry (rows = D2, cols = D1)."""
    d = dict(op.loop_dims)
    kind = pass_kind(op)
    conv = "FY" in d
    prec = {"W": op.b_bits, "I": op.a_bits, "O": 32, "O_final": op.out_bits}
    base: dict[str, Any] = {"id": idx, "name": name, "operand_precision": prec}
    if kind == "wgrad":
        if conv:
            sy = op.stride[0]
            pad = ((d["OY"] - 1) * sy + d["FY"] - op.in_hw[0]) // 2
            base.update(operator_type="Conv",
                        equation="O[k][c][fy][fx]+=W[b][k][oy][ox]*I[b][c][iy][ix]",
                        dimension_relations=[f"ix={sy}*ox+1*fx", f"iy={sy}*oy+1*fy"],
                        loop_dims=["B", "K", "C", "OY", "OX", "FY", "FX"],
                        loop_sizes=[d["B"], d["K"], d["C"], d["OY"], d["OX"], d["FY"], d["FX"]],
                        pr_loop_dims=["IX", "IY"], padding=[[pad, pad], [pad, pad]])
            rows = [f"OX, {min(16, d['OX'])}"]
            if d["OX"] < 16:
                rows.append(f"OY, {min(d['OY'], 16 // d['OX'])}")
        else:
            base.update(operator_type="Gemm", equation="O[k][c]+=W[b][k]*I[b][c]",
                        loop_dims=["B", "K", "C"], loop_sizes=[d["B"], d["K"], d["C"]])
            rows = [f"B, {min(16, d['B'])}"]
        return base, {"name": name, "spatial_mapping": {"D1": [f"K, {min(16, d['K'])}"],
                                                        "D2": rows},
                      "memory_operand_links": {"O": "O", "W": "I2", "I": "I1"}}
    # forward and backward-data are both convolutions: out channels n, reduction k
    out_c, red_c = ("K", "C") if kind == "forward" else ("C", "K")
    oy, ox = ("OY", "OX") if kind == "forward" else ("IY", "IX")
    if conv:
        s = op.stride[0] if kind == "forward" else 1
        if kind == "dgrad" and op.stride[0] != 1:
            raise ValueError(f"{op.layer}: strided backward-data is not described for ZigZag")
        pad = ((d[oy] - 1) * s + d["FY"] - op.in_hw[0]) // 2
        base.update(operator_type="Conv",
                    equation="O[b][k][oy][ox]+=W[k][c][fy][fx]*I[b][c][iy][ix]",
                    dimension_relations=[f"ix={s}*ox+1*fx", f"iy={s}*oy+1*fy"],
                    loop_dims=["B", "K", "C", "OY", "OX", "FY", "FX"],
                    loop_sizes=[d["B"], d[out_c], d[red_c], d[oy], d[ox], d["FY"], d["FX"]],
                    pr_loop_dims=["IX", "IY"], padding=[[pad, pad], [pad, pad]])
    else:
        base.update(operator_type="Gemm", equation="O[b][k]+=W[k][c]*I[b][c]",
                    loop_dims=["B", "K", "C"], loop_sizes=[d["B"], d[out_c], d[red_c]])
    k_sz, c_sz = base["loop_sizes"][1], base["loop_sizes"][2]
    rows = [f"C, {min(16, c_sz)}"]
    if conv and c_sz < 16:  # fxpsim unrolls C x FY x FX (im2col) on the rows
        rows.append(f"FX, {min(d['FX'], 16 // c_sz)}")
    return base, {"name": name, "spatial_mapping": {"D1": [f"K, {min(16, k_sz)}"],
                                                    "D2": rows},
                  "memory_operand_links": {"O": "O", "W": "I2", "I": "I1"}}


def _dram_bytes(cme: Any, rate_bits: int) -> int:
    """DRAM accesses of every operand, in words of the DRAM port's ``rate_bits``."""
    words = sum(sum(acc[-1].data.values()) for acc in cme.memory_word_access.values())
    return int(words * rate_bits // 8)


def run_case(case: str, opt: str = "latency") -> dict[str, Any]:
    """Both tools on one workload, each searching its mappings for ``opt`` (latency or
    energy: fxpsim's ``mapping.objective``, ZigZag's ``opt``)."""
    from zigzag.api import get_hardware_performance_zigzag  # type: ignore[import-not-found]

    model, phase = CASES[case]
    hw = load_hwconfig("edge_npu").config
    graph = load_model(model)
    # ZigZag costs each layer alone: so does fxpsim here (schedule=sequential)
    req = TimingRequest(phase=phase, batch=1, objective=opt,  # type: ignore[arg-type]
                        schedule="sequential")
    ops = [op for op in lower(graph, req) if isinstance(op, GemmOp)]
    recs = [r for r in simulate(graph, hw, req).records if r.gemm is not None]
    assert len(recs) == len(ops)
    names = [f"{op.layer}.{pass_kind(op)}" for op in ops]
    work, maps = zip(*(layer(op, i, n) for i, (op, n) in enumerate(zip(ops, names,
                                                                        strict=True))),
                     strict=True)
    with tempfile.TemporaryDirectory() as tmp:
        acc_p, map_p = Path(tmp) / "edge_npu.yaml", Path(tmp) / "mapping.yaml"
        acc_p.write_text(yaml.safe_dump(accelerator(hw), sort_keys=False))
        default = {"name": "default", "spatial_mapping": {"D1": ["K, 16"], "D2": ["C, 16"]},
                   "memory_operand_links": {"O": "O", "W": "I2", "I": "I1"}}
        map_p.write_text(yaml.safe_dump([default, *maps], sort_keys=False))
        _, _, cmes = get_hardware_performance_zigzag(
            list(work), str(acc_p), str(map_p), opt=opt, dump_folder=tmp,
            loma_show_progress_bar=False)
    per_layer = {cme.layer.name: cme for cme, _ in cmes[0][1]}
    rows = []
    for n, r in zip(names, recs, strict=True):
        cme = per_layer[n]
        rows.append({"layer": n, "fxpsim_cycles": r.metrics.cycles,
                     "fxpsim_energy_pj": round(r.metrics.energy_pj, 3),
                     "fxpsim_dram_bytes": r.metrics.dram_bytes,
                     "zigzag_cycles": round(float(cme.latency_total2)),
                     # ZigZag's cycles without data on/off-loading (its compute + stalls)
                     "zigzag_compute_cycles": round(float(cme.latency_total0)),
                     "zigzag_energy_pj": round(float(cme.energy_total), 3),
                     "zigzag_dram_bytes": _dram_bytes(cme, int(hw.dram_bytes_per_cycle * 8))})
    return {"case": case, "opt": opt, "layers": rows}


def summarize(result: dict[str, Any]) -> str:
    rows = result["layers"]
    lines = [f"## {result['case']} (both tools search for {result['opt']})", "",
             "| layer.pass | fxpsim cycles | ZigZag cycles | ratio | fxpsim uJ | ZigZag uJ | "
             "ratio | fxpsim DRAM MB | ZigZag DRAM MB |", "|---" * 9 + "|"]
    for r in rows:
        lines.append(
            f"| {r['layer']} | {r['fxpsim_cycles']:,} | {r['zigzag_cycles']:,} | "
            f"{r['fxpsim_cycles'] / r['zigzag_cycles']:.2f} | {r['fxpsim_energy_pj'] / 1e6:.2f} | "
            f"{r['zigzag_energy_pj'] / 1e6:.2f} | "
            f"{r['fxpsim_energy_pj'] / r['zigzag_energy_pj']:.2f} | "
            f"{r['fxpsim_dram_bytes'] / 1e6:.3f} | {r['zigzag_dram_bytes'] / 1e6:.3f} |")
    tot = {k: sum(r[k] for r in rows) for k in rows[0] if k != "layer"}
    lines.append(
        f"| **total** | {tot['fxpsim_cycles']:,} | {tot['zigzag_cycles']:,} | "
        f"**{tot['fxpsim_cycles'] / tot['zigzag_cycles']:.2f}** | "
        f"{tot['fxpsim_energy_pj'] / 1e6:.1f} | {tot['zigzag_energy_pj'] / 1e6:.1f} | "
        f"**{tot['fxpsim_energy_pj'] / tot['zigzag_energy_pj']:.2f}** | "
        f"{tot['fxpsim_dram_bytes'] / 1e6:.2f} | {tot['zigzag_dram_bytes'] / 1e6:.2f} |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", choices=sorted(CASES), action="append")
    ap.add_argument("--opt", choices=("latency", "energy"), action="append",
                    help="search objective of both tools (default: both, one run each)")
    ap.add_argument("--out", type=Path, help="write the per-layer numbers as a JSON fixture")
    args = ap.parse_args()
    logging.disable(logging.WARNING)
    results = [run_case(c, o) for o in (args.opt or ["latency", "energy"])
               for c in (args.case or sorted(CASES))]
    for res in results:
        print(summarize(res))
        print()
    if args.out:
        args.out.write_text(json.dumps({"tool": "zigzag-dse 3.9", "hw": "edge_npu",
                                        "cases": results}, indent=1, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
