"""Hardware-order accumulation in 16-bit lanes: registers of at most 16 bits, products that fit
int16 (e.g. INT8 x INT8: |a*b| <= 2^14).

Why LLVM IR: Numba widens every int16 expression to int64, and its vectorizer picks 256-bit
vectors on this kind of CPU, so a Python-level loop runs in 16 of the 32 lanes and keeps its
registers in memory. The kernel here is emitted as IR with explicit ``<32 x i16>`` vectors:
each output's register and its int16 event counter stay in vector registers across the k loop,
and one register add is ``llvm.sadd.sat`` (vpaddsw) + a wrapping add (vpaddw) + a compare
+ a masked counter add -- five vector instructions per 32 MACs including the multiply.

Exactness: ``x`` (register, within int16) and ``y`` (product or psum, int16) give the true sum
``T``; ``sat = clamp(T, int16)`` and ``w = T mod 2^16``. For a register range [lo, hi]
(lo <= -1, 1 <= hi, inside int16):

- saturate / saturate_symmetric: value ``clamp(sat, lo, hi)`` = clamp(T, lo, hi); event iff
  value != w (if T fits int16, w = T; if not, |T| <= 2^16 - 2 cannot put w on the rail the
  clamp picked);
- wrap: value = ``w`` sign-extended from ``bits``; event iff it differs from ``w`` or
  ``sat != w`` (T left int16);
- numeric_std: value = low bits-1 bits of ``w`` with the sign of ``sat`` (= sign of T);
  event as for wrap.

Event counters are int16 lanes flushed into int64 after at most 32767 adds. Work is split over
(row group, column strip) blocks with ``prange``; each output belongs to one block, so the
thread count cannot change any result. The oracle is
:mod:`fxpsim.fixedpoint.oracle_gemm`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

LANES = 32
FLUSH = 32767  # adds per int16 event counter before it is flushed into int64
_I1, _I16, _I32, _I64 = ir.IntType(1), ir.IntType(16), ir.IntType(32), ir.IntType(64)
_VEC = ir.VectorType(_I16, LANES)
_VEC64 = ir.VectorType(_I64, LANES)
_Builder = Any  # llvmlite.ir.IRBuilder
_Value = Any  # llvmlite.ir.Value


def _intr(builder: _Builder, name: str) -> _Value:
    fnty = ir.FunctionType(_VEC, [_VEC, _VEC])
    return cgutils.get_or_insert_function(builder.module, fnty, f"llvm.{name}.v32i16")


def _splat(builder: _Builder, scalar: _Value) -> _Value:
    vec = builder.insert_element(ir.Constant(_VEC, ir.Undefined), scalar, ir.Constant(_I32, 0))
    mask = ir.Constant(ir.VectorType(_I32, LANES), [0] * LANES)
    return builder.shuffle_vector(vec, ir.Constant(_VEC, ir.Undefined), mask)


def _const(value: int) -> _Value:
    return ir.Constant(_VEC, [value] * LANES)


def _ptr(builder: _Builder, base: _Value, offset: int | _Value, ty: Any) -> _Value:
    off = ir.Constant(_I64, offset) if isinstance(offset, int) else offset
    return builder.inttoptr(builder.add(base, off), ty.as_pointer())


def _register_add(builder: _Builder, rule: str, x: _Value, y: _Value,
                  prm: tuple[_Value, _Value, _Value]) -> tuple[_Value, _Value]:
    """(new value, event mask) of one register add (rule: full/sat/wrap/nstd, see module)."""
    sat = builder.call(_intr(builder, "sadd.sat"), [x, y])
    wrapped = builder.add(x, y)
    if rule == "full":  # saturate on the whole int16 range: no clamp needed
        return sat, builder.icmp_signed("!=", sat, wrapped)
    lo, hi, shift = prm
    if rule == "sat":
        c = builder.call(_intr(builder, "smin"), [builder.call(_intr(builder, "smax"),
                                                               [sat, lo]), hi])
        return c, builder.icmp_signed("!=", c, wrapped)
    if rule == "wrap":
        c = builder.ashr(builder.shl(wrapped, shift), shift)
    else:  # numeric_std
        sign = builder.ashr(sat, _const(15))
        c = builder.add(builder.and_(wrapped, hi), builder.and_(sign, lo))
    left = builder.icmp_signed("!=", sat, wrapped)
    return c, builder.or_(builder.icmp_signed("!=", c, wrapped), left)


class _Phis:
    """Vector loop-carried values: one phi per register of the block."""

    def __init__(self, builder: _Builder, n: int, init: list[_Value], pred: Any) -> None:
        self.phis = [builder.phi(_VEC) for _ in range(n)]
        for p, v in zip(self.phis, init, strict=True):
            p.add_incoming(v, pred)

    def close(self, values: list[_Value], pred: Any) -> None:
        for p, v in zip(self.phis, values, strict=True):
            p.add_incoming(v, pred)


def _literal(ty: Any) -> Any:
    return ty.literal_value if isinstance(ty, types.Literal) else None


@intrinsic
def _strip(typingctx, rule_p_ty, rule_a_ty, mr_ty, nv_ty, a_addr, a_rs, b_addr, b_rs, kcount,
           tile, acc_addr, eva_addr, evp_addr, lo_p, hi_p, sh_p, lo_a, hi_a, sh_a):
    """One block of ``mr`` rows x ``nv*32`` columns over k in [0, kcount):

    ``_strip(rule_p, rule_a, mr, nv, a, a_rs, b, b_rs, kcount, tile, acc, ev_a, ev_p, lo_p,
    hi_p, sh_p, lo_a, hi_a, sh_a)`` -- the first four are compile-time literals (rules as in
    :func:`_register_add`, ``rule_p`` "none" for one register per output), then addresses
    (int64) of int16 ``a[m0, k0]`` (row stride ``a_rs`` bytes), int16 ``b[k0, n0]`` (row
    stride ``b_rs``), the block's int16 register state ``acc`` and its int64 event totals.
    Two levels: per tile of ``tile`` k's a psum register from 0, then one add of it into
    ``acc`` (``kcount`` is a multiple of ``tile`` or the end of K)."""
    lits = [_literal(t) for t in (rule_p_ty, rule_a_ty, mr_ty, nv_ty)]
    if any(v is None for v in lits):
        return None
    rule_p, rule_a, mr, nv = lits
    rule_p = None if rule_p == "none" else rule_p
    n = mr * nv
    sig = types.void(rule_p_ty, rule_a_ty, mr_ty, nv_ty, a_addr, a_rs, b_addr, b_rs, kcount,
                     tile, acc_addr, eva_addr, evp_addr, lo_p, hi_p, sh_p, lo_a, hi_a, sh_a)
    def codegen(context, builder, sig, args):
        v = [context.cast(builder, x, t, types.int64) for x, t in zip(args[4:],
                                                                        sig.args[4:],
                                                                        strict=True)]
        a_addr, a_rs, b_addr, b_rs, kcount, tile, acc_addr, eva_addr, evp_addr = v[:9]
        prm_p = tuple(_splat(builder, builder.trunc(x, _I16)) for x in v[9:12])
        prm_a = tuple(_splat(builder, builder.trunc(x, _I16)) for x in v[12:15])
        zero = _const(0)
        # a runtime 1 (tile >> 62 is 0): with a constant LLVM turns the counter's
        # select into ev - sext(mask), one more instruction than a masked add
        one = builder.add(_splat(builder, builder.trunc(
            builder.lshr(tile, ir.Constant(_I64, 62)), _I16)), _const(1))
        acc0 = [builder.load(_ptr(builder, acc_addr, 64 * i, _VEC), align=2)
                for i in range(n)]
        fn, entry = builder.function, builder.block
        exit_bb = fn.append_basic_block("strip_exit")

        def products(k: _Value) -> list[_Value]:
            kb = builder.mul(k, ir.Constant(_I64, 2))
            asplat = [_splat(builder, builder.load(_ptr(builder, a_addr, builder.add(
                builder.mul(ir.Constant(_I64, r), a_rs), kb), _I16), align=2))
                for r in range(mr)]
            brow = builder.add(b_addr, builder.mul(k, b_rs))
            out: list[_Value] = [None] * n
            for j in range(nv):
                bv = builder.load(_ptr(builder, brow, 64 * j, _VEC), align=2)
                for r in range(mr):
                    out[r * nv + j] = builder.mul(asplat[r], bv)
            return out

        def count(ev: _Value, e: _Value) -> _Value:
            return builder.select(e, builder.add(ev, one), ev)

        def adds(rule: str, regs: list[_Value], ys: list[_Value], evs: list[_Value],
                 prm: tuple[_Value, _Value, _Value]) -> tuple[list[_Value], list[_Value]]:
            out = [_register_add(builder, rule, x, y, prm) for x, y in zip(regs, ys,
                                                                            strict=True)]
            return [c for c, _ in out], [count(ev, e) for ev, (_, e) in zip(evs, out,
                                                                             strict=True)]

        nonempty = builder.icmp_signed(">", kcount, ir.Constant(_I64, 0))
        if rule_p is None:
            loop = fn.append_basic_block("k_loop")
            builder.cbranch(nonempty, loop, exit_bb)
            builder.position_at_end(loop)
            k = builder.phi(_I64)
            k.add_incoming(ir.Constant(_I64, 0), entry)
            acc, eva = _Phis(builder, n, acc0, entry), _Phis(builder, n, [zero] * n, entry)
            new_acc, new_ea = adds(rule_a, acc.phis, products(k), eva.phis, prm_a)
            k1 = builder.add(k, ir.Constant(_I64, 1))
            end = builder.block
            k.add_incoming(k1, end)
            acc.close(new_acc, end)
            eva.close(new_ea, end)
            builder.cbranch(builder.icmp_signed("<", k1, kcount), loop, exit_bb)
            new_ep: list[_Value] = []
        else:
            head = fn.append_basic_block("tile_head")
            inner = fn.append_basic_block("tile_k")
            tend = fn.append_basic_block("tile_end")
            builder.cbranch(nonempty, head, exit_bb)
            builder.position_at_end(head)
            t0 = builder.phi(_I64)
            t0.add_incoming(ir.Constant(_I64, 0), entry)
            acc = _Phis(builder, n, acc0, entry)
            eva = _Phis(builder, n, [zero] * n, entry)
            evp = _Phis(builder, n, [zero] * n, entry)
            t1 = builder.add(t0, tile)
            kend = builder.select(builder.icmp_signed("<", t1, kcount), t1, kcount)
            builder.branch(inner)
            builder.position_at_end(inner)
            k = builder.phi(_I64)
            k.add_incoming(t0, head)
            ps = _Phis(builder, n, [zero] * n, head)
            ep = _Phis(builder, n, evp.phis, head)
            new_ps, new_ep = adds(rule_p, ps.phis, products(k), ep.phis, prm_p)
            k1 = builder.add(k, ir.Constant(_I64, 1))
            iend = builder.block
            k.add_incoming(k1, iend)
            ps.close(new_ps, iend)
            ep.close(new_ep, iend)
            builder.cbranch(builder.icmp_signed("<", k1, kend), inner, tend)
            builder.position_at_end(tend)
            new_acc, new_ea = adds(rule_a, acc.phis, new_ps, eva.phis, prm_a)
            t0.add_incoming(t1, tend)
            acc.close(new_acc, tend)
            eva.close(new_ea, tend)
            evp.close(new_ep, tend)
            builder.cbranch(builder.icmp_signed("<", t1, kcount), head, exit_bb)
            end = tend
        builder.position_at_end(exit_bb)

        def final(init: list[_Value], last: list[_Value]) -> list[_Value]:
            out = []
            for i0, i1 in zip(init, last, strict=True):
                p = builder.phi(_VEC)
                p.add_incoming(i0, entry)
                p.add_incoming(i1, end)
                out.append(p)
            return out

        def flush(addr: _Value, evs: list[_Value]) -> None:
            for i, e16 in enumerate(evs):
                p = _ptr(builder, addr, 8 * LANES * i, _VEC64)
                builder.store(builder.add(builder.load(p, align=8),
                                          builder.sext(e16, _VEC64)), p, align=8)

        # every phi first: a block must start with its phis
        last_acc, last_ea = final(acc0, new_acc), final([zero] * n, new_ea)
        last_ep = final([zero] * n, new_ep) if new_ep else []
        for i, x in enumerate(last_acc):
            builder.store(x, _ptr(builder, acc_addr, 64 * i, _VEC), align=2)
        flush(eva_addr, last_ea)
        if last_ep:
            flush(evp_addr, last_ep)
        return context.get_dummy_value()

    return sig, codegen


def _make_driver(rule_p: str, rule_a: str, mr: int, nv: int, parallel: bool
                 ) -> Callable[..., None]:
    """Numba kernel over all (row group, column strip) blocks of one problem. The closure's
    variables are compile-time literals for :func:`_strip`; Numba's cache keys closures on
    their (pickled) values, so every variant is compiled once per machine, not per process."""
    width = nv * LANES

    @njit(parallel=parallel, cache=True)
    def run(a16, b16, tile, chunk, prm, values, ev_a, ev_p):
        m_rows, k_len = a16.shape
        n_cols = values.shape[1]
        n_strips = b16.shape[1] // width
        a_base, b_base = np.int64(a16.ctypes.data), np.int64(b16.ctypes.data)
        a_rs, b_rs = np.int64(2 * k_len), np.int64(2 * b16.shape[1])
        lo_p, hi_p, sh_p, lo_a, hi_a, sh_a = prm[0], prm[1], prm[2], prm[3], prm[4], prm[5]
        for g in prange(((m_rows + mr - 1) // mr) * n_strips):
            m0, n0 = (g // n_strips) * mr, (g % n_strips) * width
            rows = min(mr, m_rows - m0)
            acc = np.zeros(mr * width, np.int16)
            ea = np.zeros(mr * width, np.int64)
            ep = np.zeros(mr * width, np.int64)
            acc_p, ea_p, ep_p = (np.int64(acc.ctypes.data), np.int64(ea.ctypes.data),
                                 np.int64(ep.ctypes.data))
            for k0 in range(0, k_len, chunk):
                kc = min(chunk, k_len - k0)
                pa, pb = a_base + m0 * a_rs + 2 * k0, b_base + k0 * b_rs + 2 * n0
                if rows == mr:
                    _strip(rule_p, rule_a, mr, nv, pa, a_rs, pb, b_rs, kc, tile, acc_p, ea_p,
                           ep_p, lo_p, hi_p, sh_p, lo_a, hi_a, sh_a)
                else:
                    for r in range(rows):
                        _strip(rule_p, rule_a, 1, nv, pa + r * a_rs, a_rs, pb, b_rs, kc, tile,
                               acc_p + 2 * r * width, ea_p + 8 * r * width,
                               ep_p + 8 * r * width, lo_p, hi_p, sh_p, lo_a, hi_a, sh_a)
            for r in range(rows):
                for j in range(min(width, n_cols - n0)):
                    values[m0 + r, n0 + j] = acc[r * width + j]
                    ev_a[m0 + r, n0 + j] = ea[r * width + j]
                    ev_p[m0 + r, n0 + j] = ep[r * width + j]

    return run


_DRIVERS: dict[tuple[str, str, int, int, bool], Callable[..., None]] = {}
# below this many MACs one thread is faster than waking the others (a parallel launch costs
# tens of microseconds idle, milliseconds on a loaded machine)
PARALLEL_MACS = 1 << 21


def _driver(rule_p: str, rule_a: str, mr: int, nv: int, parallel: bool
            ) -> Callable[..., None]:
    key = (rule_p, rule_a, mr, nv, parallel)
    if key not in _DRIVERS:
        _DRIVERS[key] = _make_driver(*key)
    return _DRIVERS[key]


def _rule(bits: int, overflow: str) -> tuple[str, int, int, int]:
    """(rule, lo, hi, shift) of a register of ``bits`` <= 16 under ``overflow``."""
    hi = (1 << (bits - 1)) - 1
    lo = -hi if overflow == "saturate_symmetric" else -(1 << (bits - 1))
    if overflow == "saturate" and bits == 16:
        return "full", lo, hi, 0
    kind = {"saturate": "sat", "saturate_symmetric": "sat", "wrap": "wrap",
            "numeric_std": "nstd"}[overflow]
    return kind, lo, hi, 16 - bits


def fits(max_a: int, max_b: int, *bits: int) -> bool:
    """True when operands within ±max_a / ±max_b and registers of ``bits`` can use 16-bit
    lanes (every product and register value fits int16)."""
    return (max_a <= 32767 and max_b <= 32767 and max_a * max_b <= 32767
            and all(2 <= b <= 16 for b in bits))


def _layout(a: np.ndarray, b: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray, bool]:
    """(a16, b16 padded to whole strips, transposed?): the longer output axis goes in the
    lanes (a transposed problem adds every output's products in the same k order)."""
    m_rows, n_cols = a.shape[0], b.shape[1]
    waste = (-(-n_cols // width) * width) * m_rows, (-(-m_rows // width) * width) * n_cols
    swap = waste[1] < waste[0]
    if swap:
        a, b = b.T, a.T
    k_len, n_cols = b.shape
    n_pad = -(-max(n_cols, 1) // width) * width
    if n_pad == n_cols:
        b16 = np.ascontiguousarray(b, dtype=np.int16)
    else:
        b16 = np.zeros((k_len, n_pad), dtype=np.int16)
        b16[:, :n_cols] = b
    return np.ascontiguousarray(a, dtype=np.int16), b16, swap


def _run(a: np.ndarray, b: np.ndarray, rule_p: str | None, prm_p: tuple[int, int, int],
         rule_a: str, prm_a: tuple[int, int, int], tile: int
         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    shape = (a.shape[0], b.shape[1])
    if 0 in shape or a.shape[1] == 0:
        return (np.zeros(shape, dtype=np.int64), np.zeros(shape, dtype=np.int64),
                np.zeros(shape, dtype=np.int64))
    # wide strips share each broadcast a[m, k] over more columns; narrow problems take
    # one-vector strips (less padding) with more rows per block
    small = min(shape) <= 64
    mr, nv = (4, 1) if small else ((2, 4) if rule_p is None else (2, 2))
    a16, b16, swap = _layout(a, b, nv * LANES)
    chunk = FLUSH if rule_p is None else (FLUSH // tile) * tile
    prm = np.array(prm_p + prm_a, dtype=np.int64)
    # outputs in the kernel's orientation (contiguous writes); a swapped problem returns
    # transposed views, which a caller that transposes back gets as contiguous arrays
    kshape = (shape[1], shape[0]) if swap else shape
    values, ev_a, ev_p = (np.empty(kshape, dtype=np.int64) for _ in range(3))
    parallel = shape[0] * shape[1] * a.shape[1] >= PARALLEL_MACS
    _driver("none" if rule_p is None else rule_p, rule_a, mr, nv, parallel)(
        a16, b16, tile, chunk, prm, values, ev_a, ev_p)
    if swap:
        return values.T, ev_p.T, ev_a.T
    return values, ev_p, ev_a


def sequential16(a: np.ndarray, b: np.ndarray, bits: int, overflow: str
                 ) -> tuple[np.ndarray, np.ndarray]:
    """(values, events) int64 (M, N): one ``bits`` register per output, k order (caller checks
    :func:`fits`)."""
    rule, lo, hi, sh = _rule(bits, overflow)
    values, _, events = _run(a, b, None, (0, 0, 0), rule, (lo, hi, sh), 1)
    return values, events


def two_level16(a: np.ndarray, b: np.ndarray, tile: int, psum_bits: int, psum_overflow: str,
                acc_bits: int, acc_overflow: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(values, psum events, acc events) int64 (M, N) of the two-level order (see
    :func:`fxpsim.fixedpoint.gemm_kernels.two_level`; caller checks :func:`fits` and
    ``tile <= FLUSH``)."""
    rp, lp, hp, sp = _rule(psum_bits, psum_overflow)
    ra, la, ha, sa = _rule(acc_bits, acc_overflow)
    return _run(a, b, rp, (lp, hp, sp), ra, (la, ha, sa), tile)
