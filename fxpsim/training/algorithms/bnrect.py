"""FQT with BatchNorm rectification (ICLR'23 submission; docs/algorithms.md §5) [interp].

From the submission (abstract and introduction; its derivation was not readable here): the
noise of gradient quantizers accumulates over the backward pass, BatchNorm can amplify it,
and a rectification *loss* added to the training loss suppresses the amplification. Our
reading of its form: BN's backward multiplies the incoming error of channel c by γ_c/σ_c,
so the penalty keeps that gain at or below 1.

Penalty added to the task loss, per BN layer l with C channels::

    hinge  (default): L = λ · (1/C) Σ_c max(0, |γ_c|/σ_c − 1)²
    square:           L = λ · (1/C) Σ_c (γ_c/σ_c)²

σ_c = sqrt(batch variance of the BN input + eps) of this step's forward (``batch``), or of
the running variance (``running``). σ is treated as a constant (its dependence on the
activations is not differentiated: the rectification is O(C) work per BN, as the cost model
says), so the penalty's gradient goes to γ only and is added to ``γ.grad`` in the
``bn_rectify`` pass (graph order), after the quantized backward. Optimizer: SGD momentum.

Logged per step (``summary.json`` ``training.method_logs``): ``bnrect_penalty`` (the value
added to the loss) and ``bnrect_max_gain`` (the largest |γ|/σ over all channels: the
hinge is active only where it exceeds 1).
"""

from __future__ import annotations

from functools import partial

import torch
from torch.nn.modules.batchnorm import _BatchNorm

from fxpsim.errors import FxpsimError
from fxpsim.training import vector_unit as vu
from fxpsim.training.algorithms.base import AlgorithmBase, Batch, _grad


class BnRectAlgorithm(AlgorithmBase):
    name = "bnrect"

    def init_optimizer(self) -> None:
        super().init_optimizer()
        if not any(n.op == "batchnorm" for n in self.graph.nodes):
            raise FxpsimError(f"algo: bnrect rectifies BatchNorm layers; model "
                              f"{self.graph.name} has none")
        self._sigma: dict[str, torch.Tensor] = {}
        self._bns: dict[str, _BatchNorm] = {}
        for node in self.graph.nodes:
            if node.op != "batchnorm":
                continue
            bn = self.net.layers[node.name.replace(".", "_")].bn
            assert isinstance(bn, _BatchNorm)  # a batchnorm node's layer holds its BatchNorm
            self._bns[node.name] = bn
            bn.register_forward_hook(self._hook(node.name))

    def _hook(self, name: str):
        def hook(mod: torch.nn.Module, inputs: tuple[torch.Tensor, ...], out: object) -> None:
            if not mod.training:
                return
            x = inputs[0].detach()
            dims = [0] + list(range(2, x.dim()))
            var = x.var(dim=dims, unbiased=False)
            self._sigma[name] = torch.sqrt(var + mod.eps)  # type: ignore[operator]
        return hook

    def _rectify(self, gamma: torch.Tensor, sigma: torch.Tensor) -> tuple[float, float]:
        """Add the penalty's gradient to ``γ.grad``; returns the layer's penalty and its
        largest gain ``|γ|/σ``."""
        o = self.options
        c = gamma.numel()
        gain = gamma.abs() / sigma
        if o.bnrect_form == "hinge":
            h = torch.clamp(gain - 1.0, min=0.0)
            pen = float(o.bnrect_lambda * (h * h).sum() / c)
            grad = (o.bnrect_lambda / c) * 2.0 * h * torch.sign(gamma) / sigma
        else:
            ratio = gamma / sigma
            pen = float(o.bnrect_lambda * (ratio * ratio).sum() / c)
            grad = (o.bnrect_lambda / c) * 2.0 * ratio / sigma
        _grad(gamma).add_(grad)
        return pen, float(gain.max())

    @torch.no_grad()
    def after_backward(self, batch: Batch) -> float:
        o = self.options
        total = 0.0
        max_gain = 0.0
        for name, bn in self._bns.items():  # bn_rectify runs in graph order
            if o.bnrect_sigma == "running":
                assert bn.running_var is not None  # BatchNorm tracks running statistics
                sigma = torch.sqrt(bn.running_var + bn.eps)
            else:
                sigma = self._sigma[name]
            pen, gain = vu.run(self.log, name, "bn_rectify", "bn_rectify",
                               partial(self._rectify, sigma=sigma), bn.weight)
            total += pen
            max_gain = max(max_gain, gain)
        self.log_value("bnrect_penalty", total)
        self.log_value("bnrect_max_gain", max_gain)
        return total
