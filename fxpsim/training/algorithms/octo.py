"""Octo: loss-aware compensation + parameterized range clipping (docs/algorithms.md §6).

* LAC: after every quantized conv (after its bias), ``Y' = Y + a ⊙ μ + o`` with learnable
  ``a`` (init 1), ``μ``, ``o`` (init 1e-3·N(0, 1)) of the output feature-map shape C×H×W,
  broadcast over the batch [interp §10.12]; L2 penalty ``(λ/2)(‖μ‖² + ‖o‖²)``, λ =
  ``octo_lambda``, added to their gradients in the update. Logged as ``lac_fwd`` (forward)
  and ``lac_bwd`` (backward_data).
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
from fxpsim.training.algorithms.base import AlgorithmBase, Batch, _grad
from fxpsim.training.algorithms.optim import Adam


class LacConv(nn.Module):
    """A QNet conv module followed by the compensation layer."""

    def __init__(self, inner: nn.Module, node: Node, gen: torch.Generator,
                 record) -> None:
        super().__init__()
        self.inner, self.node, self.record = inner, node, record
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
        y = self.inner(x)
        elems = y.numel()
        self.record(self.node.name, "forward", "lac_fwd", elems)
        out = y + self.a * self.mu + self.o
        if out.requires_grad:
            out.register_hook(lambda g: self.record(self.node.name, "backward_data",
                                                    "lac_bwd", elems))
        return out


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
            wrapped = LacConv(self.net.layers[key], node, gen, self._record)
            self.net.layers[key] = wrapped
            self.lac[node.name] = wrapped

    def _record(self, layer: str, pass_name: str, kind: str, elems: int) -> None:
        if self._recording:
            self.log.vector(layer, pass_name, kind, elems)

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
            for p in grp.params:
                self.adam.step(p, _grad(p))
            self.log.vector(grp.node, "update", "adam_update", grp.numel)
            m = self.lac.get(grp.node)
            if m is not None:
                self.adam.step(m.a, _grad(m.a))
                self.adam.step(m.mu, _grad(m.mu) + lam * m.mu)
                self.adam.step(m.o, _grad(m.o) + lam * m.o)
                self.log.vector(grp.node, "update", "adam_update",
                                m.a.numel() + m.mu.numel() + m.o.numel())
