"""``fxpsim bench arith``: integer GEMM, MAC-array conv GEMMs and quantize throughput.

Every ratio compares against a reference measured in the same process on the same seeded
inputs (``torch._int_mm`` for integer GEMMs, since the machine may be shared and noisy).
Each fast result is checked bit-exact against its reference value before it is timed.
Options: ``out=PATH`` (JSON, default reports/bench/arith.json), ``quick=1`` (small sizes),
``threads=N`` (Numba and torch threads), ``seed=N``.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path

import numpy as np

from fxpsim.bench.common import BenchRow, best_time
from fxpsim.errors import ConfigError

GROUP_GEMM = "gemm"
GROUP_CONV = "conv_ws16x16"
INT_MM = "torch._int_mm"
_KNOWN = {"out", "quick", "threads", "seed"}
# (name, C, H=W, K) of CIFAR VGG16 3x3 conv layers, stride 1, padding 1
VGG16_LAYERS = (("conv1_2", 64, 32, 64), ("conv3_2", 256, 8, 256), ("conv4_2", 512, 4, 512),
                ("conv5_2", 512, 2, 512))


def _int_option(options: dict[str, str], key: str, default: int, minimum: int) -> int:
    raw = options.get(key)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError("command line", key, f"expected an integer, got {raw!r}") from None
    if value < minimum:
        raise ConfigError("command line", key, f"must be >= {minimum}, got {value}")
    return value


def machine_info() -> dict[str, object]:
    import numba
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import os

    return {"cpu": cpu, "cores": os.cpu_count(), "numba_threads": numba.get_num_threads(),
            "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
            "numpy": np.__version__, "numba": numba.__version__, "torch": torch.__version__}


def paired_best(fns, repeats: int) -> list[float]:
    """Best time of each callable, measured in interleaved rounds (one warm-up each) so that
    load changes on a shared machine hit the reference and our kernel alike."""
    times = [best_time(fn, 1, warmup=1) for fn in fns]
    for _ in range(repeats - 1):
        times = [min(t, best_time(fn, 1, warmup=0)) for t, fn in zip(times, fns, strict=True)]
    return times


def _gemm_rows(case: str, a: np.ndarray, b: np.ndarray, fn, note: str, target: float | None,
               repeats: int) -> list[BenchRow]:
    """Reference _int_mm row + our row (checked exact against _int_mm when no overflow)."""
    import torch

    ta, tb = torch.from_numpy(np.ascontiguousarray(a, np.int8)), torch.from_numpy(
        np.ascontiguousarray(b, np.int8))
    gmac = a.shape[0] * a.shape[1] * b.shape[1] / 1e9
    t_ref, t_ours = paired_best([lambda: torch._int_mm(ta, tb), fn], repeats)
    ref = BenchRow(GROUP_GEMM, f"{case} [{INT_MM}]", t_ref, gmac / t_ref, "GMAC/s")
    ours = BenchRow(GROUP_GEMM, case, t_ours, gmac / t_ours, "GMAC/s", INT_MM,
                    t_ref / t_ours, target, note)
    return [ref, ours]


def gemm_rows(n: int, seed: int, repeats: int) -> list[BenchRow]:
    """INT8 and INT4 n x n x n GEMMs with 32- and 16-bit accumulators."""
    from fxpsim.fixedpoint.gemm import matmul

    rng = np.random.default_rng(seed)
    a8 = rng.integers(-128, 128, (n, n)).astype(np.int8)
    b8 = rng.integers(-128, 128, (n, n)).astype(np.int8)
    a4 = rng.integers(-8, 8, (n, n)).astype(np.int8)
    b4 = rng.integers(-8, 8, (n, n)).astype(np.int8)
    exact = (a8.astype(np.int64) @ b8.astype(np.int64))
    if not np.array_equal(matmul(a8, b8, 32, "saturate"), exact):
        raise AssertionError("INT8 32-bit matmul differs from the exact sum")
    rows: list[BenchRow] = []
    size = f"{n}x{n}x{n}"
    cases = (
        (f"int8 {size} acc32 saturate", a8, b8, 32, 0.8, "no overflow possible: exact path"),
        (f"int8 {size} acc16 saturate", a8, b8, 16, 0.1,
         "k-order kernel in 16-bit lanes, every event counted"),
        (f"int4 {size} acc32 saturate", a4, b4, 32, None, "codes -8..7 in int8"),
        (f"int4 {size} acc16 saturate", a4, b4, 16, None, "bound check + sequential"),
    )
    for case, a, b, bits, target, note in cases:
        res = matmul(a, b, bits, "saturate", return_events=True)
        note = f"{note}; {res.total_events} overflow events"
        rows += _gemm_rows(case, a, b, lambda a=a, b=b, bits=bits: matmul(a, b, bits, "saturate"),
                           note, target, repeats)
    return rows


def conv_rows(layers, batch: int, seed: int, repeats: int) -> list[BenchRow]:
    """VGG16 conv-forward GEMMs on a 16x16 weight-stationary array, 32-bit accumulator."""
    import torch

    from fxpsim.fixedpoint.conv import conv_gemm_shapes
    from fxpsim.fixedpoint.macarray import ArrayModel, array_gemm

    model = ArrayModel(16, 16, "weight_stationary", 32, "saturate")
    rng = np.random.default_rng(seed)
    rows: list[BenchRow] = []
    for name, c, hw, k in layers:
        shp = conv_gemm_shapes(batch, c, hw, hw, k, 3, 3, 1, 1).forward
        a = rng.integers(-128, 128, (shp.m, shp.k)).astype(np.int8)
        b = rng.integers(-128, 128, (shp.k, shp.n)).astype(np.int8)
        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        fa, fb = ta.float(), tb.float()
        res = array_gemm(a, b, model)
        if not np.array_equal(res.values, torch._int_mm(ta, tb).numpy()):
            raise AssertionError(f"{name}: array_gemm differs from torch._int_mm")
        gmac = shp.macs / 1e9
        case = f"vgg16 {name} B={batch} ({shp.m}x{shp.k}x{shp.n})"
        t_ref, t_f32, t_ours = paired_best(
            [lambda ta=ta, tb=tb: torch._int_mm(ta, tb),
             lambda fa=fa, fb=fb: torch.matmul(fa, fb),
             lambda a=a, b=b: array_gemm(a, b, model)], repeats)
        rows += [
            BenchRow(GROUP_CONV, f"{case} [{INT_MM}]", t_ref, gmac / t_ref, "GMAC/s"),
            BenchRow(GROUP_CONV, f"{case} [torch fp32 matmul]", t_f32, gmac / t_f32, "GMAC/s"),
            BenchRow(GROUP_CONV, case, t_ours, gmac / t_ours, "GMAC/s", INT_MM, t_ref / t_ours,
                     None, f"{res.total_events} overflow events; fp32 ratio "
                           f"{t_f32 / t_ours:.2f}"),
        ]
    return rows


def _print_table(rows: list[BenchRow], info: dict[str, object]) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"fxpsim bench arith -- {info['cpu']}, numba threads "
                        f"{info['numba_threads']}, torch threads {info['torch_threads']}")
    for col in ("group", "case", "seconds", "rate", "unit", "ratio", "target", "note"):
        table.add_column(col, justify="right" if col in ("seconds", "rate", "ratio") else "left")
    for r in rows:
        # escape: reference rows are named "[torch._int_mm]", which rich would read as markup
        table.add_row(r.group, escape(r.case), f"{r.seconds:.4g}", f"{r.rate:.4g}", r.unit,
                      "" if r.ratio is None else f"{r.ratio:.3f}",
                      "" if r.target is None else f">= {r.target:g}", escape(r.note))
    console = Console()
    if not console.is_terminal:  # keep the table readable when piped to a file
        console = Console(width=200)
    console.print(table)


def _measure(quick: bool, seed: int) -> list[BenchRow]:
    repeats = 2 if quick else 7
    rows = gemm_rows(128 if quick else 1024, seed, repeats)
    layers = VGG16_LAYERS[1:3] if quick else VGG16_LAYERS
    rows += conv_rows(layers, 1 if quick else 8, seed, repeats)
    from fxpsim.bench.quant_cases import quant_rows

    rows += quant_rows(n=100_000 if quick else 10_000_000, seed=seed, repeats=repeats)
    return rows


def main(options: dict[str, str]) -> int:
    unknown = sorted(set(options) - _KNOWN)
    if unknown:
        raise ConfigError("command line", unknown[0],
                          f"unknown option for bench arith (known: {', '.join(sorted(_KNOWN))})")
    quick = _int_option(options, "quick", 0, 0) > 0
    seed = _int_option(options, "seed", 0, 0)
    threads = _int_option(options, "threads", 0, 1) if "threads" in options else None
    out = Path(options.get("out", "reports/bench/arith.json"))
    import numba
    import torch

    old_threads = (numba.get_num_threads(), torch.get_num_threads())
    try:
        if threads is not None:
            numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
            torch.set_num_threads(threads)
        rows = _measure(quick, seed)
        info = machine_info()
    finally:  # the thread counts are process-wide: give them back
        numba.set_num_threads(old_threads[0])
        torch.set_num_threads(old_threads[1])
    _print_table(rows, info)
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {"machine": info, "options": dict(sorted(options.items())),
               "rows": [r.as_dict() for r in rows]}
    out.write_text(json.dumps(payload, sort_keys=True, indent=2) + "\n")
    print(f"wrote {out}")
    return 0
