"""fp32 optimizers of the master weights, written out so every update is explicit.

SGD with momentum (torch's convention): ``g' = g + wd·w``, ``buf = μ·buf + g'``,
``w -= lr·buf`` (``buf`` starts as ``g'``). Adam: ``m = β1·m + (1−β1)·g``,
``v = β2·v + (1−β2)·g²``, ``w -= lr·m̂/(√v̂ + ε)`` with ``m̂ = m/(1−β1^t)``,
``v̂ = v/(1−β2^t)``. All in fp32 torch ops (vector unit work); deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class ParamGroup:
    """The trainable tensors of one graph node (``params`` in the lowering's order:
    weight then bias for GEMM layers, γ then β for batchnorm)."""

    node: str
    params: list[torch.nn.Parameter]
    is_gemm: bool

    @property
    def weight(self) -> torch.nn.Parameter:
        return self.params[0]

    @property
    def numel(self) -> int:
        return sum(p.numel() for p in self.params)


@dataclass
class SgdMomentum:
    lr: float
    momentum: float = 0.9
    weight_decay: float = 0.0
    bufs: dict[int, torch.Tensor] = field(default_factory=dict)

    @torch.no_grad()
    def step(self, p: torch.Tensor, g: torch.Tensor) -> None:
        """Update ``p`` in place with gradient ``g``."""
        d = torch.add(g, p, alpha=self.weight_decay) if self.weight_decay else g.clone()
        buf = self.bufs.get(id(p))
        if buf is None:
            buf = self.bufs[id(p)] = d
        else:
            buf.mul_(self.momentum).add_(d)
        p.add_(buf, alpha=-self.lr)


@dataclass
class AdamMoments:
    """First/second moments of one tensor and its step count."""

    m: torch.Tensor
    v: torch.Tensor
    t: int = 0

    def advanced(self, g: torch.Tensor, b1: float, b2: float) -> AdamMoments:
        """New moments after gradient ``g`` (self unchanged: usable as a scratch copy)."""
        return AdamMoments(b1 * self.m + (1 - b1) * g, b2 * self.v + (1 - b2) * g * g,
                           self.t + 1)


@dataclass
class Adam:
    lr: float
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    state: dict[int, AdamMoments] = field(default_factory=dict)

    def moments(self, p: torch.Tensor) -> AdamMoments:
        st = self.state.get(id(p))
        if st is None:
            st = self.state[id(p)] = AdamMoments(torch.zeros_like(p), torch.zeros_like(p))
        return st

    def delta(self, mo: AdamMoments) -> torch.Tensor:
        """``lr·m̂/(√v̂ + ε)`` for the moments ``mo``."""
        mh = mo.m / (1 - self.beta1 ** mo.t)
        vh = mo.v / (1 - self.beta2 ** mo.t)
        return self.lr * mh / (vh.sqrt() + self.eps)

    @torch.no_grad()
    def step(self, p: torch.Tensor, g: torch.Tensor) -> None:
        """Update ``p`` and the moments in place with gradient ``g`` (same formula as
        :meth:`delta`, evaluated in place: ``p -= (lr/(1−β1^t))·m / (√(v/(1−β2^t)) + ε)``)."""
        mo = self.moments(p)
        mo.t += 1
        mo.m.mul_(self.beta1).add_(g, alpha=1 - self.beta1)
        mo.v.mul_(self.beta2).addcmul_(g, g, value=1 - self.beta2)
        denom = (mo.v / (1 - self.beta2 ** mo.t)).sqrt_().add_(self.eps)
        p.addcdiv_(mo.m, denom, value=-self.lr / (1 - self.beta1 ** mo.t))
