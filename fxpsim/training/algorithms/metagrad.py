"""MetaGrad: hypernetwork over quantized weight gradients (ALGORITHMS.md §4.2) [interp].

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
``u`` exists) then ``hypernet_fwd`` (Ĝ); then one Adam step of φ. The MLP is evaluated in
chunks of ``metagrad_chunk`` elements (memory only; sums are per chunk, in order).
"""

from __future__ import annotations

import torch
from torch import nn

from fxpsim.training.algorithms.base import AlgorithmBase, Batch
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


class MetaGradAlgorithm(AlgorithmBase):
    name = "metagrad"

    def init_optimizer(self) -> None:
        super().init_optimizer()
        o = self.options
        gen = torch.Generator().manual_seed((self.seed * 1_000_003 + 4242) % (2**63))
        self.hyper = CoordinateMLP(o.metagrad_hidden, gen)
        self.hyper_adam = Adam(o.metagrad_lr, o.adam_beta1, o.adam_beta2, o.adam_eps)
        self._prev: dict[str, tuple[torch.Tensor, float]] = {}

    def _chunks(self, n: int) -> range:
        return range(0, n, self.options.metagrad_chunk)

    def after_backward(self, batch: Batch) -> float:
        ch = self.options.metagrad_chunk
        for p in self.hyper.parameters():
            p.grad = None
        stepped = False
        for grp in self.groups:  # graph order
            if not grp.is_gemm:
                continue
            w = grp.weight
            g = w.grad.detach().reshape(-1)
            n = g.numel()
            prev = self._prev.get(grp.node)
            if prev is not None:  # hypernet_bwd: φ-gradient through last step's update
                u_prev, s_prev = prev
                for i in self._chunks(n):
                    out = s_prev * self.hyper(u_prev[i:i + ch])
                    (-self.lr * (g[i:i + ch] * out).sum()).backward()
                stepped = True
                self.log.vector(grp.node, "hypernet", "hypernet_bwd", n)
            s = float(torch.sqrt((g.double() ** 2).mean()))
            s = s if s > 0.0 else 1.0
            u = g / s
            with torch.no_grad():  # hypernet_fwd: Ĝ = G + s·H(u)
                g_hat = torch.empty_like(g)
                for i in self._chunks(n):
                    g_hat[i:i + ch] = g[i:i + ch] + s * self.hyper(u[i:i + ch])
            self._prev[grp.node] = (u.clone(), s)
            self.log.vector(grp.node, "hypernet", "hypernet_fwd", n)
            if self.options.metagrad_update == "hyper":
                w.grad = g_hat.view_as(w)
        if stepped:
            for p in self.hyper.parameters():
                self.hyper_adam.step(p, p.grad)
            self.log.vector("hypernet", "hypernet", "adam_update",
                            3 * self.options.metagrad_hidden + 1)
        return 0.0
