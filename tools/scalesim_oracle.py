"""Run SCALE-Sim 3.0.0 on single layers of a topology and append its report rows to a CSV.

The oracle for ``timing=scalesim`` (fixtures ``tests/golden/scalesim3_*.csv``). SCALE-Sim is
never a dependency of fxpsim: install it in a scratch virtual environment (3.0.0 crashes on
numpy 2.4) and run this file with that environment's Python::

    python3 -m venv ss-venv && ss-venv/bin/pip install scalesim==3.0.0 numpy==2.3.5
    ss-venv/bin/python tools/scalesim_oracle.py --topology models/scalesim_vgg16_cifar.csv \\
        --mode USER --array 16 --dataflow os --layers FC,Conv1 \\
        --out tests/golden/scalesim3_vgg16_cifar.csv

Each layer runs alone (a one-row topology), so a long USER-mode layer can be stopped without
losing the others; rows already in ``--out`` are skipped. ``--first-rows N`` (USER mode) runs
SCALE-Sim's memory system on only the first N rows of the layer's demand matrices, for layers
too slow to run whole; it appends ``demand_rows, stall_cycles, last_cycle,
filter_prefetches`` rows (``tests/golden/scalesim3_*_prefix.csv``). The config is SCALE-Sim's example
shape: 64/64/32 kB SRAMs, ``Bandwidth`` and the ``[layout]`` SRAM bank bandwidths all
``--bw`` words/cycle, no custom layout, no sparsity, no Ramulator. Traces are not written.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import tempfile
import time
from pathlib import Path

CFG = """[general]
run_name = {name}

[architecture_presets]
ArrayHeight: {rows}
ArrayWidth: {cols}
IfmapSramSzkB: {ifmap_kb}
FilterSramSzkB: {filter_kb}
OfmapSramSzkB: {ofmap_kb}
IfmapOffset: 0
FilterOffset: 10000000
OfmapOffset: 20000000
Dataflow: {dataflow}
Bandwidth: {bw}
ReadRequestBuffer: 32
WriteRequestBuffer: 32
MemoryBanks: 1

[layout]
IfmapCustomLayout: False
IfmapSRAMBankBandwidth: {bw}
IfmapSRAMBankNum: 1
IfmapSRAMBankPort: 2
FilterCustomLayout: False
FilterSRAMBankBandwidth: {bw}
FilterSRAMBankNum: 1
FilterSRAMBankPort: 2

[sparsity]
SparsitySupport: false
SparseRep: ellpack_block
OptimizedMapping: false
BlockSize: 8
RandomNumberGeneratorSeed: 40

[run_presets]
InterfaceBandwidth: {mode}
UseRamulatorTrace: False
"""

#: fixture columns: the run, then COMPUTE_REPORT and BANDWIDTH_REPORT items
COLUMNS = (
    "mode", "rows", "cols", "dataflow", "bw", "ifmap_kb", "filter_kb", "ofmap_kb", "layer",
    "total_cycles", "stall_cycles", "overall_util_pct", "mapping_efficiency_pct",
    "compute_util_pct", "ifmap_sram_bw", "filter_sram_bw", "ofmap_sram_bw", "ifmap_dram_bw",
    "filter_dram_bw", "ofmap_dram_bw", "seconds",
)


def run_layer(header: str, row: str, args: argparse.Namespace) -> dict[str, str]:
    from scalesim.scale_sim import scalesim  # type: ignore[import-not-found]  # scratch venv

    layer = row.split(",")[0].strip()
    name = f"{args.mode}_{args.array}_{args.dataflow}_{layer}"
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / "s.cfg").write_text(CFG.format(
            name=name, rows=args.array, cols=args.array, dataflow=args.dataflow, bw=args.bw,
            mode=args.mode, ifmap_kb=args.ifmap_kb, filter_kb=args.filter_kb,
            ofmap_kb=args.ofmap_kb))
        (d / "t.csv").write_text(header + "\n" + row + "\n")
        (d / "l.csv").write_text("Layer name,\n")  # no custom layout: only read, never used
        t0 = time.perf_counter()
        sim = scalesim(save_disk_space=True, verbose=False, config=str(d / "s.cfg"),
                       topology=str(d / "t.csv"), layout=str(d / "l.csv"),
                       input_type_gemm=False)
        with contextlib.redirect_stdout(io.StringIO()):
            sim.run_scale(top_path=str(d / "out"))
        seconds = time.perf_counter() - t0
        rep = d / "out" / name

        def second_row(f: str) -> list[str]:
            return [c.strip() for c in list(csv.reader((rep / f).open()))[1]]

        comp = second_row("COMPUTE_REPORT.csv")
        bw = second_row("BANDWIDTH_REPORT.csv")
    vals = [args.mode, args.array, args.array, args.dataflow, args.bw, args.ifmap_kb,
            args.filter_kb, args.ofmap_kb, layer, comp[2], comp[3], comp[4], comp[5], comp[6],
            *bw[1:7], f"{seconds:.1f}"]
    return dict(zip(COLUMNS, (str(v) for v in vals), strict=True))


PREFIX_COLUMNS = ("rows", "cols", "dataflow", "bw", "ifmap_kb", "filter_kb", "ofmap_kb",
                  "layer", "demand_rows", "stall_cycles", "last_cycle", "filter_prefetches")


def run_prefix(header: str, row: str, args: argparse.Namespace) -> dict[str, str]:
    """SCALE-Sim's single_layer_sim.run, cut to the first ``args.first_rows`` demand rows."""
    from scalesim.compute.operand_matrix import operand_matrix  # type: ignore[import-not-found]
    from scalesim.compute.systolic_compute_is import (  # type: ignore[import-not-found]
        systolic_compute_is,
    )
    from scalesim.compute.systolic_compute_os import (  # type: ignore[import-not-found]
        systolic_compute_os,
    )
    from scalesim.compute.systolic_compute_ws import (  # type: ignore[import-not-found]
        systolic_compute_ws,
    )
    from scalesim.layout_utils import layouts  # type: ignore[import-not-found]
    from scalesim.memory.double_buffered_scratchpad_mem import (  # type: ignore[import-not-found]
        double_buffered_scratchpad,
    )
    from scalesim.scale_config import scale_config  # type: ignore[import-not-found]
    from scalesim.topology_utils import topologies  # type: ignore[import-not-found]

    layer = row.split(",")[0].strip()
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / "s.cfg").write_text(CFG.format(
            name="prefix", rows=args.array, cols=args.array, dataflow=args.dataflow,
            bw=args.bw, mode="USER", ifmap_kb=args.ifmap_kb, filter_kb=args.filter_kb,
            ofmap_kb=args.ofmap_kb))
        (d / "t.csv").write_text(header + "\n" + row + "\n")
        (d / "l.csv").write_text("Layer name,\n")
        cfg = scale_config()
        cfg.read_conf_file(str(d / "s.cfg"))
        topo = topologies()
        topo.load_arrays(topofile=str(d / "t.csv"))
        lay = layouts()
        lay.load_arrays(layoutfile=str(d / "l.csv"))
    op = operand_matrix()
    op.set_params(config_obj=cfg, topoutil_obj=topo, layoututil_obj=lay, layer_id=0)
    _, ifm = op.get_ifmap_matrix()
    _, fil = op.get_filter_matrix()
    _, ofm = op.get_ofmap_matrix()
    kind = {"os": systolic_compute_os, "ws": systolic_compute_ws, "is": systolic_compute_is}
    comp = kind[args.dataflow]()
    extra = {}
    if args.dataflow == "ws":
        extra = {"sparsity_ratio_N": 1, "sparsity_ratio_M": 1,
                 "ifmap_op_mat_original": op.ifmap_addr_matrix_original,
                 "sparsity_filter_array": op.sparse_filter_array}
    comp.set_params(config_obj=cfg, ifmap_op_mat=ifm, filter_op_mat=fil, ofmap_op_mat=ofm,
                    **extra)
    ipf, fpf = comp.get_prefetch_matrices()
    idm, fdm, odm = comp.get_demand_matrices()
    mem = double_buffered_scratchpad()
    mem.set_params(layer_id=0, word_size=1, ifmap_buf_size_bytes=1024 * args.ifmap_kb,
                   filter_buf_size_bytes=1024 * args.filter_kb,
                   ofmap_buf_size_bytes=1024 * args.ofmap_kb, rd_buf_active_frac=0.5,
                   wr_buf_active_frac=0.5, ifmap_backing_buf_bw=args.bw,
                   filter_backing_buf_bw=args.bw, ofmap_backing_buf_bw=args.bw, verbose=False,
                   config=cfg, topo=topo)
    mem.set_read_buf_prefetch_matrices(ifmap_prefetch_mat=ipf, filter_prefetch_mat=fpf)
    n = args.first_rows
    mem.service_memory_requests(idm[:n], fdm[:n], odm[:n])
    fbuf = mem.filter_buf
    first = min(-(-fbuf.active_buf_size // args.bw), fbuf.fetch_matrix.shape[0]) * args.bw
    per = -(-fbuf.prefetch_buf_size // args.bw) * args.bw
    vals = [args.array, args.array, args.dataflow, args.bw, args.ifmap_kb, args.filter_kb,
            args.ofmap_kb, layer, n, int(mem.stall_cycles), int(mem.total_cycles),
            (fbuf.num_access - first) // per]
    return dict(zip(PREFIX_COLUMNS, (str(v) for v in vals), strict=True))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--topology", required=True)
    p.add_argument("--mode", choices=("USER", "CALC"), required=True)
    p.add_argument("--array", type=int, required=True, help="rows = columns")
    p.add_argument("--dataflow", choices=("os", "ws", "is"), required=True)
    p.add_argument("--layers", required=True, help="comma-separated layer names")
    p.add_argument("--bw", type=int, default=10, help="DRAM words/cycle (all operands)")
    p.add_argument("--ifmap-kb", type=int, default=64)
    p.add_argument("--filter-kb", type=int, default=64)
    p.add_argument("--ofmap-kb", type=int, default=32)
    p.add_argument("--first-rows", type=int, default=None,
                   help="USER mode: only the first N demand rows (prefix fixture rows)")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    lines = [ln for ln in Path(args.topology).read_text().splitlines() if ln.strip()]
    rows = {ln.split(",")[0].strip(): ln for ln in lines[1:]}
    out = Path(args.out)
    if args.first_rows is not None:
        for layer in args.layers.split(","):
            rec = run_prefix(lines[0], rows[layer], args)
            _append(out, PREFIX_COLUMNS, rec)
            print(rec, flush=True)
        return
    done = set()
    if out.exists():
        done = {tuple(r[c] for c in COLUMNS[:9]) for r in csv.DictReader(out.open())}
    for layer in args.layers.split(","):
        key = (args.mode, str(args.array), str(args.array), args.dataflow, str(args.bw),
               str(args.ifmap_kb), str(args.filter_kb), str(args.ofmap_kb), layer)
        if key in done:
            continue
        rec = run_layer(lines[0], rows[layer], args)
        _append(out, COLUMNS, rec)
        print(key, rec["total_cycles"], rec["seconds"] + " s", flush=True)


def _append(out: Path, columns: tuple[str, ...], rec: dict[str, str]) -> None:
    new = not out.exists()
    with out.open("a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(columns), lineterminator="\n")
        if new:
            w.writeheader()
        w.writerow(rec)


if __name__ == "__main__":
    main()
