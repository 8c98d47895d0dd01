"""LBT's protocol (learned forward clips, unsigned post-ReLU activation codes, float first and
last layers) and per-channel / per-sample gradient quantizers: quantizers against exact
references, layers against Python-int GEMMs, hand-computed small cases, the STE against the
authors' quantizer formulas under torch autograd, the CLI options, and both planes'
agreement on the work executed."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import replace

import numpy as np
import pytest
import torch
from test_train_layers import (
    _as_acc,
    _ints,
    _nc,
    _probe,
    _probe_nchw,
    _runtime,
    conv_ref,
    dgrad_ref,
    mm_ref,
    wgrad_ref,
)

from fxpsim.cli import main
from fxpsim.config.run import parse_run_options
from fxpsim.errors import ConfigError
from fxpsim.graph.layer_formats import float_ends, with_layer_formats
from fxpsim.graph.resolve import load_model
from fxpsim.training.formats import NumericsConfig, TensorNumerics
from fxpsim.training.fwdscales import initial_clips, nonnegative_nodes
from fxpsim.training.qlayers import ConvGeom, QConv2dFn, QLinearFn
from fxpsim.training.qnet import build_qnet
from fxpsim.training.quantizers import quantize_symmetric

# ---- unsigned activation codes ---------------------------------------------------------------


def _fp32_up(v: float) -> float:
    """The smallest fp32 >= v (the fp32 scale register)."""
    f = float(np.float32(v))
    return f if f >= v else float(np.nextafter(np.float32(v), np.float32(np.inf)))


def _unsigned_ref(xs: list[float], bits: int) -> tuple[list[int], float, int]:
    """Plain-Python unsigned quantizer: Δ = fp32↑(max/(2^b−1)), code = clamp(rne(x/Δ))."""
    qmax = (1 << bits) - 1
    c = max(abs(v) for v in xs)
    delta = _fp32_up(c / qmax) if c > 0 else 1.0
    codes, clipped = [], 0
    for v in xs:
        r = round(float(np.float32(v)) / delta)  # Python round: half to even, float64 quotient
        if r < 0 or r > qmax:
            clipped += 1
        codes.append(min(max(r, 0), qmax))
    return codes, delta, clipped


def test_unsigned_codes_hand_case() -> None:
    """4-bit unsigned with clip 1.0: Δ = fp32↑(1/15), 16 levels 0..15 (signed: 0..7)."""
    x = torch.tensor([0.0, 0.2, 0.4, 1.0, 1.2, -0.3])
    tn = TensorNumerics(4, "half_even", signed=False)
    q = quantize_symmetric(x, tn, clip=1.0)
    assert q.codes.tolist() == [0, 3, 6, 15, 15, 0]
    assert q.n_clipped == 2 and q.qmax == 15 and not q.signed
    assert float(q.scale) == _fp32_up(1 / 15)
    signed = quantize_symmetric(x.clamp(min=0), TensorNumerics(4, "half_even"), clip=1.0)
    assert signed.codes.max() == 7  # the signed grid has 8 non-negative levels


@pytest.mark.parametrize("bits", [2, 3, 4, 7, 8, 12])
def test_unsigned_quantizer_matches_python_reference(bits: int) -> None:
    gen = torch.Generator().manual_seed(bits)
    x = torch.relu(torch.randn(3, 5, 4, 4, generator=gen)) * 3
    x[0, 0, 0, :2] = torch.tensor([0.0, float(x.max())])  # edge values: 0 and the max
    codes, delta, clipped = _unsigned_ref(x.reshape(-1).tolist(), bits)
    tn = TensorNumerics(bits, "half_even", signed=False)
    q = quantize_symmetric(x, tn)
    assert q.codes.reshape(-1).tolist() == codes and float(q.scale) == delta
    assert q.n_clipped == clipped == 0
    if bits <= 7:  # the fused NHWC path gives the same codes
        from fxpsim.training.quantizers import quantize_padded_nhwc

        fused = quantize_padded_nhwc(x, tn, (1, 1))
        assert fused is not None
        assert fused[0].codes.reshape(-1).tolist() == codes


def _unsigned_nc(a_bits: int, acc_bits: int = 32, ovf: str = "saturate") -> NumericsConfig:
    nc = _nc(8, a_bits, 8, acc_bits, ovf, g_round="half_even")
    return replace(nc, activations=replace(nc.activations, signed=False))


@pytest.mark.parametrize("a_bits,acc_bits", [(4, 32), (4, 12), (8, 32)])
def test_unsigned_conv_matches_python_int_reference(a_bits: int, acc_bits: int) -> None:
    """Post-ReLU input, unsigned codes 0..2^b−1 through the integer GEMMs (forward and
    backward-weight) equal the Python-int references; the kernel wrapper records b bits."""
    gen = torch.Generator().manual_seed(3)
    x = torch.relu(torch.randn(2, 3, 5, 5, generator=gen)).requires_grad_()
    w = torch.randn(4, 3, 3, 3, generator=gen).requires_grad_()
    nc = _unsigned_nc(a_bits, acc_bits)
    rt = _runtime(nc)
    seen = _probe(rt)
    y = QConv2dFn.apply(x, w, rt, ConvGeom((3, 3), (1, 1), (1, 1), 1))
    gy = torch.randn(y.shape, generator=gen)
    y.backward(gy)
    xq = quantize_symmetric(x, nc.activations)
    wq = quantize_symmetric(w, nc.weights)
    gq = quantize_symmetric(gy, nc.gradients)
    # pow2 scales: the max lands above the signed grid's 2^(b-1)-1 levels
    assert (1 << (a_bits - 1)) - 1 < int(xq.codes.max()) <= (1 << a_bits) - 1
    ref_y, _ = conv_ref(_ints(xq.codes), _ints(wq.codes), (1, 1), (1, 1), 1, acc_bits,
                        "saturate")
    ref_dw, _ = wgrad_ref(_ints(xq.codes), _ints(gq.codes), (3, 3), (1, 1), (1, 1), 1,
                          acc_bits, "saturate")
    assert np.array_equal(_probe_nchw(seen, 1, tuple(y.shape)), ref_y.astype(np.int64))
    assert np.array_equal(_as_acc(w.grad, xq.scale * gq.scale), ref_dw.astype(np.int64))
    fwd = next(r for r in rt.counters.gemms if r.pass_name == "forward")
    bwd = next(r for r in rt.counters.gemms if r.pass_name == "backward_weight")
    assert (fwd.a_bits, fwd.b_bits) == (a_bits, 8)
    assert (bwd.a_bits, bwd.b_bits) == (a_bits, 8)


def test_qnet_gives_unsigned_codes_only_after_a_relu() -> None:
    graph = load_model("lenet5")
    nonneg = nonnegative_nodes(graph)
    hw = _hw()
    nc = replace(NumericsConfig.from_hw(hw, w_bits=4, a_bits=4, g_bits=4), a_codes="unsigned")
    net = build_qnet(graph, nc, seed=0)
    signed = {n: rt.numerics.activations.signed for n, rt in net.runtimes.items()}
    first = graph.gemm_nodes[0].name
    assert signed[first]  # the image input may be negative
    for node in graph.gemm_nodes[1:]:
        assert signed[node.name] == (node.inputs[0] not in nonneg)
    assert not all(signed.values())


# ---- per-channel / per-sample gradient quantizers ---------------------------------------------

def _hand_nc(gran: str) -> NumericsConfig:
    """W4 A4 G3, pow2 scales (exact), rounding to nearest even, 32-bit accumulators."""
    return NumericsConfig(
        weights=TensorNumerics(4, "half_even", scale="pow2"),
        activations=TensorNumerics(4, "half_even", scale="pow2"),
        gradients=TensorNumerics(3, "half_even", gran, scale="pow2"),  # type: ignore[arg-type]
        acc_bits=32)


@pytest.mark.parametrize("gran,dx,dw", [
    # dY = [[1, -0.5], [0.6, 2]], X = [[1, 2], [3, -1]] (codes 2,4,6,-2 at Δx 0.5),
    # W = I (codes 4 at Δw 0.25); G3: qmax 3, pow2 Δ, ties to even.
    # per tensor: Δg = 1, codes [[1, 0], [1, 2]]: dX = codes·4·0.25,
    #   dW[c] = Σ_b g[b,c]·x[b]·Δg·Δx = [(2,4)+(6,−2), 2·(6,−2)]·0.5 = [[4, 1], [6, −2]]
    ("per_tensor", [[1.0, 0.0], [1.0, 2.0]], [[4.0, 1.0], [6.0, -2.0]]),
    # per channel (columns): Δg = (0.5, 1), codes [[2, 0], [1, 2]] for dW;
    #   dW[0] = (2·(2,4) + 1·(6,−2))·0.5·0.5 = (2.5, 1.5) (float: (2.8, 1.4));
    #   dX from the per-tensor copy, as above
    ("per_channel", [[1.0, 0.0], [1.0, 2.0]], [[2.5, 1.5], [6.0, -2.0]]),
    # per sample (rows): Δg = (0.5, 1), codes [[2, −1], [1, 2]] for dX;
    #   dX[b] = g[b]·4·Δg[b]·0.25 = [[1, −0.5], [1, 2]]; dW from the per-tensor copy
    ("per_sample", [[1.0, -0.5], [1.0, 2.0]], [[4.0, 1.0], [6.0, -2.0]]),
])
def test_gradient_granularity_hand_case(gran: str, dx, dw) -> None:
    x = torch.tensor([[1.0, 2.0], [3.0, -1.0]], requires_grad=True)
    w = torch.eye(2, requires_grad=True)
    nc = _hand_nc(gran)
    rt = _runtime(nc, op="linear")
    y = QLinearFn.apply(x, w, rt)
    y.backward(torch.tensor([[1.0, -0.5], [0.6, 2.0]]))
    assert x.grad.tolist() == dx
    assert w.grad.tolist() == dw
    kinds = Counter(v.kind for v in rt.counters.vector_ops)
    assert kinds["quantize_grad"] == 1
    assert kinds["quantize_grad_copy"] == (0 if gran == "per_tensor" else 1)


@pytest.mark.parametrize("gran", ["per_channel", "per_sample"])
@pytest.mark.parametrize("acc_bits", [32, 12])  # 32: pixel-major fast path; 12: channel-major
def test_gradient_granularity_conv_matches_python_int_reference(gran: str, acc_bits: int):
    """Per-channel scales multiply the rows of dW (they factor out of its batch reduction),
    per-sample scales the rows of dX; the other GEMM runs on the per-tensor copy."""
    gen = torch.Generator().manual_seed(5)
    nb, c, k, h = 3, 2, 4, 5
    x = torch.randn(nb, c, h, h, generator=gen).requires_grad_()
    w = torch.randn(k, c, 3, 3, generator=gen).requires_grad_()
    nc = _nc(8, 8, 6, acc_bits, "saturate", g_round="half_even")
    nc = replace(nc, gradients=replace(nc.gradients, granularity=gran))
    rt = _runtime(nc)
    stride, pad = (2, 2), (1, 1)
    y = QConv2dFn.apply(x, w, rt, ConvGeom((3, 3), stride, pad, 1))
    gy = torch.randn(y.shape, generator=gen) * torch.tensor([0.1, 3.0, 50.0]).view(-1, 1, 1, 1) \
        * torch.tensor([0.05, 0.5, 4.0, 40.0]).view(1, -1, 1, 1)  # distinct scales
    y.backward(gy)
    xq, wq = quantize_symmetric(x, nc.activations), quantize_symmetric(w, nc.weights)
    copy = quantize_symmetric(gy, replace(nc.gradients, granularity="per_tensor"))
    if gran == "per_channel":
        gc = quantize_symmetric(gy.transpose(0, 1), nc.gradients, per_channel=True)
        codes = gc.codes.transpose(0, 1)
        ref_dw, _ = wgrad_ref(_ints(xq.codes), _ints(codes), (3, 3), stride, pad, 1, acc_bits,
                              "saturate")
        s = (xq.scale * gc.scale).reshape(-1, 1, 1, 1)
        assert np.array_equal(_as_acc(w.grad, s), ref_dw.astype(np.int64))
        ref_dx, _ = dgrad_ref(_ints(copy.codes), _ints(wq.codes), (h, h), stride, pad, 1,
                              acc_bits, "saturate")
        assert np.array_equal(_as_acc(x.grad, copy.scale * wq.scale), ref_dx.astype(np.int64))
        assert len(set(gc.scale.tolist())) == k  # really one scale per channel
    else:
        gs = quantize_symmetric(gy, nc.gradients, per_channel=True)
        ref_dx, _ = dgrad_ref(_ints(gs.codes), _ints(wq.codes), (h, h), stride, pad, 1,
                              acc_bits, "saturate")
        s = (gs.scale * wq.scale).reshape(-1, 1, 1, 1)
        assert np.array_equal(_as_acc(x.grad, s), ref_dx.astype(np.int64))
        ref_dw, _ = wgrad_ref(_ints(xq.codes), _ints(copy.codes), (3, 3), stride, pad, 1,
                              acc_bits, "saturate")
        assert np.array_equal(_as_acc(w.grad, xq.scale * copy.scale), ref_dw.astype(np.int64))
        assert len(set(gs.scale.tolist())) == nb


def test_gradient_granularity_linear_matches_python_int_reference() -> None:
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(4, 6, generator=gen).requires_grad_()
    w = torch.randn(5, 6, generator=gen).requires_grad_()
    gy = torch.randn(4, 5, generator=gen) * torch.tensor([0.1, 1, 3, 8]).view(-1, 1)
    for gran in ("per_channel", "per_sample"):
        nc = _nc(8, 8, 5, 32, "saturate", g_round="half_even")
        nc = replace(nc, gradients=replace(nc.gradients, granularity=gran))
        x.grad = w.grad = None
        QLinearFn.apply(x, w, _runtime(nc, op="linear")).backward(gy)
        xq, wq = quantize_symmetric(x, nc.activations), quantize_symmetric(w, nc.weights)
        copy = quantize_symmetric(gy, replace(nc.gradients, granularity="per_tensor"))
        xi, wi = _ints(xq.codes), _ints(wq.codes)
        if gran == "per_channel":
            gc = quantize_symmetric(gy.t(), nc.gradients, per_channel=True)
            gi = _ints(gc.codes.t())
            ref_dwt, _ = mm_ref([list(r) for r in zip(*xi, strict=True)], gi, 32, "saturate")
            assert np.array_equal(_as_acc(w.grad, (xq.scale * gc.scale)[:, None]),
                                  ref_dwt.T.astype(np.int64))
            ref_dx, _ = mm_ref(_ints(copy.codes), wi, 32, "saturate")
            assert np.array_equal(_as_acc(x.grad, copy.scale * wq.scale),
                                  ref_dx.astype(np.int64))
        else:
            gs = quantize_symmetric(gy, nc.gradients, per_channel=True)
            ref_dx, _ = mm_ref(_ints(gs.codes), wi, 32, "saturate")
            assert np.array_equal(_as_acc(x.grad, (gs.scale * wq.scale)[:, None]),
                                  ref_dx.astype(np.int64))
            ref_dwt, _ = mm_ref([list(r) for r in zip(*xi, strict=True)], _ints(copy.codes),
                                32, "saturate")
            assert np.array_equal(_as_acc(w.grad, xq.scale * copy.scale),
                                  ref_dwt.T.astype(np.int64))


# ---- learned forward scales -------------------------------------------------------------------

class _RoundSTE(torch.autograd.Function):
    """The authors' RoundFunction: round(x·n)/n forward, identity backward."""

    @staticmethod
    def forward(ctx, x, n):
        return torch.round(x * n) / n

    @staticmethod
    def backward(ctx, g):
        return g, None


def _authors_w(w: torch.Tensor, s: torch.Tensor, bits: int) -> torch.Tensor:
    out = torch.clamp((w / torch.abs(s) + 1) * 0.5, 0, 1)
    return (2 * _RoundSTE.apply(out, (2 ** bits) - 2) - 1) * s


def _authors_a(x: torch.Tensor, u: torch.Tensor, bits: int) -> torch.Tensor:
    out = torch.clamp(x / u, 0, 1)
    return _RoundSTE.apply(out, (2 ** bits) - 1) * u


def test_learned_clip_gradients_equal_the_authors_quantizers() -> None:
    """With float gradients (so dL/dQ is plain fp32), the clip gradients and the masked dX,
    dW of our STE equal torch autograd through the authors' ``w_quan``/``a_quan``."""
    gen = torch.Generator().manual_seed(4)
    bits = 4
    x = (torch.relu(torch.randn(6, 8, generator=gen)) * 2).requires_grad_()
    w = torch.randn(3, 8, generator=gen).requires_grad_()
    gy = torch.randn(6, 3, generator=gen)
    s_w, u_a = 7 * 2.0 ** -3, 15 * 2.0 ** -3  # Δ exact in fp32: both grids agree
    nc = NumericsConfig(weights=TensorNumerics(bits, "half_even"),
                        activations=TensorNumerics(bits, "half_even", signed=False),
                        gradients=TensorNumerics(None), learned_scales=True)
    clips = torch.tensor([s_w, u_a], requires_grad=True)
    rt = _runtime(nc, op="linear")
    QLinearFn.apply(x, w, rt, clips).backward(gy)

    xr = x.detach().clone().requires_grad_()
    wr = w.detach().clone().requires_grad_()
    s = torch.tensor(s_w, requires_grad=True)
    u = torch.tensor(u_a, requires_grad=True)
    qx, qw = _authors_a(xr, u, bits), _authors_w(wr, s, bits)
    (qx @ qw.t()).backward(gy)
    assert torch.equal(qx.detach(), quantize_symmetric(
        x, nc.activations, clip=u_a).dequantize())  # same codes
    assert (wr.abs() > s_w).any() and (xr > u_a).any()  # clipping happens on both
    assert torch.allclose(clips.grad, torch.stack([s.grad, u.grad]), rtol=1e-5, atol=1e-6)
    assert torch.allclose(w.grad, wr.grad, rtol=1e-6, atol=1e-7)
    assert torch.allclose(x.grad, xr.grad, rtol=1e-6, atol=1e-7)
    kinds = Counter((v.pass_name, v.kind) for v in rt.counters.vector_ops)
    assert kinds[("backward_weight", "scale_grad")] == kinds[("backward_data", "scale_grad")] \
        == 1
    assert kinds[("forward", "quantize_weight_clip")] == 1
    assert kinds[("forward", "quantize_weight")] == 0


def test_initial_clips_are_the_authors() -> None:
    gen = torch.Generator().manual_seed(0)
    w, x = torch.randn(8, 4, generator=gen), torch.relu(torch.randn(5, 4, generator=gen))
    sw, sx = initial_clips(w, x, signed_x=False)
    assert sw == pytest.approx(3 * float(w.double().std()))
    assert sx == pytest.approx(3 * float(x.double().std()) / math.sqrt(1 - 2 / math.pi))
    assert initial_clips(w, x, signed_x=True)[1] == pytest.approx(3 * float(x.double().std()))


def _hw():
    from fxpsim.config.load import load_hwconfig

    return load_hwconfig("edge_npu", {}).config


def test_learned_clips_train_and_are_logged() -> None:
    """A few LBT steps: clips start at 3·std, move by Adam (lr 1e-5 steps), are logged."""
    from fxpsim.training.algorithms import AlgoOptions, Batch, make_algorithm
    from fxpsim.training.data import adapt, load_dataset

    graph = load_model("lenet5")
    nc = replace(NumericsConfig.from_hw(_hw(), w_bits=4, a_bits=4, g_bits=4,
                                        grad_interval="lbt"),
                 learned_scales=True, a_codes="unsigned")
    net = build_qnet(graph, nc, seed=1)
    alg = make_algorithm("lbt", net, graph, AlgoOptions(fwd_scale_lr=1e-3), seed=1)
    ds = adapt(load_dataset(limit_train=16, limit_test=4), tuple(graph.input_shape))
    b = Batch(torch.from_numpy(ds.train_x[:8]), torch.from_numpy(ds.train_y[:8]))
    alg.prepare(b)
    layer = graph.gemm_nodes[1].name
    mod = net.layers[layer.replace(".", "_")]
    start = mod.clips.detach().clone()
    assert float(start[0]) == pytest.approx(3 * float(mod.weight.detach().double().std()),
                                            rel=1e-6)
    for _ in range(3):
        alg.step(b)
    moved = mod.clips.detach()
    assert not torch.equal(moved, start)
    assert float((moved - start).abs().max()) <= 3 * 1e-3 * 1.01  # Adam: ≤ lr per step
    assert len(alg.method_log[f"fwd_scale_w.{layer}"]) == 3


# ---- both planes ------------------------------------------------------------------------------

def _recipe_run(algo: str, model: str, batch: int, bits, *, learned: bool, unsigned: bool,
                gran: str):
    from fxpsim.timing.lowering import lower, op_signature
    from fxpsim.timing.ops import GemmOp, TimingRequest, VectorOp
    from fxpsim.training.algorithms import GRAD_INTERVAL, AlgoOptions, Batch, make_algorithm
    from fxpsim.training.data import adapt, load_dataset

    graph = load_model(model)
    w, a, g = bits
    nc = NumericsConfig.from_hw(_hw(), w_bits=w, a_bits=a, g_bits=g,
                                grad_interval=GRAD_INTERVAL[algo])  # type: ignore[arg-type]
    nc = replace(nc, learned_scales=learned, a_codes="unsigned" if unsigned else "signed",
                 gradients=replace(nc.gradients, granularity=f"per_{gran}"))
    net = build_qnet(graph, nc, seed=3)
    alg = make_algorithm(algo, net, graph, AlgoOptions(), seed=3)
    ds = adapt(load_dataset(limit_train=2 * batch, limit_test=2), tuple(graph.input_shape))
    x, y = torch.from_numpy(ds.train_x), torch.from_numpy(ds.train_y)
    b = Batch(x[:batch], y[:batch], x[batch:2 * batch], y[batch:2 * batch])
    alg.prepare(b)
    for _ in range(2 if algo == "metagrad" else 1):  # its 1st step has no hypernet_bwd
        alg.step(b)
    req = TimingRequest(phase="train", algo=algo, batch=batch, w_bits=w, a_bits=a, g_bits=g,
                        forward_scales="learned" if learned else "minmax",
                        g_granularity=gran)  # type: ignore[arg-type]
    ops = lower(graph, req, alg.recipe)
    want_g = Counter((*op_signature(o), None if o.float_operands else o.a_bits,
                      None if o.float_operands else o.b_bits)
                     for o in ops if isinstance(o, GemmOp))
    got_g = Counter((*r.signature, r.a_bits, r.b_bits) for r in alg.log.gemms)
    assert got_g == want_g
    want_v = Counter(op_signature(o) for o in ops if isinstance(o, VectorOp))
    got_v = Counter(v.signature for v in alg.log.vectors)
    assert got_v == want_v, (sorted(map(str, (got_v - want_v).elements()))[:6],
                             sorted(map(str, (want_v - got_v).elements()))[:6])
    return alg, ops


@pytest.mark.parametrize("algo,model,learned,unsigned,gran", [
    ("lbt", "lenet5", True, True, "tensor"),
    ("sgd", "lenet5", False, False, "channel"),
    ("sgd", "lenet5", False, True, "sample"),
    ("lbt", "lenet5", True, True, "channel"),
    ("metagrad", "lenet5", True, False, "sample"),
    ("sgd", "resnet20", True, True, "sample"),
    ("laq", "lenet5", False, True, "channel"),
])
def test_value_plane_executes_what_the_time_plane_charges(algo, model, learned, unsigned,
                                                          gran) -> None:
    alg, ops = _recipe_run(algo, model, 2, (4, 4, 4), learned=learned, unsigned=unsigned,
                           gran=gran)
    kinds = Counter(v.kind for v in alg.log.vectors)
    assert (kinds["scale_grad"] > 0) == learned and (kinds["scale_update"] > 0) == learned
    n_gemm = len(load_model(model).gemm_nodes)
    extra = 0 if gran == "tensor" else n_gemm - 1  # the copy, where backward-data runs
    assert Counter((v.pass_name, v.kind) for v in alg.log.vectors)[
        ("grad_quant", "reduce_max")] == n_gemm + extra


@pytest.mark.parametrize("algo", ["laq", "fb"])
def test_learned_scales_are_refused_for_projection_algorithms(algo: str) -> None:
    """LAQ/FB's weight codes come from their projection: a learned s_W cannot apply."""
    with pytest.raises(ConfigError, match="forward_scales"):
        parse_run_options({"algo": algo, "forward_scales": "learned"})


# ---- run options ------------------------------------------------------------------------------

def test_lbt_protocol_defaults_and_overrides() -> None:
    run, _ = parse_run_options({"algo": "lbt"})
    assert (run.forward_scales, run.a_codes, run.float_ends) == ("learned", "unsigned", True)
    run, _ = parse_run_options({"algo": "lbt", "float_ends": "false", "a_codes": "signed",
                                "forward_scales": "minmax"})
    assert (run.forward_scales, run.a_codes, run.float_ends) == ("minmax", "signed", False)
    run, _ = parse_run_options({})
    assert (run.forward_scales, run.a_codes, run.float_ends, run.g_granularity) == (
        "minmax", "signed", False, "tensor")
    run, _ = parse_run_options({"granularity.g": "sample", "forward_scales.lr": "1e-4"})
    assert run.g_granularity == "sample" and run.forward_scales_lr == 1e-4


@pytest.mark.parametrize("key,value", [("a_codes", "unsinged"), ("granularity.g", "row"),
                                       ("forward_scales", "lsq"), ("float_ends", "maybe"),
                                       ("forward_scales.lr", "-1")])
def test_bad_protocol_values_exit_2_with_one_line(key, value, capsys, tmp_path) -> None:
    out = tmp_path / "r"
    rc = main(["run", "model=lenet5", "steps=0", f"out={out}", f"{key}={value}"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and key in err
    assert not out.exists()


def test_float_ends_keep_first_and_last_layer_float() -> None:
    graph = load_model("lenet5")
    g = with_layer_formats(graph, float_ends(graph))
    gemms = g.gemm_nodes
    for node in (gemms[0], gemms[-1]):
        assert (node.formats.w_bits, node.formats.a_bits, node.formats.g_bits) == (
            "float",) * 3
    assert all(n.formats.w_bits is None for n in gemms[1:-1])
    # an explicit per-layer format for an end layer wins
    g = with_layer_formats(graph, [*float_ends(graph), (gemms[0].name, "w", 8)])
    assert g.gemm_nodes[0].formats.w_bits == 8


def test_lbt_run_from_the_cli(tmp_path) -> None:
    """algo=lbt: learned clips and γ logged; the checkpoint carries the learned clips, so
    phase=infer reproduces the run's test accuracy bit-exactly."""
    import json

    out, ck = tmp_path / "r", tmp_path / "lbt.ckpt"
    common = ["model=lenet5", "algo=lbt", "batch=8", "eval_samples=32", "w_bits=4",
              "a_bits=4", f"checkpoint={ck}", "format=json"]
    assert main(["run", *common, "steps=3", "g_bits=4", f"out={out}"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    text = json.dumps(summary["training"]["method_logs"])
    assert "fwd_scale_w" in text and "fwd_scale_a" in text and "lbt_gamma" in text
    assert main(["run", *common, "phase=infer", f"out={tmp_path / 'i'}"]) == 0
    infer = json.loads((tmp_path / "i" / "summary.json").read_text())
    assert infer["inference"]["test_accuracy"] == summary["accuracy"]["test"]
    assert infer["inference"]["test_loss"] == summary["training"]["history"][-1]["test_loss"]


def test_lbt_counts_clipping_against_each_channels_max() -> None:
    """Per-channel dY scales: LBT's clipped fraction uses γ·(that channel's max), the same
    clip the quantizer applies; per tensor it is unchanged (γ·global max)."""
    from fxpsim.training.algorithms.lbt import _group_max, _group_normalized

    g = torch.tensor([[[[1.0]], [[10.0]]], [[[0.5]], [[4.0]]]]).abs()  # (B=2, C=2, 1, 1)
    m = _group_max(g, "per_channel")
    assert m.reshape(-1).tolist() == [1.0, 10.0]
    assert float((g > 0.6 * m).double().mean()) == 0.5  # 1 > .6 and 10 > 6; .5, 4 are not
    assert _group_max(g, "per_sample").reshape(-1).tolist() == [10.0, 4.0]
    assert _group_normalized(g, "per_channel").reshape(-1).tolist() == pytest.approx(
        [1.0, 1.0, 0.5, 0.4])
    assert torch.equal(_group_normalized(g, "per_tensor"), g)
