"""LAQ: loss-aware weight quantization (Hou & Kwok, ICLR 2018; docs/algorithms.md §1).

State per quantized GEMM layer: fp32 master weights ``w``, codes ``q`` (integers in
``[-k, k]``, level values ``q/k``, ``k = 2^(b-1) - 1`` for ``b = w_bits``: LAQ's m-bit
linear grid, which is exactly the QNet's symmetric code set) and scale ``α``. The QNet's
weight parameter holds ``ŵ = α·q/k`` (the forward runs on it; its ``.grad`` is ∂ℓ/∂ŵ).

Update (§1.2 steps 2-5): Adam on ``w`` with g = ∂ℓ/∂ŵ, clip ``w`` to ±``laq_clip``,
curvature ``d = √v + 1e-8`` (raw second moment), then the alternating projection warm-started
from the previous codes, exactly ``m = laq_rounds`` rounds::

    α ← Σ d·(q/k)·w / Σ d·(q/k)²        (float64 sums)
    q ← round_half_even(k · clip(w/α, −1, 1))

With ``w_bits = 1`` the projection is LAB's closed form (binary, §1.2 step 4): ``q = sign(w)``
(+1 at 0), ``α = Σ d·|w| / Σ d``; codes ±1, ``ŵ = α·q``; the QNet's 1-bit quantizer
(sign, Δ = mean|ŵ| = α) reproduces ``q`` exactly.

Other parameters (biases, BN) take a plain Adam step. When ``w_bits`` is float, ``ŵ = w``.
The QNet re-quantizes ``ŵ`` at each forward with its max-scaled quantizer: that reproduces
``q`` exactly whenever some ``|q| = k`` (Δ = α up to the fp32 rounding of the scale); when no
code reaches ``k`` the QNet's grid is finer than LAQ's and ``ŵ`` passes through with at most
half a step of its own rounding — documented, not counted.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import numpy as np
import torch

from fxpsim.training import vector_unit as vu
from fxpsim.training.algorithms.base import AlgorithmBase, Batch, _grad
from fxpsim.training.algorithms.optim import Adam, AdamMoments, ParamGroup

_CURV_EPS = 1e-8


def laq_project(w: torch.Tensor, d: torch.Tensor, k: int, rounds: int,
                q_init: torch.Tensor | None = None) -> tuple[float, torch.Tensor]:
    """Weighted projection of ``w`` onto ``α·{-k..k}/k`` minimizing Σ d (w − α q/k)².

    Returns ``(α, q)`` with ``q`` float32 integers in ``[-k, k]``. ``q_init`` warm-starts the
    codes (default: from ``α₀ = max|w|``). Exactly ``rounds`` alternating rounds, in float64:
    ``α = k·(q·(d⊙w))/((q⊙q)·d)``, then ``q = round_half_even(clamp(w·(k/α), −k, k))``.
    If the codes are all 0 (or the fit is not positive) the previous α is kept.
    """
    w64 = w.detach().double().reshape(-1)
    amax = float(w64.abs().max()) if w64.numel() else 0.0
    if amax == 0.0:
        return 1.0, torch.zeros_like(w)
    d64 = d.detach().double().reshape(-1)
    dw = d64 * w64
    alpha = amax
    buf = torch.empty_like(w64)
    if q_init is None:
        q = torch.mul(w64, k / alpha, out=torch.empty_like(w64)).clamp_(-k, k).round_()
    else:
        q = q_init.detach().double().reshape(-1)
    for _ in range(rounds):
        num = float(torch.dot(q, dw))
        den = float(torch.dot(torch.mul(q, q, out=buf), d64))
        if den > 0.0 and num > 0.0:
            alpha = k * num / den
        q = torch.mul(w64, k / alpha, out=q).clamp_(-k, k).round_()
    return alpha, q.to(w.dtype).view_as(w)


def lab_project(w: torch.Tensor, d: torch.Tensor) -> tuple[float, torch.Tensor]:
    """LAB's binary projection: ``q = sign(w)`` (+1 at 0), ``α = Σ d|w| / Σ d`` (float64)."""
    w64 = w.detach().double().reshape(-1)
    d64 = d.detach().double().reshape(-1)
    den = float(d64.sum())
    alpha = float(torch.dot(d64, w64.abs())) / den if den > 0 else 0.0
    if not alpha > 0.0:
        alpha = 1.0
    q = torch.where(w64 >= 0, 1.0, -1.0)
    return alpha, q.to(w.dtype).view_as(w)


def weight_values(alpha: float, q: torch.Tensor, k: int) -> torch.Tensor:
    """``ŵ = α·q/k`` (``α·q`` for binary), float64."""
    return alpha * (q.double() / max(k, 1))


def project(w: torch.Tensor, d: torch.Tensor, k: int, rounds: int,
            q_init: torch.Tensor | None = None) -> tuple[float, torch.Tensor]:
    """LAB (``k = 0``: 1-bit weights) or the alternating LAQ projection."""
    if k == 0:
        return lab_project(w, d)
    return laq_project(w, d, k, rounds, q_init)


def level_count(bits: int) -> int:
    """``k`` of the m-bit linear grid ``{-k..k}/k``; 0 marks binary (LAB)."""
    return 0 if bits == 1 else (1 << (bits - 1)) - 1


class LaqAlgorithm(AlgorithmBase):
    """Recipe ``laq``: forward/backward at ŵ, Adam + clip + projection (``update``)."""

    name = "laq"
    weights_from_projection = True

    def init_optimizer(self) -> None:
        o = self.options
        self.adam = Adam(self.lr, o.adam_beta1, o.adam_beta2, o.adam_eps)
        self.levels: dict[str, int] = {}
        self.master: dict[str, torch.Tensor] = {}
        self.codes: dict[str, torch.Tensor] = {}
        self.alpha: dict[str, float] = {}
        for grp in self.groups:
            if not grp.is_gemm:
                continue
            w = grp.weight.detach()
            bits = self.net.runtimes[grp.node].numerics.weights.bits  # type: ignore[attr-defined]
            self.master[grp.node] = torch.clamp(w, -o.laq_clip, o.laq_clip).clone()
            if bits is None:
                continue
            self.levels[grp.node] = level_count(bits)
            # setup projection with uniform curvature (no second moment yet): not a step
            self._project(vu.NULL_SINK, "update", grp.node, torch.ones_like(w), grp.weight,
                          q_init=None)

    def _projection(self, sink: vu.VectorSink, pass_name: str, node: str, w: torch.Tensor,
                    d: torch.Tensor, q_init: torch.Tensor | None) -> tuple[float, torch.Tensor]:
        """``project(w, d, ...)`` on the vector unit (``laq_projection`` over ``w``)."""
        k = self.levels[node]
        fn = partial(project, d=d, k=k, rounds=self.options.laq_rounds, q_init=q_init)
        return vu.run(sink, node, pass_name, "laq_projection", fn, w)

    def _project(self, sink: vu.VectorSink, pass_name: str, node: str, d: torch.Tensor,
                 param: torch.nn.Parameter, q_init: torch.Tensor | None) -> None:
        alpha, q = self._projection(sink, pass_name, node, self.master[node], d, q_init)
        self.alpha[node], self.codes[node] = alpha, q
        with torch.no_grad():
            param.copy_(weight_values(alpha, q, self.levels[node]).to(param.dtype))

    def _weight_step(self, node: str, mo: AdamMoments) -> torch.Tensor:
        """Master weights after an Adam step with moments ``mo`` (new tensor), clipped."""
        c = self.options.laq_clip
        return torch.clamp(self.master[node] - self.adam.delta(mo), -c, c)

    def _adam_step(self, grp: ParamGroup) -> Callable[[torch.Tensor, torch.Tensor], None]:
        """Adam step of one parameter of ``grp``: the GEMM weight's moves the clipped master
        copy (and ``ŵ`` itself when the weights are float), the rest step in place."""
        def step(p: torch.Tensor, g: torch.Tensor) -> None:
            if grp.is_gemm and p is grp.weight:
                mo = self.adam.moments(p).advanced(g, self.adam.beta1, self.adam.beta2)
                self.adam.state[id(p)] = mo
                self.master[grp.node] = self._weight_step(grp.node, mo)
                if grp.node not in self.levels:
                    p.copy_(self.master[grp.node])
            else:
                self.adam.step(p, g)
        return step

    @torch.no_grad()
    def commit(self, grads: dict[int, torch.Tensor], pass_name: str = "update") -> None:
        """Adam step of every parameter with ``grads`` (keyed by ``id(param)``) and the
        projection of quantized weights (vector unit: ``adam_update`` / ``laq_projection``)."""
        for grp in self.groups:
            vu.update(self.log, grp.node, pass_name, "adam_update", self._adam_step(grp),
                      grp.params, [grads[id(p)] for p in grp.params])
            if grp.node in self.levels:
                mo = self.adam.state[id(grp.weight)]
                self._project(self.log, pass_name, grp.node, mo.v.sqrt() + _CURV_EPS,
                              grp.weight, self.codes[grp.node])

    def update(self) -> None:
        self.commit({id(p): _grad(p) for grp in self.groups for p in grp.params})

    def weight_views(self) -> dict[str, tuple[torch.Tensor, torch.Tensor | None]]:
        return {g.node: (self.master[g.node].reshape(-1), g.weight.detach().reshape(-1))
                for g in self.groups if g.is_gemm}

    def prepare(self, batch: Batch) -> None:
        """Nothing: the setup projection ran at construction."""

    def weight_codes(self) -> dict[str, np.ndarray]:
        """The projection's codes q (what the hardware stores), per quantized layer."""
        return {n: q.numpy().reshape(-1).astype(np.int16) for n, q in self.codes.items()}
