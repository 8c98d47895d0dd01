"""MetaGrad's path through the next iteration's graph and BN rectification's logs: the
hand-derived hypernetwork gradient against torch autograd through an explicit two-iteration
graph, the norm-keeping output, and the per-step logs of both methods."""

from __future__ import annotations

import pytest
import torch
from test_train_algorithms import _setup, _train

from fxpsim.config.run import parse_run_options
from fxpsim.training.algorithms import AlgoOptions
from fxpsim.training.algorithms.metagrad import (
    CoordinateMLP,
    hyper_forward,
    hyper_grad,
)
from fxpsim.training.algorithms.options import options_from_run


def _mlp(seed: int, hidden: int = 16) -> CoordinateMLP:
    gen = torch.Generator().manual_seed(seed)
    mlp = CoordinateMLP(hidden, gen)
    with torch.no_grad():  # a hypernetwork that has moved away from the identity
        mlp.fc2.weight.normal_(0.0, 0.3, generator=gen)
        mlp.fc2.bias.fill_(0.05)
    return mlp.double()


@pytest.mark.parametrize("keep", [True, False])
@pytest.mark.parametrize("seed", range(3))
def test_hypernet_gradient_is_autograd_through_the_next_iteration(keep: bool,
                                                                  seed: int) -> None:
    """W1 = W0 − η·Ĝ(φ; G0) feeds the next forward; with ∂ℓ1/∂W1 = G1, autograd's ∂ℓ1/∂φ
    equals :func:`hyper_grad`."""
    gen = torch.Generator().manual_seed(100 + seed)
    n, lr = 777, 0.05
    g0 = torch.randn(n, generator=gen, dtype=torch.float64) * 3e-3
    g1 = torch.randn(n, generator=gen, dtype=torch.float64) * 2e-3
    w0 = torch.randn(n, generator=gen, dtype=torch.float64)
    mlp = _mlp(seed)
    out = hyper_forward(mlp, g0, keep)
    # reference: the same computation as a torch graph in φ
    ref = _mlp(seed)
    s = torch.sqrt((g0 ** 2).mean())
    u = g0 / s
    h = u + ref(u)
    g_hat = s * h / torch.sqrt((h ** 2).mean()) if keep else s * h
    assert torch.allclose(out.g_hat, g_hat.detach(), rtol=1e-10, atol=1e-15)
    w1 = w0 - lr * g_hat
    (g1 * w1).sum().backward()  # ℓ1 linear in W1 with gradient G1
    got = hyper_grad(out, g1, lr)
    for p, gp in zip(ref.parameters(), got, strict=True):
        assert gp.shape == p.shape
        assert torch.allclose(gp, p.grad, rtol=1e-8, atol=1e-14), (p.grad, gp)


def test_hypernet_gradient_uses_the_phi_that_produced_the_update() -> None:
    """Moving φ after Ĝ_t was produced does not change the φ-gradient of Ĝ_t."""
    mlp = _mlp(0)
    g0 = torch.linspace(-1.0, 1.0, 101, dtype=torch.float64)
    g1 = torch.cos(torch.arange(101, dtype=torch.float64))
    out = hyper_forward(mlp, g0, True)
    before = hyper_grad(out, g1, 0.1)
    with torch.no_grad():
        for p in mlp.parameters():
            p.add_(0.5)
    after = hyper_grad(out, g1, 0.1)
    for a, b in zip(before, after, strict=True):
        assert torch.equal(a, b)


def test_keep_gain_preserves_each_layers_gradient_norm() -> None:
    alg, bs = _setup("metagrad", metagrad_lr=0.05)
    _train(alg, bs, 6)
    logs = alg.method_log
    gains = [v for k, pts in logs.items() if k.startswith("metagrad_gain.")
             for _, v in pts]
    assert gains and all(v == pytest.approx(1.0, rel=1e-9) for v in gains)
    # the hypernetwork has moved (φ trained) and changed the direction somewhere
    assert any(float(p.detach().abs().sum()) > 0 for p in alg.hyper.fc2.parameters())
    coss = [v for k, pts in logs.items() if k.startswith("metagrad_cos.") for _, v in pts]
    assert min(coss) < 1.0 - 1e-9


def test_free_gain_lets_the_hypernetwork_scale_the_step() -> None:
    alg, bs = _setup("metagrad", metagrad_lr=0.05, metagrad_gain="free")
    _train(alg, bs, 6)
    gains = [v for k, pts in alg.method_log.items() if k.startswith("metagrad_gain.")
             for s, v in pts if s >= 2]
    assert any(abs(v - 1.0) > 1e-6 for v in gains)


def test_gain_options_differ_and_first_steps_are_sgd() -> None:
    sgd, bs = _setup("sgd")
    keep, _ = _setup("metagrad", metagrad_lr=0.05)
    free, _ = _setup("metagrad", metagrad_lr=0.05, metagrad_gain="free")
    l_sgd, l_keep, l_free = (_train(a, bs, 5) for a in (sgd, keep, free))
    assert l_keep[:2] == l_sgd[:2] == l_free[:2]  # identity at start
    assert l_keep != l_free


def test_bnrect_logs_penalty_and_max_gain_per_step() -> None:
    alg, bs = _setup("bnrect", model="resnet20", bnrect_lambda=1.0)
    _train(alg, bs, 3)
    pen = alg.method_log["bnrect_penalty"]
    mg = alg.method_log["bnrect_max_gain"]
    assert [s for s, _ in pen] == [s for s, _ in mg] == [0, 1, 2]
    assert all(v > 0 for _, v in mg)
    # hinge: the penalty is zero exactly when no channel's |γ|/σ exceeds 1
    for (_, p), (_, m) in zip(pen, mg, strict=True):
        assert (p > 0) == (m > 1.0)


def test_square_form_is_active_below_one() -> None:
    alg, bs = _setup("bnrect", model="resnet20", bnrect_lambda=1.0, bnrect_form="square")
    _train(alg, bs, 2)
    assert all(v > 0 for _, v in alg.method_log["bnrect_penalty"])


def test_cli_options_reach_the_algorithm() -> None:
    run, _ = parse_run_options({"metagrad.gain": "free", "bnrect.form": "square",
                                "bnrect.sigma": "running", "metagrad.lr": "2e-4",
                                "metagrad.hidden": "7"})
    o = options_from_run(run)
    assert isinstance(o, AlgoOptions)
    assert (o.metagrad_gain, o.bnrect_form, o.bnrect_sigma) == ("free", "square", "running")
    assert (o.metagrad_lr, o.metagrad_hidden) == (2e-4, 7)
    assert options_from_run(parse_run_options({})[0]).metagrad_gain == "keep"
