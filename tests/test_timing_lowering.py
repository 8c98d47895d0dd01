"""Lowering: GEMM shapes per pass, MAC totals, ordering, bits and byte accounting."""

from __future__ import annotations

from collections import Counter

import pytest

from fxpsim.graph.ir import (
    BatchNormAttrs,
    Conv2dAttrs,
    Graph,
    LinearAttrs,
    NoAttrs,
    Node,
    OperandFormats,
    PoolAttrs,
)
from fxpsim.recipes import recipe_for
from fxpsim.timing.lowering import ALU_OPS, VECTOR_KINDS, gemm_dims, lower
from fxpsim.timing.ops import GemmOp, TimingRequest, VectorOp


class _G:
    """Tiny graph builder with shape inference (independent of fxpsim.graph.build)."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.nodes = [Node("input", "input", (), NoAttrs(), shape)]

    def add(self, name, op, attrs=None, inputs=None, formats=None):
        inputs = inputs or (self.nodes[-1].name,)
        src = next(n for n in self.nodes if n.name == inputs[0])
        x = src.shape
        attrs = attrs if attrs is not None else NoAttrs()
        if isinstance(attrs, Conv2dAttrs | PoolAttrs):
            (kh, kw), (sh, sw), (ph, pw) = attrs.kernel, attrs.stride, attrs.padding
            c = attrs.out_channels if isinstance(attrs, Conv2dAttrs) else x[0]
            shape = (c, (x[1] + 2 * ph - kh) // sh + 1, (x[2] + 2 * pw - kw) // sw + 1)
        elif isinstance(attrs, LinearAttrs):
            shape = (attrs.out_features,)
        elif op == "flatten":
            shape = (x[0] * x[1] * x[2],)
        elif op == "global_avgpool":
            shape = (x[0], 1, 1)
        else:
            shape = x
        self.nodes.append(Node(name, op, tuple(inputs), attrs, shape, in_shape=x,
                               formats=formats or OperandFormats()))
        return self

    def graph(self, name="t", workload_only=False) -> Graph:
        ncls = self.nodes[-1].shape[0] if not workload_only else 0
        return Graph(name, tuple(self.nodes), ncls, workload_only=workload_only)


def conv(k, ks=3, s=1, p=1, g=1, bias=False):
    return Conv2dAttrs(out_channels=k, kernel=(ks, ks), stride=(s, s), padding=(p, p),
                       groups=g, bias=bias)


def two_layer() -> Graph:
    """input 3x8x8 -> conv(4, 3x3, pad 1) -> relu -> flatten -> linear(256 -> 10)."""
    return (_G((3, 8, 8)).add("c1", "conv2d", conv(4)).add("r1", "relu")
            .add("f", "flatten").add("fc", "linear", LinearAttrs(10)).graph())


def resnetish() -> Graph:
    """stride-1 'same' convs, BN, residual add (fan-out), maxpool, global pool, linear."""
    return (_G((3, 8, 8)).add("c1", "conv2d", conv(8)).add("bn1", "batchnorm", BatchNormAttrs())
            .add("r1", "relu").add("c2", "conv2d", conv(8)).add("bn2", "batchnorm",
                                                              BatchNormAttrs())
            .add("sum", "add", inputs=("bn2", "r1")).add("bn3", "batchnorm", BatchNormAttrs())
            .add("r2", "relu6").add("mp", "maxpool", PoolAttrs((2, 2), (2, 2)))
            .add("dw", "conv2d", conv(8, g=8, bias=True)).add("ap", "avgpool",
                                                              PoolAttrs((2, 2), (2, 2)))
            .add("gp", "global_avgpool").add("f", "flatten")
            .add("fc", "linear", LinearAttrs(5)).graph())


def gemms(ops, pass_name=None):
    return [(o.pass_name, o.layer, o.m, o.k, o.n, o.groups) for o in ops
            if isinstance(o, GemmOp) and (pass_name is None or o.pass_name == pass_name)]


def test_two_layer_gemm_shapes_every_pass():
    ops = lower(two_layer(), TimingRequest(batch=2, algo="sgd"))
    assert gemms(ops) == [
        ("forward", "c1", 128, 27, 4, 1),
        ("forward", "fc", 2, 256, 10, 1),
        ("backward_data", "fc", 2, 10, 256, 1),  # c1 is the first GEMM layer: no dX
        ("backward_weight", "fc", 256, 2, 10, 1),
        ("backward_weight", "c1", 27, 128, 4, 1),
    ]
    fwd = next(o for o in ops if isinstance(o, GemmOp))
    assert fwd.loop_dims == (("B", 2), ("OY", 8), ("OX", 8), ("C", 3), ("FY", 3), ("FX", 3),
                             ("K", 4))
    bw = [o for o in ops if isinstance(o, GemmOp) and o.pass_name == "backward_weight"]
    assert all((o.out_kind, o.out_bits, o.rounding) == ("weight_gradients", 32, "none")
               for o in bw)
    assert bw[1].a_kind == "activations" and bw[1].b_kind == "gradients"


def test_depthwise_and_strided_shapes():
    g = (_G((4, 8, 8)).add("c0", "conv2d", conv(8)).add("dw", "conv2d", conv(8, s=2, g=8))
         .add("c2", "conv2d", conv(6, s=2)).graph(workload_only=True))
    ops = lower(g, TimingRequest(batch=3))
    got = {(p, layer): (m, k, n, gr) for p, layer, m, k, n, gr in gemms(ops)}
    assert got[("forward", "dw")] == (3 * 4 * 4, 9, 1, 8)
    assert got[("backward_data", "dw")] == (3 * 8 * 8, 9, 1, 8)  # m = B*H*W (input pixels)
    assert got[("backward_weight", "dw")] == (9, 3 * 4 * 4, 1, 8)
    assert got[("forward", "c2")] == (3 * 2 * 2, 8 * 9, 6, 1)
    assert got[("backward_data", "c2")] == (3 * 4 * 4, 6 * 9, 8, 1)
    assert ("backward_data", "c0") not in got
    dims = gemm_dims(g.node("c2"), 3, "backward_data")[4]
    assert dims == (("B", 3), ("IY", 4), ("IX", 4), ("K", 6), ("FY", 3), ("FX", 3), ("C", 8))
    assert not any(isinstance(o, VectorOp) and o.pass_name == "loss" for o in ops)


@pytest.mark.parametrize("make", [two_layer, resnetish])
def test_mac_totals(make):
    g = make()
    b = 4
    fwd = sum(o.macs for o in lower(g, TimingRequest(batch=b, phase="infer"))
              if isinstance(o, GemmOp))
    assert fwd == g.macs * b
    ops = lower(g, TimingRequest(batch=b))
    first = g.gemm_nodes[0]
    train = sum(o.macs for o in ops if isinstance(o, GemmOp))
    assert train == 3 * g.macs * b - first.macs * b  # stride-1 'same' convs only
    laq = gemms(lower(g, TimingRequest(batch=b, algo="laq")))
    fb = gemms(lower(g, TimingRequest(batch=b, algo="fb")))
    strip = Counter((layer, m, k, n, gr) for _, layer, m, k, n, gr in laq)
    assert Counter((layer, m, k, n, gr) for _, layer, m, k, n, gr in fb) == strip + strip
    assert {p for p, *_ in fb} == {"forward", "backward_data", "backward_weight",
                                   "fb_trial_forward", "fb_trial_backward_data",
                                   "fb_trial_backward_weight"}


def test_wgrad_equals_forward_and_strided_dgrad_ratio():
    g = (_G((4, 9, 9)).add("c0", "conv2d", conv(8)).add("c1", "conv2d", conv(6, s=2, p=0))
         .add("c2", "conv2d", conv(6, ks=1, p=0)).graph(workload_only=True))
    ops = lower(g, TimingRequest(batch=2))
    by = {(o.pass_name, o.layer): o.macs for o in ops if isinstance(o, GemmOp)}
    for n in g.gemm_nodes:
        assert by[("backward_weight", n.name)] == by[("forward", n.name)] == 2 * n.macs
    # c1: 9x9 -> 4x4; its dgrad covers all 81 input pixels
    assert by[("backward_data", "c1")] * 16 == by[("forward", "c1")] * 81


def test_infer_is_forward_only_and_bn_folding():
    g = resnetish()
    inf = lower(g, TimingRequest(batch=2, phase="infer"))
    train = lower(g, TimingRequest(batch=2))
    assert {o.pass_name for o in inf} == {"forward"}
    assert gemms(inf) == gemms(train, "forward")
    kinds = {(o.layer, o.kind) for o in inf if isinstance(o, VectorOp)}
    assert ("bn3", "batchnorm_infer") in kinds  # after an add: cannot fold
    assert not any(layer in ("bn1", "bn2") for layer, _ in kinds)  # folded into conv scale
    assert ("bn1", "batchnorm_fwd") in {(o.layer, o.kind) for o in train
                                        if isinstance(o, VectorOp)}


def test_backward_order_and_fanout():
    g = resnetish()
    ops = lower(g, TimingRequest(batch=2))
    order = [n.name for n in g.gemm_nodes]
    for p in ("backward_weight", "grad_quant"):
        seen = list(dict.fromkeys(o.layer for o in ops if o.pass_name == p
                                  and o.layer in order))
        assert seen == order[::-1], p
    assert [x[1] for x in gemms(ops, "backward_data")] == ["fc", "dw", "c2"]
    bd = [(o.layer, o.kind) for o in ops if isinstance(o, VectorOp)
          and o.pass_name == "backward_data"]
    assert bd.index(("r1", "grad_add")) < bd.index(("r1", "relu_bwd"))
    add = next(o for o in ops if isinstance(o, VectorOp) and o.kind == "grad_add")
    assert add.elems == 2 * 8 * 8 * 8
    assert ("sum", "add") not in bd  # a sum routes its gradient unchanged
    assert ("dw", "bias_grad") in [(o.layer, o.kind) for o in ops if isinstance(o, VectorOp)]


def test_vector_ops_well_formed_and_byte_counts():
    g = resnetish()
    ops = lower(g, TimingRequest(batch=2, a_bits=4))
    for o in ops:
        if isinstance(o, VectorOp):
            assert o.kind in VECTOR_KINDS and o.elems > 0
            assert all(a in ALU_OPS and c > 0 for a, c in o.alu)
            assert o.dram_read_bytes == o.dram_write_bytes == 0
    relu = next(o for o in ops if isinstance(o, VectorOp) and o.kind == "relu6")
    assert relu.read_bytes == relu.write_bytes == 2 * 8 * 8 * 8 * 4 // 8
    mp = next(o for o in ops if isinstance(o, VectorOp) and o.kind == "maxpool")
    assert (mp.elems, mp.alu, mp.read_bytes) == (2 * 8 * 4 * 4, (("cmp", 3),), 2 * 8 * 64 // 2)
    sgd = next(o for o in ops if isinstance(o, VectorOp) and o.kind == "sgd_update"
               and o.layer == "fc")
    assert (sgd.elems, sgd.read_bytes, sgd.write_bytes) == (45, 45 * 12, 45 * 8)


def test_float_operands_and_format_override():
    g = two_layer()
    fl = lower(g, TimingRequest(batch=2, w_bits=None, g_bits=None))
    fwd = [o for o in fl if isinstance(o, GemmOp)]
    assert all(o.float_operands for o in fwd)
    assert fwd[0].b_bits == 32 and fwd[0].a_bits == 8
    assert not any(isinstance(o, VectorOp) and o.kind in ("quantize", "reduce_max") for o in fl)
    nodes = list(g.nodes)
    nodes[1] = Node("c1", "conv2d", ("input",), conv(4), (4, 8, 8), in_shape=(3, 8, 8),
                    formats=OperandFormats(w_bits=8))
    ops = lower(Graph("t", tuple(nodes), 10), TimingRequest(batch=2, w_bits=4))
    bits = {(o.pass_name, o.layer): o.b_bits for o in ops if isinstance(o, GemmOp)}
    assert bits[("forward", "c1")] == 8 and bits[("forward", "fc")] == 4
    assert not lower(g, TimingRequest(batch=2))[0].float_operands


def test_stochastic_rounding_rng_bits():
    g = two_layer()
    ops = lower(g, TimingRequest(batch=2, rounding_g="stochastic", rounding_w="stochastic"),
                random_bits=5)
    q = [o for o in ops if isinstance(o, VectorOp) and o.kind == "quantize"]
    assert {(o.pass_name, o.layer) for o in q} == {("grad_quant", "fc"), ("grad_quant", "c1"),
                                                  ("update", "c1"), ("update", "fc")}
    for o in q:
        assert o.rounding == "stochastic"
        assert o.stochastic_roundings == o.elems and o.rng_bits == o.elems * 5
    bd = next(o for o in ops if isinstance(o, GemmOp) and o.pass_name == "backward_data")
    assert bd.random_bits == 5 and bd.rounding == "stochastic"
    rn = lower(g, TimingRequest(batch=2, rounding_g="half_even", rounding_w="half_even"))
    assert sum(o.rng_bits for o in rn if isinstance(o, VectorOp)) == 0
    assert all(o.random_bits == 0 for o in rn if isinstance(o, GemmOp))
    with pytest.raises(ValueError, match="random_bits"):
        lower(g, TimingRequest(), random_bits=0)
    with pytest.raises(ValueError, match="batch"):
        lower(g, TimingRequest(batch=0))


def test_no_torch_or_numba_import():
    import subprocess
    import sys

    code = ("import sys, fxpsim.timing.lowering; "
            "sys.exit(int(any(m in sys.modules for m in ('torch', 'numba'))))")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_cross_check_fixedpoint_conv_shapes():
    """The value plane's conv lowering and the time plane's agree on every pass's GEMM."""
    from fxpsim.fixedpoint.conv import conv_gemm_shapes

    g = (_G((4, 9, 9)).add("c0", "conv2d", conv(8)).add("c1", "conv2d", conv(8, s=2, g=4))
         .add("c2", "conv2d", conv(6, ks=1, p=0)).graph(workload_only=True))
    for node in g.gemm_nodes:
        a = node.attrs
        c, h, w = node.in_shape
        got = conv_gemm_shapes(2, c, h, w, a.out_channels, *a.kernel, stride=a.stride,
                               padding=a.padding, groups=a.groups)
        for which in ("forward", "backward_data", "backward_weight"):
            m, k, n, groups, _ = gemm_dims(node, 2, which)
            assert tuple(getattr(got, which)) == (m, k, n), (node.name, which)
            assert got.groups == groups


def test_recipe_passes_match_lowering_pass_names():
    g = resnetish()
    for algo in ("sgd", "fb", "octo"):
        r = recipe_for(algo, "train")
        names = list(dict.fromkeys(o.pass_name for o in lower(g, TimingRequest(algo=algo), r)))
        assert names == [p.name for p in r.passes]


def _pool_net(kernel, stride, pad, hw=112, c=64):
    # a conv first, so the backward pass routes a gradient through the pools
    return (_G((3, hw, hw)).add("c", "conv2d", conv(c)).add("mp", "maxpool",
                                                          PoolAttrs(kernel, stride, pad))
            .add("ap", "avgpool", PoolAttrs(kernel, stride, pad))
            .add("f", "flatten").add("fc", "linear", LinearAttrs(10)).graph())


def test_pooling_reads_its_input_once():
    """ResNet-18's stem maxpool (3x3, stride 2, pad 1, 64x112x112, batch 32): the input is
    read once (25,690,112 bytes at 8 bits), not output x window (57,802,752)."""
    ops = lower(_pool_net((3, 3), (2, 2), (1, 1)), TimingRequest(batch=32, algo="sgd"))
    mp = next(o for o in ops if isinstance(o, VectorOp) and o.kind == "maxpool")
    assert mp.elems == 32 * 64 * 56 * 56
    assert mp.read_bytes == 32 * 64 * 112 * 112 == 25_690_112
    assert mp.write_bytes == 32 * 64 * 56 * 56 == 6_422_528
    assert mp.alu == (("cmp", 8),)  # the window's compares per output are unchanged
    # avgpool on the 56x56 output: rows 0..55 all covered -> the whole input once
    ap = next(o for o in ops if isinstance(o, VectorOp) and o.kind == "avgpool")
    assert ap.read_bytes == 32 * 64 * 56 * 56
    bwd = next(o for o in ops if isinstance(o, VectorOp) and o.kind == "maxpool_bwd")
    # input once (recompute the argmax) + the max output + dY; writes dX over the input
    assert bwd.read_bytes == 25_690_112 + 2 * 6_422_528
    assert bwd.write_bytes == 25_690_112


def test_pooling_never_reads_skipped_rows_or_padding():
    # kernel 1, stride 3 on 10x10: windows cover rows 0, 3, 6, 9 only -> 4 x 4 per channel
    ops = lower(_pool_net((1, 1), (3, 3), (0, 0), hw=10, c=2), TimingRequest(batch=1))
    mp = next(o for o in ops if isinstance(o, VectorOp) and o.kind == "maxpool")
    assert (mp.elems, mp.read_bytes) == (2 * 4 * 4, 2 * 4 * 4)
    # kernel 2, stride 3, pad 1 on 7x7 -> out 3x3; windows [-1,0], [2,3], [5,6]: 5 rows
    ops = lower(_pool_net((2, 2), (3, 3), (1, 1), hw=7, c=1), TimingRequest(batch=2))
    mp = next(o for o in ops if isinstance(o, VectorOp) and o.kind == "maxpool")
    assert (mp.elems, mp.read_bytes) == (2 * 3 * 3, 2 * 5 * 5)
    # 3x3 stride 1 pad 1 ('same') on 6x6: the input once, not 9x
    ops = lower(_pool_net((3, 3), (1, 1), (1, 1), hw=6, c=3), TimingRequest(batch=1))
    mp = next(o for o in ops if isinstance(o, VectorOp) and o.kind == "maxpool")
    assert (mp.elems, mp.read_bytes) == (3 * 36, 3 * 36)
