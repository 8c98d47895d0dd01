"""LBT: learnable gradient interval (docs/algorithms.md §3; rule from the authors' code).

The QNet quantizes each GEMM layer's dY with clip ``c = γ·max|dY|`` (``grad_interval =
"lbt"``). Per layer and step, on the *un-quantized* dY ``G`` (seen through the QNet's
gradient observer, with the γ_t used for this step's quantization)::

    r_t     = mean(|G| > γ_t · max|G|)                      (fraction clipped)
    γ_{t+1} = clamp(γ_t + η_γ · sign(r_t − α/(2^b − 1)), γ_min, 1)

(``lbt_interval`` pass, after backward; α = 1e-3, η_γ = 1e-3, γ_min = 1e-3, b = the
layer's gradient bits). With float gradients the count still runs but γ is not used or
changed. Calibration (:meth:`LbtAlgorithm.prepare`, once before training): forward and
backward on the first batch with γ = 1, then per layer γ is lowered from 1 in steps of
η_γ while an EMA (momentum 0.999, from 0) of r(γ) stays at or below the target; the first γ
where it exceeds the target is kept (γ_min if none). No update on that batch. Optimizer:
SGD with momentum (weight decay from the options). With per-channel (per-sample) gradient
scales (``granularity.g``) each channel (sample) clips at γ·its own max, so ``r`` counts
against that max and the calibration normalizes |G| per channel (sample) [our reading].
LBT's forward protocol (learned forward clips, unsigned post-ReLU codes, float first/last
layers; §3.5) is in the QNet (:mod:`fxpsim.training.fwdscales`), on by default for
``algo=lbt`` through the run options.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import torch

from fxpsim.training import vector_unit as vu
from fxpsim.training.algorithms.base import AlgorithmBase, Batch
from fxpsim.training.algorithms.execlog import ExecLog


def calibrate_gamma(abs_g: np.ndarray, target: float, eta: float, gamma_min: float) -> float:
    """First-batch γ search (see the module docstring) on ``|G|`` (any shape)."""
    a = np.sort(np.abs(abs_g).ravel().astype(np.float64))
    if a.size == 0 or a[-1] == 0.0:
        return 1.0
    s = a / a[-1]
    n_steps = int(np.floor((1.0 - gamma_min) / eta)) + 1
    gammas = 1.0 - eta * np.arange(n_steps)
    r = 1.0 - np.searchsorted(s, gammas, side="right") / s.size
    ema = 0.0
    for gm, ri in zip(gammas, r, strict=True):
        ema = 0.999 * ema + 0.001 * ri
        if ema > target:
            return float(max(gm, gamma_min))
    return float(gamma_min)


def clipped_fraction(g: torch.Tensor, gamma: float, granularity: str = "per_tensor") -> float:
    """``r = mean(|G| > γ·max|G|)`` of ``g = |G|`` (0 when ``G`` is all zero); with
    per-channel (per-sample) gradient scales each channel (sample) clips at γ·its own max."""
    if granularity != "per_tensor":
        return float((g > gamma * _group_max(g, granularity)).double().mean()) \
            if g.numel() else 0.0
    amax = float(g.max()) if g.numel() else 0.0
    return float((g > gamma * amax).double().mean()) if amax > 0 else 0.0


def gamma_update(gamma: float, r: float, target: float, eta: float, gamma_min: float) -> float:
    """``clamp(γ + η·sign(r − target), γ_min, 1)`` (§3.4)."""
    step = eta * (1.0 if r > target else -1.0 if r < target else 0.0)
    return min(max(gamma + step, gamma_min), 1.0)


def _group_max(g: torch.Tensor, granularity: str) -> torch.Tensor:
    """max|dY| per channel (axis 1) or per sample (axis 0), broadcastable against ``g``."""
    axis = 1 if granularity == "per_channel" else 0
    other = tuple(d for d in range(g.dim()) if d != axis)
    return g.amax(dim=other, keepdim=True) if g.numel() else g


def _group_normalized(g: torch.Tensor, granularity: str) -> torch.Tensor:
    """|dY| for the first-batch γ search: as is per tensor (the search divides by the max),
    else divided by its channel's / sample's max (0 where that max is 0)."""
    if granularity == "per_tensor" or not g.numel():
        return g
    m = _group_max(g, granularity)
    return torch.where(m > 0, g / torch.where(m > 0, m, torch.ones_like(m)),
                       torch.zeros_like(g))


class LbtAlgorithm(AlgorithmBase):
    """Recipe ``lbt``: SGD + per-layer γ interval update."""

    name = "lbt"

    def init_optimizer(self) -> None:
        super().init_optimizer()
        self._ratio: dict[str, float] = {}
        self._calib: dict[str, np.ndarray] | None = None
        self.gammas: dict[str, float] = {g.node: 1.0 for g in self.groups if g.is_gemm}
        for name, gm in self.gammas.items():
            self.net.set_gamma(name, gm)  # type: ignore[attr-defined]
        self.net.set_grad_observer(self._observe)  # type: ignore[attr-defined]

    def _target(self, layer: str) -> float | None:
        bits = self.net.runtimes[layer].numerics.gradients.bits  # type: ignore[attr-defined]
        return None if bits is None else self.options.lbt_alpha / ((1 << bits) - 1)

    def _observe(self, layer: str, dy: torch.Tensor) -> None:
        g = dy.detach().abs()
        gran = self.net.runtimes[layer].numerics.gradients.granularity  # type: ignore[attr-defined]
        if self._calib is not None:
            self._calib[layer] = _group_normalized(g, gran).numpy().copy()
            return
        self._ratio[layer] = vu.run(
            self.log, layer, "lbt_interval", "lbt_count",
            partial(clipped_fraction, gamma=self.gammas[layer], granularity=gran), g)

    def after_backward(self, batch: Batch) -> float:
        o = self.options
        for node in reversed(self.graph.nodes):  # lbt_interval runs in reverse graph order
            if not node.is_gemm:
                continue
            r = self._ratio.pop(node.name, None)  # counted during the backward (_observe)
            target = self._target(node.name)
            if r is None or target is None:
                continue
            gm = gamma_update(self.gammas[node.name], r, target, o.lbt_eta, o.lbt_gamma_min)
            self.gammas[node.name] = gm
            self.net.set_gamma(node.name, gm)  # type: ignore[attr-defined]
            self.log_value(f"lbt_gamma.{node.name}", gm)
        return 0.0

    def prepare(self, batch: Batch) -> None:
        """γ calibration on ``batch`` (no update; its ops are not part of any step)."""
        if not self.options.lbt_calibrate:
            return
        self._calib = {}
        saved_log = self.log
        self.log = ExecLog(self.graph)  # calibration work is not a recipe step
        try:
            self.net.train()
            self.net.begin_step(0)
            bn = [(b, b.detach().clone()) for m in self.net.modules()
                  if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for b in m.buffers()]
            self.forward_backward(batch.x, batch.y)
            with torch.no_grad():
                for buf, copy in bn:
                    buf.copy_(copy)
        finally:
            self.log = saved_log
            calib, self._calib = self._calib, None
        o = self.options
        for layer, g in calib.items():
            target = self._target(layer)
            if target is None:
                continue
            gm = calibrate_gamma(g, target, o.lbt_eta, o.lbt_gamma_min)
            self.gammas[layer] = gm
            self.net.set_gamma(layer, gm)  # type: ignore[attr-defined]
        for p in self.net.parameters():
            p.grad = None
