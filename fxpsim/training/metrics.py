"""Convergence metrics of a training run: weight-code oscillation, zig-zagging
(BLAQ's notion), steps and MACs to a target loss.

Weight-code oscillation (:class:`CodeFlipTracker`), per GEMM layer with quantized weights,
on the *integer codes* the forward uses (a change of the scale alone is not a flip):

* ``code_flip_rate`` = (code changes) / (weights × step transitions);
* ``code_flip_back_rate`` = (changes back to the code the weight held before its previous
  change, A→B→A) / (weights × step transitions).

A weight with codes 0, 1, 0, 0, 1 over 5 steps has 3 flips and 2 flip-backs in 4
transitions. The totals weigh layers by their weight count.

Zig-zag, per GEMM layer:

* ``probe_neg_cos_fraction`` (:class:`ProbeZigZag`): BLAQ's zig-zag is the direction change
  of the update along the trajectory. The loop evaluates the weight gradient on one *fixed*
  probe batch at the weights of two consecutive steps (t, t+1) every ``probe_every`` steps,
  so mini-batch noise does not enter; the metric is the fraction of those pairs with
  cos < 0 (and the mean cosine). ``probe_blend_*``: the same for the gradient the algorithm
  blends (forward-and-backtrack: ``a·g(trial point) + (1−a)·g`` on the probe batch).
* ``neg_cos_fraction`` (batch): fraction of steps with cos(g_t, g_{t−1}) < 0 of the
  gradients the updates used; consecutive steps see *different* mini-batches, so this mostly
  measures batch noise (fp32 SGD already scores ~0.3). Kept for comparison.
* over the last ``window`` steps, on ``samples`` weights per layer drawn once from
  ``np.random.default_rng((seed, 7, layer index))``: ``osc_frequency`` = mean over weights of
  (sign changes between consecutive nonzero changes of the weight's integer code) / T;
  ``amplitude`` = per weight max_t |w_i,t − mean_t w_i| of the fp32 master weight.

The codes of an algorithm that does not keep its own (the QNet quantizes master weights at
every forward) are the QNet's weight quantization of the master weights with the layer's
format, rounding to nearest (a stochastic weight rounding would flip codes by itself).
Float weights have no codes and no flip statistics.
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
    probe_neg_cos_fraction: float | None = None
    probe_mean_cos: float | None = None
    probe_pairs: int = 0
    probe_blend_neg_cos_fraction: float | None = None
    probe_blend_mean_cos: float | None = None


@dataclass(frozen=True)
class LayerFlips:
    layer: str
    weights: int
    transitions: int
    flips: int
    flip_backs: int

    @property
    def flip_rate(self) -> float:
        d = self.weights * self.transitions
        return self.flips / d if d else 0.0

    @property
    def flip_back_rate(self) -> float:
        d = self.weights * self.transitions
        return self.flip_backs / d if d else 0.0


@dataclass(frozen=True)
class FlipMetrics:
    layers: tuple[LayerFlips, ...]

    def _total(self, attr: str) -> float:
        d = sum(x.weights * x.transitions for x in self.layers)
        return sum(getattr(x, attr) for x in self.layers) / d if d else 0.0

    @property
    def flip_rate(self) -> float:
        return self._total("flips")

    @property
    def flip_back_rate(self) -> float:
        return self._total("flip_backs")


class CodeFlipTracker:
    """Counts code flips and flip-backs (A→B→A) per layer (see the module docstring)."""

    def __init__(self) -> None:
        self.prev: dict[str, np.ndarray] = {}
        self.before: dict[str, np.ndarray] = {}  # code held before the last change
        self.has_before: dict[str, np.ndarray] = {}
        self.flips: dict[str, int] = {}
        self.backs: dict[str, int] = {}
        self.transitions: dict[str, int] = {}

    def observe(self, codes: dict[str, np.ndarray]) -> None:
        for name, c in codes.items():
            c = np.asarray(c).reshape(-1)
            p = self.prev.get(name)
            if p is None:
                self.prev[name] = c.copy()
                self.before[name] = np.zeros_like(c)
                self.has_before[name] = np.zeros(c.shape, dtype=bool)
                self.flips[name] = self.backs[name] = self.transitions[name] = 0
                continue
            changed = c != p
            back = changed & self.has_before[name] & (c == self.before[name])
            self.flips[name] += int(changed.sum())
            self.backs[name] += int(back.sum())
            self.transitions[name] += 1
            self.before[name] = np.where(changed, p, self.before[name])
            self.has_before[name] |= changed
            self.prev[name] = c.copy()

    def result(self) -> FlipMetrics:
        return FlipMetrics(tuple(
            LayerFlips(n, int(self.prev[n].size), self.transitions[n], self.flips[n],
                       self.backs[n]) for n in self.prev))


def probe_steps(every: int, steps: int) -> frozenset[int]:
    """Steps (0-based, before the step's update) at which the loop evaluates the probe
    gradient: pairs (t, t+1) for t = 0, every, 2·every, ...; ``every`` <= 2: every step;
    0: none."""
    if every <= 0:
        return frozenset()
    if every <= 2:
        return frozenset(range(steps))
    return frozenset(t + d for t in range(0, steps, every) for d in (0, 1) if t + d < steps)


class ProbeZigZag:
    """Cosines between probe gradients of consecutive steps (see the module docstring)."""

    def __init__(self) -> None:
        self.last: dict[str, tuple[int, dict[str, torch.Tensor]]] = {}
        self.neg: dict[tuple[str, str], int] = {}
        self.pairs: dict[tuple[str, str], int] = {}
        self.cos_sum: dict[tuple[str, str], float] = {}

    def observe(self, step: int, kind: str, grads: dict[str, torch.Tensor]) -> None:
        """``kind``: ``raw`` or ``blend``; ``grads`` per layer, flattened."""
        prev = self.last.get(kind)
        g64 = {n: g.detach().double() for n, g in grads.items()}
        if prev is not None and prev[0] == step - 1:
            for n, g in g64.items():
                p = prev[1].get(n)
                if p is None:
                    continue
                na, nb = float(g.norm()), float(p.norm())
                if na == 0.0 or nb == 0.0:
                    continue
                cos = float(torch.dot(g, p)) / (na * nb)
                key = (kind, n)
                self.pairs[key] = self.pairs.get(key, 0) + 1
                self.neg[key] = self.neg.get(key, 0) + (cos < 0.0)
                self.cos_sum[key] = self.cos_sum.get(key, 0.0) + cos
        self.last[kind] = (step, g64)

    def layer(self, kind: str, name: str) -> tuple[float | None, float | None, int]:
        """(neg-cos fraction, mean cosine, pairs) of one layer; Nones without pairs."""
        n = self.pairs.get((kind, name), 0)
        if not n:
            return None, None, 0
        return self.neg[(kind, name)] / n, self.cos_sum[(kind, name)] / n, n


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

    def _probe_mean(self, attr: str) -> float | None:
        vals = [getattr(x, attr) for x in self.layers if getattr(x, attr) is not None]
        return float(np.mean(vals)) if vals else None

    @property
    def probe_neg_cos_fraction(self) -> float | None:
        """Mean of the per-layer probe fractions (None when nothing was probed)."""
        return self._probe_mean("probe_neg_cos_fraction")

    @property
    def probe_blend_neg_cos_fraction(self) -> float | None:
        return self._probe_mean("probe_blend_neg_cos_fraction")


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
                weights: dict[str, tuple[torch.Tensor, torch.Tensor | None]],
                codes: dict[str, np.ndarray] | None = None) -> None:
        """``grads``: the update's gradient per layer; ``weights``: (master, unused) per
        layer; ``codes``: the integer weight codes per layer (layers without codes, i.e.
        float weights, oscillate on their master value)."""
        codes = codes or {}
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
        for name, (master, _) in weights.items():
            idx = torch.from_numpy(self.idx[name])
            wm = master.detach()[idx]
            c = codes.get(name)
            wq = (np.asarray(c).reshape(-1)[self.idx[name]].astype(np.float64) if c is not None
                  else wm.double().numpy())
            for buf, val in ((self.wq[name], wq), (self.wm[name], wm.double().numpy())):
                buf.append(val)
                if len(buf) > self.window:
                    buf.pop(0)

    def result(self, probe: ProbeZigZag | None = None) -> ZigZagMetrics:
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
            pr = probe.layer("raw", name) if probe else (None, None, 0)
            pb = probe.layer("blend", name) if probe else (None, None, 0)
            layers.append(LayerZigZag(name, frac, n_cos, freq, amp_mean, amp_max,
                                      int(self.idx[name].size), pr[0], pr[1], pr[2],
                                      pb[0], pb[1]))
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


def macs_to_target(cum_macs: Sequence[int], steps: int | None) -> int | None:
    """GEMM MACs executed up to and including step ``steps`` (1-based; None -> None):
    ``cum_macs[t-1]`` is the run's cumulative MAC count after step t."""
    if steps is None or not 1 <= steps <= len(cum_macs):
        return None
    return int(cum_macs[steps - 1])


def thin(n: int, points: int) -> list[int]:
    """At most ``points`` indices of ``range(n)``, evenly spread, the last one included."""
    if n <= points:
        return list(range(n))
    return sorted({round(i * (n - 1) / (points - 1)) for i in range(points)})


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
