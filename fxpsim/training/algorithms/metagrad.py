"""MetaGrad: hypernetwork over quantized weight gradients (docs/algorithms.md §4) [interp].

One coordinate-wise MLP ``H_φ``: 1 → h (ReLU) → 1 (h = ``metagrad_hidden``, 3h + 1
parameters) shared by all GEMM layers, trained by its own Adam (``metagrad_lr``). Per GEMM
layer and step, with ``G`` = the weight gradient of the quantized backward (INT dY codes):

* ``s = rms(G)`` (a per-layer normalizer, no gradient), ``u = G/s``;
* ``Ĝ = G + s·H_φ(u)`` — residual form with the output layer initialised to 0, so training
  starts as plain SGD [interp: §4.2 leaves the form open; the residual keeps early steps
  sane];
* update: SGD momentum with ``Ĝ`` (``metagrad_update = hyper``) or with ``G`` (``plain``,
  §4.2's ``Ĝ + stopgrad(G − Ĝ)`` literally: φ is trained but does not move the weights).

φ's gradient at step t+1 is the path ``W_{t+1} = W_t − η·Ĝ_t``:
``∂ℓ_{t+1}/∂φ = −η · Σ_i G_{t+1,i} · ∂Ĝ_{t,i}/∂φ`` (momentum's later effect ignored),
evaluated by recomputing ``H_φ(u_t)`` from the kept ``u_t`` (no network second derivatives).
Pass ``hypernet`` (graph order): per layer ``hypernet_bwd`` (φ-gradient, when a previous
``u`` exists) then ``hypernet_fwd`` (Ĝ); then one Adam step of φ.

Evaluation: a 1→h→1 ReLU MLP of a scalar is piecewise linear with at most h breakpoints
``t_j = −b_j/a_j``, so :func:`mlp_eval` / :func:`mlp_grad` evaluate it (and its parameter
gradient) per element from prefix-sum tables over the sorted breakpoints — O(log h) per
element instead of O(h), in float64. Same function as the MLP up to float rounding
(ReLU'(0) = 0 as in torch).
"""

from __future__ import annotations

from functools import partial

import torch
from torch import nn

from fxpsim.training import vector_unit as vu
from fxpsim.training.algorithms.base import AlgorithmBase, Batch, _grad
from fxpsim.training.algorithms.optim import Adam


class CoordinateMLP(nn.Module):
    """``x (N,) -> (N,)`` through Linear(1, h), ReLU, Linear(h, 1); output layer zeroed."""

    def __init__(self, hidden: int, gen: torch.Generator) -> None:
        super().__init__()
        self.fc1 = nn.Linear(1, hidden)
        self.fc2 = nn.Linear(hidden, 1)
        with torch.no_grad():
            self.fc1.weight.normal_(0.0, 1.0, generator=gen)
            self.fc1.bias.uniform_(-1.0, 1.0, generator=gen)
            self.fc2.weight.zero_()
            self.fc2.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(x.unsqueeze(1)))).squeeze(1)


class _Tables:
    """Breakpoint tables of ``H(u) = c + Σ_j v_j·relu(a_j·u + b_j)`` (float64)."""

    def __init__(self, mlp: CoordinateMLP) -> None:
        a = mlp.fc1.weight.detach().double().reshape(-1)
        b = mlp.fc1.bias.detach().double()
        v = mlp.fc2.weight.detach().double().reshape(-1)
        self.c = float(mlp.fc2.bias.detach().double())
        self.a, self.b, self.v = a, b, v
        nz = a != 0
        self.const = (a == 0) & (b > 0)  # always active
        self.c0 = float((v * b)[self.const].sum())
        idx = torch.nonzero(nz).reshape(-1)
        t = -b[idx] / a[idx]
        order = torch.argsort(t, stable=True)
        self.idx = idx[order]  # neuron of each sorted breakpoint
        self.t = t[order].contiguous()
        a_s, b_s, v_s = a[self.idx], b[self.idx], v[self.idx]
        self.pos = a_s > 0
        z = torch.zeros(1, dtype=torch.float64)
        va_p, vb_p = (v_s * a_s) * self.pos, (v_s * b_s) * self.pos
        va_n, vb_n = (v_s * a_s) * ~self.pos, (v_s * b_s) * ~self.pos
        # element with k_L = #(t < u): positive-slope neurons at sorted positions < k_L
        self.sa_pos = torch.cat([z, torch.cumsum(va_p, 0)])
        self.sb_pos = torch.cat([z, torch.cumsum(vb_p, 0)])
        # element with k_R = #(t <= u): negative-slope neurons at sorted positions >= k_R
        self.sa_neg = torch.cat([torch.flip(torch.cumsum(torch.flip(va_n, [0]), 0), [0]), z])
        self.sb_neg = torch.cat([torch.flip(torch.cumsum(torch.flip(vb_n, [0]), 0), [0]), z])

    def buckets(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return (torch.searchsorted(self.t, u, right=False),
                torch.searchsorted(self.t, u, right=True))


def mlp_eval(mlp: CoordinateMLP, u: torch.Tensor) -> torch.Tensor:
    """``mlp(u)`` (float64) for a 1-D tensor ``u`` via the breakpoint tables."""
    tb = _Tables(mlp)
    u64 = u.double()
    kl, kr = tb.buckets(u64)
    slope = tb.sa_pos[kl] + tb.sa_neg[kr]
    return (tb.c + tb.c0) + slope * u64 + (tb.sb_pos[kl] + tb.sb_neg[kr])


def mlp_grad(mlp: CoordinateMLP, u: torch.Tensor, cot: torch.Tensor
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradient of ``Σ_i cot_i·mlp(u_i)`` w.r.t. (fc1.weight, fc1.bias, fc2.weight,
    fc2.bias), shaped like them (float64)."""
    tb = _Tables(mlp)
    u64, c64 = u.double(), cot.double()
    kl, kr = tb.buckets(u64)
    m = tb.t.numel()
    cu = c64 * u64
    s1 = torch.zeros_like(tb.a)
    s2 = torch.zeros_like(tb.a)
    total1, total2 = float(c64.sum()), float(cu.sum())
    s1[tb.const], s2[tb.const] = total1, total2
    if m:
        b1l = torch.bincount(kl, weights=c64, minlength=m + 1)
        b2l = torch.bincount(kl, weights=cu, minlength=m + 1)
        b1r = torch.bincount(kr, weights=c64, minlength=m + 1)
        b2r = torch.bincount(kr, weights=cu, minlength=m + 1)
        # positive slope at sorted position p: active iff k_L > p (suffix over k >= p+1)
        suf1 = torch.flip(torch.cumsum(torch.flip(b1l, [0]), 0), [0])[1:]
        suf2 = torch.flip(torch.cumsum(torch.flip(b2l, [0]), 0), [0])[1:]
        # negative slope at p: active iff k_R <= p (prefix over k <= p)
        pre1, pre2 = torch.cumsum(b1r, 0)[:m], torch.cumsum(b2r, 0)[:m]
        s1[tb.idx] = torch.where(tb.pos, suf1, pre1)
        s2[tb.idx] = torch.where(tb.pos, suf2, pre2)
    dv = tb.a * s2 + tb.b * s1
    da, db = tb.v * s2, tb.v * s1
    return (da.reshape(-1, 1), db, dv.reshape(1, -1),
            torch.tensor([total1], dtype=torch.float64))


class MetaGradAlgorithm(AlgorithmBase):
    name = "metagrad"

    def init_optimizer(self) -> None:
        super().init_optimizer()
        o = self.options
        gen = torch.Generator().manual_seed((self.seed * 1_000_003 + 4242) % (2**63))
        self.hyper = CoordinateMLP(o.metagrad_hidden, gen)
        self.hyper_adam = Adam(o.metagrad_lr, o.adam_beta1, o.adam_beta2, o.adam_eps)
        self._prev: dict[str, tuple[torch.Tensor, float]] = {}

    def after_backward(self, batch: Batch) -> float:
        stepped = False
        grads = [torch.zeros_like(p, dtype=torch.float64) for p in self.hyper.parameters()]
        for grp in self.groups:  # graph order
            if not grp.is_gemm:
                continue
            w = grp.weight
            g = _grad(w).detach().reshape(-1)
            prev = self._prev.get(grp.node)
            if prev is not None:  # hypernet_bwd: φ-gradient through last step's update
                u_prev, s_prev = prev
                cot = (-self.lr * s_prev) * g.double()
                parts = vu.run(self.log, grp.node, "hypernet", "hypernet_bwd",
                               partial(mlp_grad, self.hyper, cot=cot), u_prev)
                for acc, part in zip(grads, parts, strict=True):
                    acc.add_(part)
                stepped = True
            s = float(torch.sqrt((g.double() ** 2).mean()))
            s = s if s > 0.0 else 1.0
            u = g / s
            h = vu.run(self.log, grp.node, "hypernet", "hypernet_fwd",
                       partial(mlp_eval, self.hyper), u)
            g_hat = (g.double() + s * h).to(g.dtype)
            self._prev[grp.node] = (u.clone(), s)
            gn = float(g.double().norm())
            if gn > 0.0:  # how far the hypernetwork moved the update: ‖Ĝ‖/‖G‖
                self.log_value(f"metagrad_gain.{grp.node}", float(g_hat.double().norm()) / gn)
            if self.options.metagrad_update == "hyper":
                w.grad = g_hat.view_as(w)
        if stepped:
            params = list(self.hyper.parameters())
            with torch.no_grad():
                vu.update(self.log, "hypernet", "hypernet", "adam_update", self.hyper_adam.step,
                          params, [gr.to(p.dtype) for p, gr in zip(params, grads, strict=True)])
        return 0.0
