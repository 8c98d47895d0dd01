"""Learned forward scales (LBT's protocol, run option ``forward_scales=learned``) and the
per-layer choice of unsigned activation codes (``a_codes=unsigned``).

As in the LBT authors' code (``DSQConv_a``): each quantized layer owns a weight clip ``s_W``
and an activation clip ``u_A``; codes are ``clamp(round(W/Δw))`` with ``Δw = |s_W|/qmax_w`` and
``clamp(round(X/Δx))`` with ``Δx = |u_A|/qmax_x`` (``qmax_x = 2^b−1`` for unsigned post-ReLU
codes). On the first training forward ``s_W = 3·std(W)`` and ``u_A = 3·std(X)/√(1−2/π)``
(unsigned; the std of a half-normal) or ``3·std(X)`` (signed). The clips are trained by their
own Adam (the authors' ``q_optimizer``: lr 1e-5, no weight decay) with the straight-through
gradients of the authors' quantizers::

    dL/ds = Σ dL/dQ · (code/qmax − (v/s)·[v inside the clip range])
    dL/dv = dL/dQ · [v inside the clip range]       (the STE passes nothing beyond the clip)

for ``v`` = W (``dL/dQ`` = the backward-weight result) and X (``dL/dQ`` = the backward-data
result). A layer whose input gradient is not computed (the first GEMM layer) gets no ``u_A``
gradient: its ``u_A`` stays at its initial value (computing it would need the backward-data
GEMM the step skips there).
"""

from __future__ import annotations

import math

import torch

from fxpsim.graph.ir import Graph

#: ops that map non-negative inputs to non-negative outputs (a ReLU's output stays >= 0)
_KEEPS_SIGN = frozenset({"maxpool", "avgpool", "global_avgpool", "flatten", "add"})
_HALF_NORMAL = math.sqrt(1.0 - 2.0 / math.pi)


def nonnegative_nodes(graph: Graph) -> frozenset[str]:
    """Nodes whose output is >= 0 by construction: ReLU / ReLU6, and pooling, flatten and
    adds whose inputs all are."""
    out: set[str] = set()
    for n in graph.nodes:
        if n.op in ("relu", "relu6") or (
                n.op in _KEEPS_SIGN and n.inputs and all(i in out for i in n.inputs)):
            out.add(n.name)
    return frozenset(out)


@torch.no_grad()
def initial_clips(w: torch.Tensor, x: torch.Tensor, signed_x: bool) -> tuple[float, float]:
    """``(3·std(W), 3·std(X)[/√(1−2/π) if unsigned])`` (torch's unbiased std, as the
    authors' ``.std()``)."""
    sw = 3.0 * float(w.detach().double().std()) if w.numel() > 1 else 1.0
    sx = 3.0 * float(x.detach().double().std()) if x.numel() > 1 else 1.0
    if not signed_x:
        sx /= _HALF_NORMAL
    return sw, sx


def ste(grad: torch.Tensor, v: torch.Tensor, codes: torch.Tensor, qmax: int, clip: float,
        signed: bool) -> tuple[torch.Tensor, float]:
    """(masked gradient w.r.t. the float tensor ``v``, gradient w.r.t. its clip) from
    ``grad`` = dL/dQ(v) (see the module docstring); fp32 on the vector unit."""
    c = abs(clip)
    vf = v.detach()
    inside = (vf.abs() <= c) if signed else ((vf >= 0) & (vf <= c))
    g = grad.to(torch.float32)
    ratio = torch.where(inside, vf / c, torch.zeros((), dtype=vf.dtype)) if c > 0 \
        else torch.zeros_like(vf)
    dclip = float((g * (codes.to(torch.float32) / qmax - ratio)).sum())
    return g * inside, dclip
