"""Training algorithms: update rules against independent references, determinism, and the
relations between algorithms that must hold exactly (fb with a=0 == laq, ...)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch

from fxpsim.config.load import load_hwconfig
from fxpsim.graph.resolve import load_model
from fxpsim.training.algorithms import GRAD_INTERVAL, AlgoOptions, Batch, make_algorithm
from fxpsim.training.algorithms.execlog import ExecLog, ExecVector, PassNames
from fxpsim.training.algorithms.laq import laq_project
from fxpsim.training.algorithms.lbt import calibrate_gamma, gamma_update
from fxpsim.training.algorithms.metagrad import CoordinateMLP, mlp_eval, mlp_grad
from fxpsim.training.algorithms.optim import Adam, SgdMomentum
from fxpsim.training.data import adapt, load_dataset
from fxpsim.training.formats import NumericsConfig
from fxpsim.training.qnet import build_qnet
from fxpsim.training.stats import Counters, GemmRecord

ALGOS = ("sgd", "laq", "fb", "lbt", "bnrect", "metagrad", "octo")
_CACHE: dict[str, object] = {}


def _setup(algo: str, *, model: str = "lenet5", bits=(4, 8, 8), seed: int = 5, **opts):
    if "hw" not in _CACHE:
        _CACHE["hw"] = load_hwconfig("edge_npu", {}).config
    graph = load_model(model)
    key = f"data{graph.input_shape}"
    if key not in _CACHE:
        ds = adapt(load_dataset(limit_train=48, limit_test=10), tuple(graph.input_shape))
        _CACHE[key] = (torch.from_numpy(ds.train_x), torch.from_numpy(ds.train_y))
    x, y = _CACHE[key]  # type: ignore[misc]
    w, a, g = bits
    nc = NumericsConfig.from_hw(_CACHE["hw"], w_bits=w, a_bits=a, g_bits=g,  # type: ignore
                                grad_interval=GRAD_INTERVAL[algo])  # type: ignore[arg-type]
    net = build_qnet(graph, nc, seed=seed)
    alg = make_algorithm(algo, net, graph, AlgoOptions(**opts), seed=seed)
    batches = [Batch(x[i:i + 8], y[i:i + 8], x[i + 8:i + 16], y[i + 8:i + 16])
               for i in range(0, 32, 8)]
    return alg, batches


def _train(alg, batches, steps: int) -> list[float]:
    alg.prepare(batches[0])
    return [alg.step(batches[i % len(batches)]).loss for i in range(steps)]


# ---- determinism ---------------------------------------------------------------------------

@pytest.mark.parametrize("algo", ALGOS)
def test_same_seed_same_losses_bit_for_bit(algo: str) -> None:
    runs = []
    for _ in range(2):
        # bnrect needs BatchNorm layers (on a model without, it is an error)
        alg, bs = _setup(algo, model="resnet20" if algo == "bnrect" else "lenet5")
        losses = _train(alg, bs, 3)
        w = torch.cat([p.detach().reshape(-1) for p in alg.net.parameters()])
        runs.append((losses, w))
    assert runs[0][0] == runs[1][0]
    assert torch.equal(runs[0][1], runs[1][1])
    assert all(np.isfinite(runs[0][0]))


def test_different_seed_differs() -> None:
    a, bs = _setup("sgd", seed=1)
    b, _ = _setup("sgd", seed=2)
    assert _train(a, bs, 2) != _train(b, bs, 2)


# ---- LAQ projection vs an exact Fraction oracle --------------------------------------------

def _project_oracle(w, d, k, rounds, q0):
    """Alternating solver in exact rationals (α, q as Fractions / ints)."""
    wf = [Fraction(float(v)) for v in w]
    df = [Fraction(float(v)) for v in d]
    q = list(q0)
    alpha = max(abs(v) for v in wf)
    for _ in range(rounds):
        num = sum(di * qi * wi for di, qi, wi in zip(df, q, wf, strict=True))
        den = sum(di * qi * qi for di, qi in zip(df, q, strict=True))
        if den > 0 and num > 0:
            alpha = k * num / den
        q = []
        for wi in wf:
            t = max(min(wi * k / alpha, k), -k)
            fl = t.numerator // t.denominator
            rem = t - fl
            r = fl + (1 if rem > Fraction(1, 2) or (rem == Fraction(1, 2) and fl % 2) else 0)
            q.append(r)
    return alpha, q


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("k", [1, 7])
def test_laq_projection_matches_rational_oracle(seed: int, k: int) -> None:
    rng = np.random.default_rng(seed)
    w = torch.from_numpy(rng.normal(0, 0.3, 40).astype(np.float32))
    d = torch.from_numpy(rng.uniform(0.1, 2.0, 40).astype(np.float32))
    q0 = torch.round(torch.clamp(w / w.abs().max() * k, -k, k))
    alpha, q = laq_project(w, d, k, 5, q0)
    a_ref, q_ref = _project_oracle(w.tolist(), d.tolist(), k, 5, [int(v) for v in q0])
    assert [int(v) for v in q] == q_ref
    assert alpha == pytest.approx(float(a_ref), rel=1e-12)


def test_laq_projection_hand_example() -> None:
    """Ternary, uniform d: α₀ = max|w| = 1 gives q = [1, 0, 0, -1]; then α = mean |w| over
    the nonzero codes = 0.95, and q = round(w/0.95) is a fixed point."""
    w = torch.tensor([0.9, -0.3, 0.05, -1.0])
    alpha, q = laq_project(w, torch.ones(4), 1, 3)
    assert q.tolist() == [1.0, 0.0, 0.0, -1.0]
    assert alpha == pytest.approx(0.95, rel=1e-7)


def test_laq_weights_are_on_the_grid() -> None:
    alg, bs = _setup("laq")
    _train(alg, bs, 2)
    for node, k in alg.levels.items():
        w = alg.net.layers[node].weight.detach().double()
        codes = w / alg.alpha[node] * k  # ŵ = fp32(α·q/k): codes are q up to fp32 rounding
        assert torch.allclose(codes, torch.round(codes), rtol=0, atol=1e-5)
        assert float(codes.abs().max()) <= k + 1e-5
        assert alg.master[node].abs().max() <= 1.0


# ---- forward and backtrack -----------------------------------------------------------------

def test_fb_with_a0_commits_exactly_the_laq_update() -> None:
    """a = 0 on the trial gradient: ḡ = g_t, and the trial is fully backtracked."""
    laq, bs = _setup("laq")
    fb, _ = _setup("fb", fb_a=0.0)
    laq.step(bs[0])
    fb.step(bs[0])
    for node in laq.master:
        assert torch.equal(laq.master[node], fb.master[node])
    for p, q in zip(laq.net.parameters(), fb.net.parameters(), strict=True):
        assert torch.equal(p, q)
    for p, q in zip(laq.net.buffers(), fb.net.buffers(), strict=True):
        assert torch.equal(p, q)


def test_fb_coefficient_side() -> None:
    a, bs = _setup("fb", fb_a=0.25, fb_coef_on="trial")
    b, _ = _setup("fb", fb_a=0.75, fb_coef_on="current")
    a.step(bs[0])
    b.step(bs[0])
    for p, q in zip(a.net.parameters(), b.net.parameters(), strict=True):
        assert torch.equal(p, q)


def test_fb_options_change_the_step() -> None:
    base, bs = _setup("fb")
    nxt, _ = _setup("fb", fb_trial_batch="next")
    mom, _ = _setup("fb", fb_trial_updates_moments=True)
    for alg in (base, nxt, mom):
        alg.step(bs[0])
    w = [torch.cat([p.reshape(-1) for p in a.net.parameters()]) for a in (base, nxt, mom)]
    assert not torch.equal(w[0], w[1]) and not torch.equal(w[0], w[2])
    assert all(st.t == 2 for st in mom.adam.state.values())
    assert all(st.t == 1 for st in base.adam.state.values())


# ---- optimizers vs torch.optim -------------------------------------------------------------

def test_sgd_momentum_matches_torch() -> None:
    gen = torch.Generator().manual_seed(0)
    p0 = torch.randn(50, generator=gen)
    grads = [torch.randn(50, generator=gen) for _ in range(4)]
    mine, ref = p0.clone(), torch.nn.Parameter(p0.clone())
    opt = SgdMomentum(0.1, 0.9, 1e-2)
    topt = torch.optim.SGD([ref], lr=0.1, momentum=0.9, weight_decay=1e-2)
    for g in grads:
        opt.step(mine, g)
        ref.grad = g.clone()
        topt.step()
    assert torch.allclose(mine, ref.detach(), rtol=1e-6, atol=1e-7)


def test_adam_matches_torch() -> None:
    gen = torch.Generator().manual_seed(1)
    p0 = torch.randn(50, generator=gen)
    grads = [torch.randn(50, generator=gen) for _ in range(5)]
    mine, ref = p0.clone(), torch.nn.Parameter(p0.clone())
    opt = Adam(1e-2)
    topt = torch.optim.Adam([ref], lr=1e-2, eps=1e-8)
    for g in grads:
        opt.step(mine, g)
        ref.grad = g.clone()
        topt.step()
    assert torch.allclose(mine, ref.detach(), rtol=1e-5, atol=1e-7)


# ---- LBT -----------------------------------------------------------------------------------

def test_gamma_update_rule() -> None:
    assert gamma_update(0.5, 0.2, 0.1, 1e-3, 1e-3) == pytest.approx(0.501)
    assert gamma_update(0.5, 0.05, 0.1, 1e-3, 1e-3) == pytest.approx(0.499)
    assert gamma_update(0.5, 0.1, 0.1, 1e-3, 1e-3) == 0.5
    assert gamma_update(1.0, 0.9, 0.1, 1e-3, 1e-3) == 1.0
    assert gamma_update(0.0015, 0.0, 0.1, 1e-3, 1e-3) == 1e-3


def _calib_oracle(g: np.ndarray, target: float, eta: float, gmin: float) -> float:
    a = np.abs(g).ravel()
    m = a.max()
    ema, i = 0.0, 0
    while True:
        gm = 1.0 - eta * i
        if gm < gmin - 1e-12:
            return gmin
        r = sum(1 for v in a if v / m > gm) / a.size
        ema = 0.999 * ema + 0.001 * r
        if ema > target:
            return max(gm, gmin)
        i += 1


@pytest.mark.parametrize("seed", range(4))
def test_calibrate_gamma_matches_loop(seed: int) -> None:
    g = np.random.default_rng(seed).standard_t(3, 300)
    target = 1e-3 / 15
    assert calibrate_gamma(g, target, 1e-3, 1e-3) == pytest.approx(
        _calib_oracle(g, target, 1e-3, 1e-3), abs=1e-12)


def test_lbt_gamma_moves_by_eta_per_step() -> None:
    alg, bs = _setup("lbt")
    alg.prepare(bs[0])
    before = dict(alg.gammas)
    assert all(g < 1.0 for g in before.values())  # calibration lowered every γ
    alg.step(bs[1])
    for name, g in alg.gammas.items():
        assert alg.net.gamma(name) == g
        assert round(abs(g - before[name]) / 1e-3, 9) in (0.0, 1.0)


# ---- BN rectification, MetaGrad, Octo ------------------------------------------------------

def test_bnrect_gradient_matches_autograd() -> None:
    alg, bs = _setup("bnrect", model="resnet20", bnrect_lambda=0.5)
    alg.net.train()
    alg.forward_backward(bs[0].x[:2], bs[0].y[:2])
    name, bn = next(iter(alg._bns.items()))
    with torch.no_grad():
        bn.weight.mul_(3.0)  # push some |γ|/σ above 1
    before = bn.weight.grad.clone()
    sigma = alg._sigma[name]
    pen = alg.after_backward(bs[0])
    gam = bn.weight.detach().clone().requires_grad_(True)
    ref = 0.0
    for n2, b2 in alg._bns.items():
        gg = gam if n2 == name else b2.weight.detach()
        s = sigma if n2 == name else alg._sigma[n2]
        ref = ref + 0.5 * (torch.clamp(gg.abs() / s - 1, min=0) ** 2).sum() / gg.numel()
    ref.backward()
    assert pen == pytest.approx(float(ref.detach()), rel=1e-5)
    assert torch.allclose(bn.weight.grad - before, gam.grad, rtol=1e-5, atol=1e-9)
    assert float(gam.grad.abs().sum()) > 0


def test_metagrad_plain_equals_sgd_and_hyper_differs() -> None:
    sgd, bs = _setup("sgd")
    plain, _ = _setup("metagrad", metagrad_update="plain")
    hyper, _ = _setup("metagrad")
    l_sgd, l_plain, l_hyper = (_train(a, bs, 4) for a in (sgd, plain, hyper))
    assert l_plain == l_sgd
    assert l_hyper[:2] == l_sgd[:2]  # identity init; φ first moves after step 2's backward
    assert l_hyper != l_sgd
    assert any(float(p.detach().abs().sum()) > 0 for p in hyper.hyper.fc2.parameters())


@pytest.mark.parametrize("seed", range(3))
def test_hypernet_breakpoint_eval_matches_direct_mlp(seed: int) -> None:
    """Piecewise-linear evaluation == the nn MLP; its gradient == torch autograd."""
    gen = torch.Generator().manual_seed(seed)
    mlp = CoordinateMLP(100, gen)
    with torch.no_grad():  # non-trivial output layer; some zero slopes/ties
        mlp.fc2.weight.normal_(0.0, 1.0, generator=gen)
        mlp.fc2.bias.fill_(0.3)
        mlp.fc1.weight[:3] = 0.0
        mlp.fc1.bias[:2] = torch.tensor([0.5, -0.5])
    mlp.double()
    u = torch.randn(5000, generator=gen, dtype=torch.float64) * 2
    cot = torch.randn(5000, generator=gen, dtype=torch.float64)
    kinks = torch.cat([u, -mlp.fc1.bias[3:7].detach() / mlp.fc1.weight[3:7, 0].detach()])
    assert torch.allclose(mlp_eval(mlp, kinks), mlp(kinks).detach(), rtol=1e-10, atol=1e-10)
    # (the gradient at an exact kink depends on the rounding of a·u + b: random u only)
    (mlp(u) * cot).sum().backward()
    for got, p in zip(mlp_grad(mlp, u, cot), mlp.parameters(), strict=True):
        assert got.shape == p.shape
        assert torch.allclose(got, p.grad, rtol=1e-9, atol=1e-9)


def test_octo_compensation_trains_and_predict_logs_nothing() -> None:
    alg, bs = _setup("octo", bits=(8, 8, 8))
    lac = alg.lac["conv1"]
    mu0, a0 = lac.mu.detach().clone(), lac.a.detach().clone()
    st = alg.step(bs[0])
    assert st.penalty > 0
    assert not torch.equal(mu0, lac.mu) and not torch.equal(a0, lac.a)
    assert lac.mu.shape == (6, 28, 28)
    n = len(alg.log.vectors)
    alg.predict(bs[1].x)
    assert len(alg.log.vectors) == n and not alg.net.counters.vector_ops


# ---- ExecLog translation -------------------------------------------------------------------

def test_execlog_translation() -> None:
    """Vector-unit records keep their kind and count (the role becomes the segment's pass
    name); a quantizer record becomes the lowering's reduce_max + quantize."""
    graph = load_model("resnet20")
    log = ExecLog(graph)
    c = Counters()
    c.record("bn1", "forward", "batchnorm_fwd", 2 * 16 * 32 * 32)
    c.record("bn1", "forward", "batchnorm_stats", 16)
    c.record("relu1", "backward_data", "relu_bwd", 2 * 16 * 32 * 32)
    c.record("relu1", "backward_data", "grad_add", 2 * 16 * 32 * 32)
    c.vector("conv1", "conv2d", "forward", "quantize_act", 2 * 3 * 32 * 32)
    c.vector("conv1", "conv2d", "forward", "quantize_weight", 432)
    c.vector("conv1", "conv2d", "backward", "quantize_grad", 2 * 16 * 32 * 32)
    c.gemm(GemmRecord("conv1", "conv2d", "backward_weight", 27, 2 * 32 * 32, 16, 1, True))
    log.drain(c)
    assert not c.vector_ops and not c.gemms
    got = sorted((v.pass_name, v.layer, v.kind, v.elems) for v in log.vectors)
    assert got == sorted([
        ("forward", "bn1", "batchnorm_fwd", 32768), ("forward", "bn1", "batchnorm_stats", 16),
        ("backward_data", "relu1", "grad_add", 32768),
        ("backward_data", "relu1", "relu_bwd", 32768),
        ("update", "conv1", "reduce_max", 432), ("update", "conv1", "quantize", 432),
        ("grad_quant", "conv1", "reduce_max", 32768), ("grad_quant", "conv1", "quantize", 32768),
    ])
    c.record("relu1", "backward_data", "relu_bwd", 8)
    log.drain(c, PassNames.prefixed("fb_trial_"))
    assert log.vectors[-1] == ExecVector("relu1", "fb_trial_backward_data", "relu_bwd", 8)
    assert log.gemms[0].signature == ("gemm", "backward_weight", "conv1", 27, 2048, 16, 1)
