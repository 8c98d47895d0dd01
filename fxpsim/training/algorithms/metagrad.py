"""MetaGrad: hypernetwork over quantized weight gradients (docs/algorithms.md §4).

From the paper (arXiv 2303.02347, abstract and introduction): the quantized weight gradients
enter the computation graph of the *next* training iteration through a hypernetwork, so the
next iteration's loss trains the hypernetwork. How that is done below is our reading,
modelled on MetaQuant's code (the same device for weight quantization):

* **What the hypernetwork sees**: per GEMM layer and step, the weight gradient ``G`` of the
  quantized backward (INT dY codes), normalised per layer: ``u = G/s``, ``s = rms(G)``.
* **What it outputs**: ``h = u + H_φ(u)``, ``H_φ`` one coordinate-wise MLP 1 → h (ReLU) → 1
  shared by all layers (``metagrad_hidden``), its output layer zero so training starts as
  plain SGD. ``metagrad_gain = keep`` (default): ``Ĝ = s·h/rms(h)`` — the hypernetwork
  reshapes the gradient (it can damp quantization noise in small entries relative to large
  ones) but cannot change its per-layer norm; ``free``: ``Ĝ = s·h``, which also lets it
  scale the step (a learned learning-rate multiplier; a one-step meta-objective drives such
  a gain up until the loss oscillates, measured in the README).
* **How it enters the next iteration's graph**: the update ``W_{t+1} = W_t − η·Ĝ_t`` (SGD
  momentum, ``metagrad_update = hyper``; ``plain`` updates with ``G`` and only trains φ).
* **What loss trains it**: the next step's task loss through that path,
  ``∂ℓ_{t+1}/∂φ = −η · Σ_i G_{t+1,i} · ∂Ĝ_{t,i}/∂φ`` (momentum's later effect ignored),
  at the φ that produced ``Ĝ_t`` (a copy is kept), by its own Adam (``metagrad_lr``).
  ``tests`` check this against torch autograd through an explicit two-iteration graph.

Pass ``hypernet`` (graph order): per layer ``hypernet_bwd`` (φ-gradient, when a previous
``Ĝ`` exists) then ``hypernet_fwd`` (Ĝ); then one Adam step of φ.

Evaluation: a 1→h→1 ReLU MLP of a scalar is piecewise linear with at most h breakpoints
``t_j = −b_j/a_j``, so :func:`mlp_eval` / :func:`mlp_grad` evaluate it (and its parameter
gradient) per element from prefix-sum tables over the sorted breakpoints — O(log h) per
element instead of O(h), in float64. Same function as the MLP up to float rounding
(ReLU'(0) = 0 as in torch).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
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


@dataclass(frozen=True)
class HyperOut:
    """One layer's hypernetwork pass at step t, kept for the φ-gradient at step t+1:
    the input ``u`` (float64), the layer scale ``s``, the output ``h`` and its rms ``r``
    (``None`` for ``gain = free``) and the φ that produced it."""

    u: torch.Tensor
    s: float
    h: torch.Tensor
    r: float | None
    mlp: CoordinateMLP

    @property
    def g_hat(self) -> torch.Tensor:
        return self.h * (self.s / self.r if self.r is not None else self.s)


def rms(x: torch.Tensor) -> float:
    """Root mean square of ``x`` (float64); 1.0 for an all-zero tensor (nothing to scale)."""
    v = float(torch.sqrt((x.double() ** 2).mean())) if x.numel() else 0.0
    return v if v > 0.0 else 1.0


def hyper_forward(mlp: CoordinateMLP, g: torch.Tensor, keep_gain: bool) -> HyperOut:
    """Ĝ for one layer's gradient ``g`` (flattened): ``u = g/rms(g)``, ``h = u + H(u)``,
    ``Ĝ = rms(g)·h/rms(h)`` (``keep_gain``) or ``rms(g)·h``."""
    g64 = g.double()
    s = rms(g64)
    u = g64 / s
    h = u + mlp_eval(mlp, u)
    return HyperOut(u, s, h, rms(h) if keep_gain else None, copy.deepcopy(mlp))


def hyper_grad(prev: HyperOut, g_next: torch.Tensor, lr: float
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """∂ℓ_{t+1}/∂φ through ``W_{t+1} = W_t − lr·Ĝ_t`` with ``∂ℓ_{t+1}/∂W_{t+1} = g_next``,
    shaped like (fc1.weight, fc1.bias, fc2.weight, fc2.bias), float64."""
    c = -lr * g_next.double()  # cotangent of Ĝ_t
    if prev.r is None:
        cot_h = prev.s * c
    else:  # Ĝ = s·h/r, r = rms(h): d/dh_j = (s/r)(c_j − h_j·(c·h)/(n·r²))
        n = prev.h.numel()
        cot_h = (prev.s / prev.r) * (c - prev.h * (float(c @ prev.h) / (n * prev.r ** 2)))
    return mlp_grad(prev.mlp, prev.u, cot_h)  # h = u + H(u): ∂h/∂φ = ∂H/∂φ


class MetaGradAlgorithm(AlgorithmBase):
    name = "metagrad"

    def init_optimizer(self) -> None:
        super().init_optimizer()
        o = self.options
        gen = torch.Generator().manual_seed((self.seed * 1_000_003 + 4242) % (2**63))
        self.hyper = CoordinateMLP(o.metagrad_hidden, gen)
        self.hyper_adam = Adam(o.metagrad_lr, o.adam_beta1, o.adam_beta2, o.adam_eps)
        self._prev: dict[str, HyperOut] = {}
        self._prev_lr = self.lr  # the rate the previous step's update used

    def after_backward(self, batch: Batch) -> float:
        o = self.options
        keep = o.metagrad_gain == "keep"
        lr = self.sgd.lr  # the rate this step's update uses (schedules included)
        stepped = False
        grads = [torch.zeros_like(p, dtype=torch.float64) for p in self.hyper.parameters()]
        for grp in self.groups:  # graph order
            if not grp.is_gemm:
                continue
            w = grp.weight
            g = _grad(w).detach().reshape(-1)
            prev = self._prev.get(grp.node)
            if prev is not None:  # hypernet_bwd: φ-gradient through last step's update
                parts = vu.run(self.log, grp.node, "hypernet", "hypernet_bwd",
                               partial(hyper_grad, prev, lr=self._prev_lr), g)
                for acc, part in zip(grads, parts, strict=True):
                    acc.add_(part)
                stepped = True
            out = vu.run(self.log, grp.node, "hypernet", "hypernet_fwd",
                         partial(hyper_forward, self.hyper, keep_gain=keep), g)
            self._prev[grp.node] = out
            g_hat = out.g_hat
            g64 = g.double()
            gn, hn = float(g64.norm()), float(g_hat.norm())
            if gn > 0.0 and hn > 0.0:  # how the hypernetwork changed the update
                self.log_value(f"metagrad_gain.{grp.node}", hn / gn)
                self.log_value(f"metagrad_cos.{grp.node}", float(g_hat @ g64) / (hn * gn))
            if o.metagrad_update == "hyper":
                w.grad = g_hat.to(g.dtype).view_as(w)
        self._prev_lr = lr
        if stepped:
            params = list(self.hyper.parameters())
            with torch.no_grad():
                vu.update(self.log, "hypernet", "hypernet", "adam_update", self.hyper_adam.step,
                          params, [gr.to(p.dtype) for p, gr in zip(params, grads, strict=True)])
        return 0.0
