"""Convergence metrics of a training run: zig-zagging (ALGORITHMS.md §2.4) and steps to a
target loss.

Zig-zag metrics, per GEMM layer (definitions are ours, §10.4):

* ``neg_cos_fraction``: fraction of steps t ≥ 1 with cos(g_t, g_{t−1}) < 0, g the flattened
  weight gradient the update used (the blended ḡ for forward-and-backtrack); steps where
  either gradient is all zero are not counted.
* over the last ``window`` steps, on ``samples`` weights per layer drawn once from
  ``np.random.default_rng((seed, 7, layer index))``:
  ``osc_frequency`` = mean over weights of (sign changes between consecutive nonzero
  changes of the quantized weight ŵ_i) / T, T = steps in the window;
  ``amplitude`` = per weight max_t |w_i,t − mean_t w_i| of the fp32 master weight;
  reported as mean and max over the sampled weights.

The quantized weight of an algorithm that does not keep one (the QNet quantizes master
weights itself) is the deterministic per-tensor round-half-even quantization with the
layer's weight bits (Δ = max|w|/(2^(b−1)−1)); float weights are their own quantization.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class LayerZigZag:
    layer: str
    neg_cos_fraction: float
    cos_steps: int  # steps that had a defined cosine
    osc_frequency: float
    amplitude_mean: float
    amplitude_max: float
    samples: int


@dataclass(frozen=True)
class ZigZagMetrics:
    window: int  # steps the oscillation statistics cover
    layers: tuple[LayerZigZag, ...]

    @property
    def neg_cos_fraction(self) -> float:
        """Mean of the per-layer fractions (0 when no layer has a cosine)."""
        vals = [x.neg_cos_fraction for x in self.layers if x.cos_steps]
        return float(np.mean(vals)) if vals else 0.0

    @property
    def osc_frequency(self) -> float:
        vals = [x.osc_frequency for x in self.layers]
        return float(np.mean(vals)) if vals else 0.0


def rn_quantize(w: torch.Tensor, bits: int | None, amax: float) -> np.ndarray:
    """Per-tensor symmetric round-half-even values of ``w`` given the tensor's ``amax``."""
    x = w.detach().double().numpy()
    if bits is None or amax == 0.0:
        return x
    delta = amax / ((1 << (bits - 1)) - 1)
    return np.round(x / delta) * delta


class ZigZagTracker:
    """Accumulates the zig-zag statistics step by step (see the module docstring)."""

    def __init__(self, sizes: dict[str, int], bits: dict[str, int | None], *, window: int = 100,
                 samples: int = 1024, seed: int = 0) -> None:
        if window < 2:
            raise ValueError(f"window: must be >= 2, got {window}")
        self.window, self.bits = window, bits
        self.idx = {
            name: np.sort(np.random.default_rng((seed, 7, i)).choice(n, min(n, samples),
                                                                     replace=False))
            for i, (name, n) in enumerate(sizes.items())
        }
        self.prev: dict[str, torch.Tensor] = {}
        self.neg = dict.fromkeys(sizes, 0)
        self.cos_steps = dict.fromkeys(sizes, 0)
        self.wq: dict[str, list[np.ndarray]] = {n: [] for n in sizes}
        self.wm: dict[str, list[np.ndarray]] = {n: [] for n in sizes}

    def observe(self, grads: dict[str, torch.Tensor],
                weights: dict[str, tuple[torch.Tensor, torch.Tensor | None]]) -> None:
        for name, g in grads.items():
            p = self.prev.get(name)
            g64 = g.detach().double()
            if p is not None:
                na, nb = float(g64.norm()), float(p.norm())
                if na > 0.0 and nb > 0.0:
                    self.cos_steps[name] += 1
                    if float(torch.dot(g64, p)) < 0.0:
                        self.neg[name] += 1
            self.prev[name] = g64
        for name, (master, quant) in weights.items():
            idx = torch.from_numpy(self.idx[name])
            wm = master.detach()[idx]
            if quant is None:
                amax = float(master.detach().abs().max()) if master.numel() else 0.0
                wq = rn_quantize(wm, self.bits.get(name), amax)
            else:
                wq = quant.detach()[idx].double().numpy()
            for buf, val in ((self.wq[name], wq), (self.wm[name], wm.double().numpy())):
                buf.append(val)
                if len(buf) > self.window:
                    buf.pop(0)

    def result(self) -> ZigZagMetrics:
        layers = []
        for name in self.idx:
            n_cos = self.cos_steps[name]
            frac = self.neg[name] / n_cos if n_cos else 0.0
            wq, wm = self.wq[name], self.wm[name]
            t = len(wq)
            if t >= 2 and wq[0].size:
                freq = float(np.mean(_sign_changes(np.stack(wq)))) / t
                m = np.stack(wm)
                amp = np.abs(m - m.mean(axis=0)).max(axis=0)
                amp_mean, amp_max = float(amp.mean()), float(amp.max())
            else:
                freq = amp_mean = amp_max = 0.0
            layers.append(LayerZigZag(name, frac, n_cos, freq, amp_mean, amp_max,
                                      int(self.idx[name].size)))
        window = max((len(b) for b in self.wq.values()), default=0)
        return ZigZagMetrics(window, tuple(layers))


def _sign_changes(series: np.ndarray) -> np.ndarray:
    """Per column of ``series`` (T, S): sign changes between consecutive nonzero diffs."""
    d = np.sign(np.diff(series, axis=0))
    out = np.zeros(series.shape[1], dtype=np.int64)
    last = np.zeros(series.shape[1])
    for row in d:
        nz = row != 0
        out += (nz & (last != 0) & (row != last)).astype(np.int64)
        last = np.where(nz, row, last)
    return out


def steps_to_target(losses: Sequence[float], target: float | None, window: int = 10
                    ) -> int | None:
    """First step count t (1-based) whose trailing mean of the last ``min(window, t)``
    batch losses is ≤ ``target``; None if never reached or no target."""
    if target is None:
        return None
    if window < 1:
        raise ValueError(f"window: must be >= 1, got {window}")
    for t in range(1, len(losses) + 1):
        recent = losses[max(0, t - window):t]
        if sum(recent) / len(recent) <= target:
            return t
    return None
