"""Octo: loss-aware compensation + parameterized range clipping (docs/algorithms.md §6).

* LAC: after every quantized conv (after its bias), ``Y' = Y + a ⊙ μ + o`` with learnable
  ``a`` (init 1), ``μ``, ``o`` (init 1e-3·N(0, 1)) of the output feature-map shape C×H×W,
  broadcast over the batch [interp §10.12]; L2 penalty ``(λ/2)(‖μ‖² + ‖o‖²)``, λ =
  ``octo_lambda``, added to their gradients in the update. Run by the vector unit
  (:func:`fxpsim.training.vector_unit.lac`, recorded as ``lac_fwd`` / ``lac_bwd`` into the
  QNet's counters like the network's other fp32 nodes).
* PRC: the QNet's gradient quantizer clips dY at ``prc_clip·max|dY|`` (``grad_interval =
  "prc"``, factor from the NumericsConfig, default 0.95); logged as ``prc_clip`` in
  ``octo_requant``.
* Optimizer: Adam (lr ``adam_lr`` = 1e-3) over every parameter and the compensation tensors.

Not modelled by the value plane (see the recipe test): the re-quantization of the im2col'd
input and of W to symmetric INT8 for the backward GEMMs (§6.3 step 2); the QNet's backward
reuses the forward codes. The time plane's ``octo_requant`` pass charges it.
"""

from __future__ import annotations

from typing import cast

import torch
from torch import nn

from fxpsim.graph.ir import Node
from fxpsim.training import vector_unit as vu
from fxpsim.training.algorithms.base import AlgorithmBase, Batch, _grad
from fxpsim.training.algorithms.optim import Adam


class LacConv(nn.Module):
    """A QNet conv module followed by the compensation layer."""

    def __init__(self, inner: nn.Module, node: Node, gen: torch.Generator,
                 sink: vu.VectorSink) -> None:
        super().__init__()
        self.inner, self.node, self.sink = inner, node, sink
        shape = node.shape
        self.a = nn.Parameter(torch.ones(shape))
        self.mu = nn.Parameter(1e-3 * torch.randn(shape, generator=gen))
        self.o = nn.Parameter(1e-3 * torch.randn(shape, generator=gen))

    # the QNet's conv parameters stay reachable under the same names
    @property
    def weight(self) -> nn.Parameter:
        return cast(nn.Parameter, self.inner.weight)

    @property
    def bias(self) -> nn.Parameter | None:
        return cast("nn.Parameter | None", self.inner.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return vu.lac(self.sink, self.node.name, self.inner(x), self.a, self.mu, self.o)


class OctoAlgorithm(AlgorithmBase):
    name = "octo"
    prc = True

    def init_optimizer(self) -> None:
        o = self.options
        self.adam = Adam(self.lr, o.adam_beta1, o.adam_beta2, o.adam_eps)
        gen = torch.Generator().manual_seed((self.seed * 1_000_003 + 7) % (2**63))
        self.lac: dict[str, LacConv] = {}
        for node in self.graph.nodes:
            if node.op != "conv2d":
                continue
            key = node.name.replace(".", "_")
            wrapped = LacConv(self.net.layers[key], node, gen, self.net.counters)
            self.net.layers[key] = wrapped
            self.lac[node.name] = wrapped

    def after_backward(self, batch: Batch) -> float:
        lam = self.options.octo_lambda
        pen = sum(0.5 * lam * float((m.mu.detach() ** 2).sum() + (m.o.detach() ** 2).sum())
                  for m in self.lac.values())
        self.log_value("octo_l2_penalty", pen)
        return pen

    @torch.no_grad()
    def update(self) -> None:
        lam = self.options.octo_lambda
        for grp in self.groups:
            vu.update(self.log, grp.node, "update", "adam_update", self.adam.step, grp.params,
                      [_grad(p) for p in grp.params])
            m = self.lac.get(grp.node)
            if m is not None:  # the L2 penalty's gradient joins μ's and o's
                vu.update(self.log, grp.node, "update", "adam_update", self.adam.step,
                          [m.a, m.mu, m.o],
                          [_grad(m.a), _grad(m.mu) + lam * m.mu, _grad(m.o) + lam * m.o])
