"""Lowering: graph x step recipe x operand formats -> ordered GEMM and vector ops.

Order: pass by pass in recipe order; inside a pass, graph order for forward-side kinds and
reverse graph order for backward-side kinds (:data:`~fxpsim.recipes.REVERSE_KINDS`).
The list is a work list, not a dependency graph: overlap is the schedule's business.

GEMM shapes (conv: batch ``B``, input ``C x H x W``, output ``K x OH x OW``, kernel
``kh x kw``, ``g`` groups; shapes are per group, ``groups=g``)::

    forward          m = B*OH*OW       k = (C/g)*kh*kw   n = K/g    A act,  B w,  out act
    backward_data    m = B*H*W         k = (K/g)*kh*kw   n = C/g    A grad, B w,  out grad
    backward_weight  m = (C/g)*kh*kw   k = B*OH*OW       n = K/g    A act,  B grad, out wgrad
    linear: forward (B, in, out), backward_data (B, out, in), backward_weight (in, B, out)

backward_data is the transposed conv over the (stride-dilated, padded) gradient, so with
stride s its MACs are ~s^2 times the forward's. ``loop_dims`` list the m dims, then the k
dims, then the n dims, named after the *layer's* loop nest (``B, OY, OX, C, FY, FX, K``;
``IY, IX`` are input pixels), so a spatial map like ``{rows: K, cols: C}`` means the same
thing in every pass. Weight gradients are written at 32 bits, not requantized.

Vector ops: ``alu`` is per element of ``elems``, in the names ``add, mul, cmp, shift, rsqrt,
exp_lut, requant`` (``cmp`` is the vector unit's max/compare; ``requant`` is one rounding to
an integer code in mode ``rounding``, priced as ``energy.requant_<mode>``). Roundings to a
float format (bits None) are not counted. Stochastic roundings draw ``random_bits`` bits each
(``rng_bits``). ``read_bytes``/``write_bytes`` are on-chip bytes, ``ceil(elems * bits / 8)``
per operand touched (codes at their real width, float/master/optimizer state at 32 bits).
DRAM bytes are 0 here: the schedule decides what spills, including master weights and
optimizer state when they do not fit on chip. Per-channel constants (BN scale/shift) read by
elementwise ops are not counted. Forward bias is added in the accumulator (no vector work).
Pooling reads each input element once (the vector unit slides the window over a line buffer
of the last ``kernel`` rows), never output x window, and never the padding; it still does
``window - 1`` compares (adds) per output.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from fxpsim.graph.ir import Conv2dAttrs, Graph, LinearAttrs, Node, PoolAttrs
from fxpsim.recipes import REVERSE_KINDS, PassDecl, Recipe, recipe_for
from fxpsim.timing.ops import GemmOp, Op, TimingRequest, VectorOp
from fxpsim.vocab import GEMM_PASSES, conv_gemm_shape, linear_gemm_shape

Alu = tuple[tuple[str, int], ...]
LoopDims = tuple[tuple[str, int], ...]
GemmPass = str  # "forward" | "backward_data" | "backward_weight"

ALU_OPS: frozenset[str] = frozenset({"add", "mul", "cmp", "shift", "rsqrt", "exp_lut", "requant"})
VECTOR_KINDS: frozenset[str] = frozenset({
    "batchnorm_fwd", "batchnorm_stats", "batchnorm_infer", "relu", "relu6", "maxpool",
    "avgpool", "global_avgpool", "add", "lac_fwd", "softmax_xent", "relu_bwd", "relu6_bwd",
    "maxpool_bwd", "avgpool_bwd", "global_avgpool_bwd", "batchnorm_bwd", "batchnorm_bwd_stats",
    "grad_add", "lac_bwd", "bias_grad", "reduce_max", "quantize", "lbt_count", "prc_clip",
    "bn_rectify", "hypernet_fwd", "hypernet_bwd", "blend", "sgd_update", "adam_update",
    "laq_projection", "scale_grad", "scale_update",
})
_F32 = 4  # bytes of an fp32 / int32 word


def _nb(elems: int, bits: int) -> int:
    return -(-elems * bits // 8)


def _dp(bits: int) -> int:
    """Vector datapath width for codes of ``bits``: 8, 16 or 32."""
    return 8 if bits <= 8 else 16 if bits <= 16 else 32


def gemm_dims(node: Node, batch: int, which: GemmPass) -> tuple[int, int, int, int, LoopDims]:
    """``(m, k, n, groups, loop_dims)`` of ``node``'s GEMM for one pass (see module doc)."""
    if which not in GEMM_PASSES:
        raise ValueError(f"which: expected forward, backward_data or backward_weight, "
                         f"got {which!r}")
    a = node.attrs
    if isinstance(a, Conv2dAttrs):
        c, h, w = node.in_shape
        k_out, oh, ow = node.shape
        kh, kw = a.kernel
        m, k, n, g = conv_gemm_shape(which, batch, (c, h, w), (k_out, oh, ow), a.kernel,
                                     a.groups)
        cg, kg = c // g, k_out // g
        flt = (("FY", kh), ("FX", kw))
        if which == "forward":
            dims = (("B", batch), ("OY", oh), ("OX", ow), ("C", cg), *flt, ("K", kg))
        elif which == "backward_data":
            dims = (("B", batch), ("IY", h), ("IX", w), ("K", kg), *flt, ("C", cg))
        else:
            dims = (("C", cg), *flt, ("B", batch), ("OY", oh), ("OX", ow), ("K", kg))
        return m, k, n, g, dims
    if isinstance(a, LinearAttrs):
        fin, fout = node.in_shape[0], a.out_features
        m, k, n, g = linear_gemm_shape(which, batch, fin, fout)
        named = {"forward": (("B", batch), ("C", fin), ("K", fout)),
                 "backward_data": (("B", batch), ("K", fout), ("C", fin)),
                 "backward_weight": (("C", fin), ("B", batch), ("K", fout))}
        return m, k, n, g, named[which]
    raise ValueError(f"node {node.name!r}: op {node.op!r} is not a GEMM layer")


def op_signature(op: Op) -> tuple[object, ...]:
    """What the value plane must reproduce of an op: GEMM shapes or vector kind and size."""
    if isinstance(op, GemmOp):
        return ("gemm", op.pass_name, op.layer, op.m, op.k, op.n, op.groups)
    return ("vector", op.pass_name, op.layer, op.kind, op.elems)


@dataclass(frozen=True)
class _Ctx:
    graph: Graph
    req: TimingRequest
    recipe: Recipe
    random_bits: int
    consumers: dict[str, tuple[str, ...]]
    grad: frozenset[str]  # tensors (node names) whose gradient the step computes
    folded_bn: frozenset[str]  # BN nodes folded into the preceding GEMM at inference

    def bits(self, node: Node, kind: str) -> int | None:
        own = getattr(node.formats, f"{kind}_bits")
        if own == "float":  # a per-layer float override
            return None
        return own if own is not None else getattr(self.req, f"{kind}_bits")

    def rounding(self, kind: str) -> str:
        return getattr(self.req, f"rounding_{kind}")

    def needs_dx(self, node: Node) -> bool:
        """Does the step compute the gradient w.r.t. this node's input(s)?"""
        if self.graph.workload_only:  # independent GEMM rows stand for one chained network
            return node.name != self.graph.gemm_nodes[0].name
        return any(i in self.grad for i in node.inputs)


def _context(graph: Graph, req: TimingRequest, recipe: Recipe, random_bits: int) -> _Ctx:
    cons: dict[str, list[str]] = {n.name: [] for n in graph.nodes}
    grad: set[str] = set()
    for n in graph.nodes:
        for i in n.inputs:
            cons[i].append(n.name)
        if n.params > 0 or any(i in grad for i in n.inputs):
            grad.add(n.name)
    folded = frozenset(
        n.name for n in graph.nodes
        if n.op == "batchnorm" and graph.node(n.inputs[0]).is_gemm
        and cons[n.inputs[0]] == [n.name]
    )
    return _Ctx(graph, req, recipe, random_bits, {k: tuple(v) for k, v in cons.items()},
                frozenset(grad), folded)


class _Emit:
    """Builds the ops of one pass for one node."""

    def __init__(self, ctx: _Ctx, p: PassDecl, node: Node) -> None:
        self.ctx, self.p, self.node = ctx, p, node
        self.B = ctx.req.batch
        self.ops: list[Op] = []

    def code(self, kind: str) -> int:
        b = self.ctx.bits(self.node, kind)
        return 32 if b is None else b

    def q(self, kind: str) -> tuple[Alu, str]:
        """ALU entry and mode of one rounding to the ``kind`` format (none if float)."""
        if self.ctx.bits(self.node, kind) is None:
            return (), "none"
        return (("requant", 1),), self.ctx.rounding(kind)

    def vec(self, kind: str, elems: int, alu: Iterable[tuple[str, int]], bits: int,
            read: int, write: int, rounding: str = "none", layer: str | None = None,
            op: str | None = None) -> None:
        alu_t = tuple((a, c) for a, c in alu if c > 0)
        n_round = elems * dict(alu_t).get("requant", 0)
        sr = n_round if rounding == "stochastic" else 0
        self.ops.append(VectorOp(
            layer=layer or self.node.name, op=op or self.node.op, pass_name=self.p.name,
            kind=kind, elems=elems, alu=alu_t, bits=bits, read_bytes=read, write_bytes=write,
            rng_bits=sr * self.ctx.random_bits, stochastic_roundings=sr,
            rounding=rounding if n_round else "none"))

    def gemm(self, which: GemmPass) -> None:
        m, k, n, g, dims = gemm_dims(self.node, self.B, which)
        a_kind, b_kind, out_kind, out = {
            "forward": ("activations", "weights", "activations", "a"),
            "backward_data": ("gradients", "weights", "gradients", "g"),
            "backward_weight": ("activations", "gradients", "weight_gradients", ""),
        }[which]
        kb = {"activations": "a", "weights": "w", "gradients": "g"}
        bits = [self.ctx.bits(self.node, kb[t]) for t in (a_kind, b_kind)]
        out_bits = self.ctx.bits(self.node, out) if out else None
        rounding = self.ctx.rounding(out) if out_bits is not None else "none"
        geo: dict[str, tuple[int, int]] = {}
        if isinstance(self.node.attrs, Conv2dAttrs):
            _, h, w = self.node.in_shape
            _, oh, ow = self.node.shape
            geo = {"stride": self.node.attrs.stride,
                   "in_hw": (oh, ow) if which == "backward_data" else (h, w)}
        self.ops.append(GemmOp(
            **geo,
            layer=self.node.name, op=self.node.op, pass_name=self.p.name, m=m, k=k, n=n,
            groups=g, a_kind=a_kind, b_kind=b_kind, out_kind=out_kind,  # type: ignore[arg-type]
            a_bits=32 if bits[0] is None else bits[0], b_bits=32 if bits[1] is None else bits[1],
            out_bits=32 if out_bits is None else out_bits, rounding=rounding, loop_dims=dims,
            float_operands=None in bits,
            random_bits=self.ctx.random_bits if rounding == "stochastic" else 0))

    def learned(self) -> bool:
        """Learned forward clips on this layer (its W or X is quantized)."""
        return self.ctx.req.forward_scales == "learned" and self.node.is_gemm and (
            self.ctx.bits(self.node, "w") is not None or self.ctx.bits(self.node, "a") is not None)

    def requant_tensor(self, elems: int, src_bits: int, kind: str, clip: int = 0,
                       fixed: bool = False) -> None:
        """Dynamic-range quantization: max reduction, then scale + round (+ PRC clip).
        ``fixed``: the clip value is given (learned), no max reduction. Nothing when the
        ``kind`` format is float."""
        if self.ctx.bits(self.node, kind) is None:
            return
        dst = self.code(kind)
        qa, mode = self.q(kind)
        if not fixed:
            self.vec("reduce_max", elems, (("cmp", 2 if clip else 1),), _dp(src_bits),
                     _nb(elems, src_bits), 0)
        self.vec("quantize", elems, (("cmp", clip), ("mul", 1), *qa), 32,
                 _nb(elems, src_bits), _nb(elems, dst), mode)


def _pool_window(node: Node) -> int:
    a = node.attrs
    assert isinstance(a, PoolAttrs)
    return a.kernel[0] * a.kernel[1]


def _covered(size: int, out: int, k: int, s: int, pad: int) -> int:
    """Input positions along one axis that at least one of ``out`` windows (``k`` wide,
    stride ``s``, ``pad`` zeros before) covers: padding is never read."""
    if s <= k:  # windows touch or overlap: one interval
        lo, hi = max(0, -pad), min(size, (out - 1) * s - pad + k)
        return max(0, hi - lo)
    return sum(max(0, min(size, o * s - pad + k) - max(0, o * s - pad)) for o in range(out))


def _pool_input_elems(node: Node, batch: int) -> int:
    """Input elements a pooling layer reads: each once. The vector unit keeps the last
    ``kernel`` rows in a line buffer and slides the window over them, so overlapping windows
    (3x3 stride 2) re-use what is already on chip instead of re-reading output x window."""
    a = node.attrs
    assert isinstance(a, PoolAttrs)
    c, h, w = node.in_shape
    _, oh, ow = node.shape
    return batch * c * (_covered(h, oh, a.kernel[0], a.stride[0], a.padding[0])
                        * _covered(w, ow, a.kernel[1], a.stride[1], a.padding[1]))


def _elems(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


_ADAM: Alu = (("mul", 7), ("add", 4), ("rsqrt", 1))  # moments, bias-corrected step, w -= ...


def _forward(e: _Emit) -> None:
    n, ctx = e.node, e.ctx
    a, (qa, ra) = e.code("a"), e.q("a")
    E = e.B * n.out_elems
    if n.is_gemm:
        e.gemm("forward")
        if e.p.lac and n.op == "conv2d":  # Y' = Y + a*mu + o (ALGORITHMS §6.4: 2 ops/elem)
            e.vec("lac_fwd", E, (("mul", 1), ("add", 1), *qa), 32,
                  _nb(E, a) + 3 * _F32 * E, _nb(E, a), ra)
    elif n.op == "batchnorm":
        if ctx.recipe.phase == "train":
            # stats pass (sum x, sum x^2) + normalize pass (x*scale + shift)
            e.vec("batchnorm_fwd", E, (("add", 3), ("mul", 2), *qa), 32,
                  2 * _nb(E, a), _nb(E, a), ra)
            c = n.shape[0]  # mean, var, rsqrt, scale, shift, running mean/var EMAs
            e.vec("batchnorm_stats", c, (("mul", 6), ("add", 5), ("rsqrt", 1)), 32,
                  6 * _F32 * c, 4 * _F32 * c)
        elif n.name not in ctx.folded_bn:  # folded BN lives in the GEMM's requant scale
            e.vec("batchnorm_infer", E, (("mul", 1), ("add", 1), *qa), 32,
                  _nb(E, a), _nb(E, a), ra)
    elif n.op in ("relu", "relu6"):
        e.vec(n.op, E, (("cmp", 1 if n.op == "relu" else 2),), _dp(a), _nb(E, a), _nb(E, a))
    elif n.op == "maxpool":
        win = _pool_window(n)
        e.vec("maxpool", E, (("cmp", win - 1),), _dp(a), _nb(_pool_input_elems(n, e.B), a),
              _nb(E, a))
    elif n.op == "avgpool":
        win = _pool_window(n)
        e.vec("avgpool", E, (("add", win - 1), ("mul", 1), *qa), 32,
              _nb(_pool_input_elems(n, e.B), a), _nb(E, a), ra)
    elif n.op == "global_avgpool":
        c, h, w = n.in_shape
        e.vec("global_avgpool", e.B * c, (("add", h * w - 1), ("mul", 1), *qa), 32,
              _nb(e.B * c * h * w, a), _nb(e.B * c, a), ra)
    elif n.op == "add":  # rescale every input to the output scale, sum, round
        k = len(n.inputs)
        e.vec("add", E, (("mul", k), ("add", k - 1), *qa), 32, k * _nb(E, a), _nb(E, a), ra)


def _backward_data(e: _Emit) -> None:
    n, ctx = e.node, e.ctx
    a, g, (qg, rg) = e.code("a"), e.code("g"), e.q("g")
    E = e.B * n.out_elems
    fan = len(ctx.consumers[n.name])
    if n.name in ctx.grad and fan >= 2:  # sum the gradients of all consumers
        s = E * (fan - 1)
        e.vec("grad_add", s, (("mul", 2), ("add", 1), *qg), 32, 2 * _nb(s, g), _nb(s, g), rg)
    if n.is_gemm:
        if e.p.lac and n.op == "conv2d":  # d(a), d(mu), d(o) + batch reductions; dY unchanged
            e.vec("lac_bwd", E, (("mul", 2), ("add", 3)), 32,
                  _nb(E, g) + 2 * _F32 * E, 3 * _F32 * n.out_elems)
        if ctx.needs_dx(n):
            e.gemm("backward_data")
            if e.learned() and ctx.bits(n, "a") is not None:
                # STE of u_A: mask dX to the clip range, sum dX·(code/qmax − x/u)
                ex = e.B * _elems(n.in_shape)
                e.vec("scale_grad", ex, (("cmp", 2), ("mul", 3), ("add", 2)), 32,
                      _nb(ex, g) + _nb(ex, a) + _F32 * ex, _nb(ex, g))
        return
    if not ctx.needs_dx(n) and n.op != "batchnorm":
        return
    ein = e.B * _elems(n.in_shape)
    if n.op in ("relu", "relu6"):
        e.vec(f"{n.op}_bwd", E, (("cmp", 1 if n.op == "relu" else 2),), _dp(g),
              _nb(E, g) + _nb(E, a), _nb(E, g))
    elif n.op == "maxpool":  # route dY to the window position equal to the max
        win = _pool_window(n)  # the input is re-read once through the line buffer
        e.vec("maxpool_bwd", E, (("cmp", win),), _dp(max(a, g)),
              _nb(_pool_input_elems(n, e.B), a) + _nb(E, a) + _nb(E, g), _nb(ein, g))
    elif n.op == "avgpool":
        win = _pool_window(n)
        e.vec("avgpool_bwd", E, (("mul", 1), ("add", win), *qg), 32,
              _nb(E, g), _nb(ein, g), rg)
    elif n.op == "global_avgpool":
        c = n.shape[0]
        e.vec("global_avgpool_bwd", e.B * c, (("mul", 1), *qg), 32, _nb(e.B * c, g),
              _nb(ein, g), rg)
    elif n.op == "batchnorm":
        # pass 1: sum dY, sum dY*xhat (xhat recomputed); pass 2: dX = k*(dY - a - xhat*b)
        e.vec("batchnorm_bwd", E, (("add", 6), ("mul", 5), *qg), 32,
              2 * (_nb(E, g) + _nb(E, a)), _nb(E, g), rg)
        c = n.shape[0]
        e.vec("batchnorm_bwd_stats", c, (("mul", 3),), 32, 4 * _F32 * c, 5 * _F32 * c)


def _backward_weight(e: _Emit) -> None:
    n = e.node
    if not n.is_gemm:
        return
    e.gemm("backward_weight")
    if e.learned() and e.ctx.bits(n, "w") is not None:  # STE of s_W over dW, W, W's codes
        nw = _elems(n.weight_shape)
        e.vec("scale_grad", nw, (("cmp", 2), ("mul", 3), ("add", 2)), 32,
              2 * _F32 * nw + _nb(nw, e.code("w")), _F32 * nw)
    if n.attrs.bias:  # type: ignore[union-attr]
        E = e.B * n.out_elems
        e.vec("bias_grad", E, (("add", 1),), 32, _nb(E, e.code("g")), _F32 * n.shape[0])


def _grad_quant(e: _Emit) -> None:
    if e.node.is_gemm:
        e.requant_tensor(e.B * e.node.out_elems, e.code("g"), "g")
        if e.ctx.req.g_granularity != "tensor" and e.ctx.needs_dx(e.node):
            # per-channel (per-sample) scales do not factor out of backward-data's channel
            # (backward-weight's batch) reduction: that GEMM gets a per-tensor copy of dY
            e.requant_tensor(e.B * e.node.out_elems, e.code("g"), "g")


def _lbt_interval(e: _Emit) -> None:
    if e.node.is_gemm:  # r = mean(|dY| > gamma * max|dY|); max shared with grad_quant
        E, g = e.B * e.node.out_elems, e.code("g")
        e.vec("lbt_count", E, (("cmp", 1), ("add", 1)), _dp(g), _nb(E, g), 0)


def _octo_requant(e: _Emit) -> None:
    n = e.node
    if not n.is_gemm:
        return
    E, g = e.B * n.out_elems, e.code("g")
    # PRC on dY: one more cmp for the min (the max is grad_quant's) + clip to 0.95*[min, max].
    # X and W enter the backward GEMMs as their forward INT8 codes (no re-quantization), as
    # the Octo demo's quantized layers reuse them to save memory -- and as the value plane does.
    e.vec("prc_clip", E, (("cmp", 3),), _dp(g), _nb(E, g), _nb(E, g))
    if n.op == "conv2d" and e.ctx.req.octo_backward == "requant":
        # the demo's LAC conv re-quantizes the range-clipped float X and W to INT8 (nearest)
        # for the backward GEMMs: min/max reduction, then clip + scale + round, per operand
        for kind, elems in (("a", e.B * math.prod(n.in_shape)), ("w", math.prod(n.weight_shape))):
            if e.ctx.bits(n, kind) is None:
                continue
            dst = e.code(kind)
            e.vec("reduce_max", elems, (("cmp", 2),), 32, _nb(elems, 32), 0)
            e.vec("prc_quantize", elems, (("cmp", 2), ("mul", 1), ("requant", 1)), 32,
                  _nb(elems, 32), _nb(elems, dst))


def _bn_rectify(e: _Emit) -> None:
    if e.node.op == "batchnorm":  # max(0, |gamma|/sigma - 1)^2 and its gradient, per channel
        c = e.node.shape[0]
        e.vec("bn_rectify", c, (("mul", 5), ("add", 3), ("cmp", 3)), 32, 4 * _F32 * c,
              _F32 * c)


def _hypernet(e: _Emit) -> None:
    if not e.node.is_gemm:
        return
    p, h = _elems(e.node.weight_shape), e.ctx.recipe.hypernet_hidden
    # 1->h->1 MLP per weight: backward 2h multiply-adds, forward h (ALGORITHMS §4.3: ~6h ops);
    # G and the h hidden activations stay alive until the next step's backward
    e.vec("hypernet_bwd", p, (("mul", 2 * h), ("add", 2 * h)), 32, _F32 * (h + 2) * p, 0)
    e.vec("hypernet_fwd", p, (("mul", h), ("add", h)), 32, _F32 * p, _F32 * (h + 1) * p)


def _blend(e: _Emit) -> None:
    p = e.node.params
    if p:  # g_bar = a*g_trial + (1-a)*g
        e.vec("blend", p, (("mul", 2), ("add", 1)), 32, 2 * _F32 * p, _F32 * p)


def _update(e: _Emit) -> None:
    n, opt = e.node, e.p.optimizer
    p = n.params
    if not p:
        return
    if opt == "sgd_momentum":  # v = mu*v + g; w -= lr*v (reads w, g, v; writes w, v)
        e.vec("sgd_update", p, (("mul", 2), ("add", 2)), 32, 3 * _F32 * p, 2 * _F32 * p)
    else:  # reads w, g, m, v; writes w, m, v; LAQ clips w to [-1, 1]
        clip = (("cmp", 2),) if opt == "laq_adam_projection" else ()
        e.vec("adam_update", p, (*_ADAM, *clip), 32, 4 * _F32 * p, 3 * _F32 * p)
    if n.is_gemm and e.ctx.bits(n, "w") is not None:
        w, nw = e.code("w"), _elems(n.weight_shape)
        if opt == "laq_adam_projection":
            r = e.ctx.recipe.projection_rounds
            # d = sqrt(v) + eps once; per round: 2 reductions (sum d*b*w, sum d*b^2) and
            # b = round(clip(w/alpha)) (mul, 2 cmp, requant)
            alu = (("mul", 1 + 4 * r), ("add", 1 + 2 * r), ("cmp", 2 * r), ("rsqrt", 1),
                   ("requant", r))
            e.vec("laq_projection", nw, alu, 32, _F32 * nw + r * (3 * _F32 * nw + _nb(nw, w)),
                  _F32 * nw + r * _nb(nw, w), e.ctx.rounding("w"))
        else:
            e.requant_tensor(nw, 32, "w", fixed=e.learned())
    if e.learned() and not e.p.scratch:  # Adam step of the layer's clips (s_W, u_A)
        e.vec("scale_update", 2, _ADAM, 32, 4 * _F32 * 2, 3 * _F32 * 2)
    if e.p.lac and n.op == "conv2d":  # a, mu, o (C x H x W each) + L2 penalty on mu, o
        c = 3 * n.out_elems
        e.vec("adam_update", c, (("mul", 8), ("add", 5), ("rsqrt", 1)), 32, 4 * _F32 * c,
              3 * _F32 * c)


_PASS_FNS = {
    "forward": _forward, "backward_data": _backward_data, "backward_weight": _backward_weight,
    "grad_quant": _grad_quant, "lbt_interval": _lbt_interval, "octo_requant": _octo_requant,
    "bn_rectify": _bn_rectify, "hypernet": _hypernet, "blend": _blend, "update": _update,
}


def _lower_pass(ctx: _Ctx, p: PassDecl, nodes: tuple[Node, ...]) -> list[Op]:
    if p.kind == "loss":
        last = ctx.graph.nodes[-1]
        if ctx.graph.workload_only:  # no classifier
            return []
        e = _Emit(ctx, p, last)
        E, (qg, rg) = e.B * last.out_elems, e.q("g")
        # max, exp, sum, normalize, minus one-hot -> dlogits (per-sample reciprocal not counted)
        e.vec("softmax_xent", E, (("cmp", 1), ("add", 3), ("exp_lut", 1), ("mul", 1), *qg), 32,
              2 * _nb(E, e.code("a")), _nb(E, e.code("g")), rg)
        return e.ops
    out: list[Op] = []
    for n in nodes:
        e = _Emit(ctx, p, n)
        _PASS_FNS[p.kind](e)
        out.extend(e.ops)
    if p.kind == "hypernet" and ctx.graph.gemm_nodes:  # the hypernetwork's own Adam step
        e = _Emit(ctx, p, ctx.graph.gemm_nodes[-1])
        h = 3 * ctx.recipe.hypernet_hidden + 1
        e.vec("adam_update", h, _ADAM, 32, 4 * _F32 * h, 3 * _F32 * h, layer="hypernet",
              op="hypernet")
        out.extend(e.ops)
    return out


def lower(graph: Graph, req: TimingRequest, recipe: Recipe | None = None, *,
          random_bits: int = 8) -> tuple[Op, ...]:
    """Expand ``recipe`` (default: ``recipe_for(req.algo, req.phase)``) over ``graph``.

    ``random_bits`` is the number of random bits one stochastic rounding draws (the
    hardware's ``random_bits_per_rounding``). Raises ValueError naming the argument for a
    non-positive batch or random_bits.
    """
    if req.batch < 1:
        raise ValueError(f"req.batch must be >= 1, got {req.batch}")
    if random_bits < 1:
        raise ValueError(f"random_bits must be >= 1, got {random_bits}")
    if recipe is None:
        recipe = recipe_for(req.algo, req.phase, projection_rounds=req.projection_rounds,
                            hypernet_hidden=req.hypernet_hidden)
    ctx = _context(graph, req, recipe, random_bits)
    ops: list[Op] = []
    for p in recipe.passes:
        nodes = reversed(graph.nodes) if p.kind in REVERSE_KINDS else graph.nodes
        ops.extend(_lower_pass(ctx, p, tuple(nodes)))
    return tuple(ops)
