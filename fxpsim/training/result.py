"""What a training run produced (:class:`TrainResult`), frozen, with a JSON-ready view.

:meth:`TrainResult.summary` is deterministic for a fixed seed (floats rounded to 6
significant digits; no wall-clock time), so it can go into ``summary.json``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from fxpsim.training.metrics import FlipMetrics, ZigZagMetrics, thin

CURVE_POINTS = 200  # loss-vs-MACs points kept in summary.json
LOG_POINTS = 100  # points per per-method series kept in summary.json


def _r(x: float | None) -> float | None:
    """6 significant digits; None for None and non-finite values (strict JSON)."""
    if x is None or not math.isfinite(x):
        return None
    return float(f"{x:.6g}")


@dataclass(frozen=True)
class Accuracy:
    """Final top-1 accuracy, fractions in [0, 1]: ``test`` on the test subset after the last
    epoch (eval mode), ``train`` the mean over the last epoch's training batches. Both are
    None when training diverged (a network with non-finite weights has no accuracy)."""

    test: float | None
    train: float | None


@dataclass(frozen=True)
class EpochRecord:
    epoch: int  # 1-based
    steps: int  # steps run so far (cumulative)
    loss: float  # mean training loss over the epoch's batches
    accuracy: float  # mean training accuracy over the epoch's batches
    test_loss: float
    test_accuracy: float


@dataclass(frozen=True)
class LayerTrainStats:
    """Per GEMM layer, summed over the run (SQNR sampled, see fxpsim.training.stats)."""

    layer: str
    grad_clipped_fraction: float
    act_clipped_fraction: float
    grad_sqnr_db: float | None
    act_sqnr_db: float | None
    acc_overflow_events: tuple[tuple[str, int], ...]  # (pass, events)
    lbt_gamma: float | None = None  # final γ (LBT only)


@dataclass(frozen=True)
class OpCount:
    """Executed ops over the run, per recipe pass and kind (``gemm`` for GEMMs)."""

    pass_name: str
    kind: str
    count: int


@dataclass(frozen=True)
class TrainResult:
    algo: str
    model: str
    dataset: str
    data_source: str
    data_license: str
    batch: int
    steps: int
    epochs: int
    seed: int
    lr: float
    train_samples: int
    test_samples: int
    accuracy: Accuracy
    history: tuple[EpochRecord, ...]
    step_losses: tuple[float, ...]
    layers: tuple[LayerTrainStats, ...]
    zigzag: ZigZagMetrics
    target_loss: float | None
    steps_to_target: int | None
    ops: tuple[OpCount, ...]
    integer_macs: int  # MACs run as integer GEMMs
    float_macs: int  # MACs run as fp32 GEMMs (float operands)
    wall_seconds: float = 0.0  # not part of summary(): it is not deterministic
    # the step whose loss or weights became non-finite (training stopped there), else None
    diverged_at_step: int | None = None
    macs_to_target: int | None = None  # GEMM MACs run until steps_to_target
    flips: FlipMetrics = FlipMetrics(())
    cum_macs: tuple[int, ...] = ()  # cumulative GEMM MACs after each step
    # per-method series (LBT γ, bnrect penalty, MetaGrad gain ...): (name, ((step, v), ...))
    method_log: tuple[tuple[str, tuple[tuple[int, float], ...]], ...] = ()

    def loss_curve(self, points: int = CURVE_POINTS) -> list[dict[str, float | int | None]]:
        """(step, cumulative MACs, batch loss) at up to ``points`` steps (loss vs compute)."""
        n = min(len(self.step_losses), len(self.cum_macs))
        return [{"step": i + 1, "macs": self.cum_macs[i], "loss": _r(self.step_losses[i])}
                for i in thin(n, points)]

    def method_logs(self, points: int = LOG_POINTS) -> dict[str, object]:
        """Per series: ``final`` value and up to ``points`` (step, value) pairs."""
        out: dict[str, object] = {}
        for name, series in self.method_log:
            out[name] = {"final": _r(series[-1][1]) if series else None,
                         "points": [[series[i][0], _r(series[i][1])]
                                    for i in thin(len(series), points)]}
        return out

    @property
    def seconds_per_step(self) -> float:
        return self.wall_seconds / self.steps if self.steps else 0.0

    def summary(self) -> dict[str, object]:
        """JSON-ready dict (deterministic): accuracy, history, per-layer stats, zig-zag,
        steps to target, executed op counts."""
        z = self.zigzag
        return {
            "algo": self.algo,
            "model": self.model,
            "dataset": self.dataset,
            "data_source": self.data_source,
            "data_license": self.data_license,
            "batch": self.batch,
            "steps": self.steps,
            "epochs": self.epochs,
            "seed": self.seed,
            "lr": _r(self.lr),
            "train_samples": self.train_samples,
            "test_samples": self.test_samples,
            "accuracy": {"test": _r(self.accuracy.test), "train": _r(self.accuracy.train)},
            "diverged_at_step": self.diverged_at_step,
            "history": [
                {"epoch": h.epoch, "steps": h.steps, "loss": _r(h.loss),
                 "accuracy": _r(h.accuracy), "test_loss": _r(h.test_loss),
                 "test_accuracy": _r(h.test_accuracy)}
                for h in self.history
            ],
            "target_loss": _r(self.target_loss),
            "steps_to_target": self.steps_to_target,
            "macs_to_target": self.macs_to_target,
            "code_flip_rate": _r(self.flips.flip_rate),
            "code_flip_back_rate": _r(self.flips.flip_back_rate),
            "code_flips": [
                {"layer": f.layer, "weights": f.weights, "transitions": f.transitions,
                 "flips": f.flips, "flip_backs": f.flip_backs,
                 "code_flip_rate": _r(f.flip_rate), "code_flip_back_rate": _r(f.flip_back_rate)}
                for f in self.flips.layers
            ],
            "zigzag": {
                "window": z.window,
                "probe_neg_cos_fraction": _r(z.probe_neg_cos_fraction),
                "probe_blend_neg_cos_fraction": _r(z.probe_blend_neg_cos_fraction),
                "neg_cos_fraction": _r(z.neg_cos_fraction),
                "osc_frequency": _r(z.osc_frequency),
                "layers": [
                    {"layer": x.layer, "neg_cos_fraction": _r(x.neg_cos_fraction),
                     "probe_neg_cos_fraction": _r(x.probe_neg_cos_fraction),
                     "probe_mean_cos": _r(x.probe_mean_cos), "probe_pairs": x.probe_pairs,
                     "probe_blend_neg_cos_fraction": _r(x.probe_blend_neg_cos_fraction),
                     "probe_blend_mean_cos": _r(x.probe_blend_mean_cos),
                     "osc_frequency": _r(x.osc_frequency),
                     "amplitude_mean": _r(x.amplitude_mean),
                     "amplitude_max": _r(x.amplitude_max)}
                    for x in z.layers
                ],
            },
            "loss_curve": self.loss_curve(),
            "method_logs": self.method_logs(),
            "layers": [
                {"layer": s.layer, "grad_clipped_fraction": _r(s.grad_clipped_fraction),
                 "act_clipped_fraction": _r(s.act_clipped_fraction),
                 "grad_sqnr_db": _r(s.grad_sqnr_db), "act_sqnr_db": _r(s.act_sqnr_db),
                 "acc_overflow_events": dict(s.acc_overflow_events),
                 "lbt_gamma": _r(s.lbt_gamma)}
                for s in self.layers
            ],
            "executed": {
                "integer_macs": self.integer_macs,
                "float_macs": self.float_macs,
                "ops": [{"pass": o.pass_name, "kind": o.kind, "count": o.count}
                        for o in self.ops],
            },
        }
