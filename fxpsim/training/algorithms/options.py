"""Knobs of the training algorithms (:class:`AlgoOptions`), with the defaults of
docs/algorithms.md. ``[interp]`` marks our reading where the papers are silent."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

#: algorithms trained with Adam (the rest use SGD with momentum)
ADAM_ALGOS: frozenset[str] = frozenset({"laq", "fb", "octo"})


@dataclass(frozen=True)
class AlgoOptions:
    """Hyper-parameters of every algorithm (each reads its own).

    Optimizers: ``lr`` None -> ``sgd_lr`` for SGD-momentum algorithms (sgd, lbt, bnrect,
    metagrad), ``adam_lr`` for Adam ones (laq, fb, octo).

    LAQ / FB (§1.2, §2.2): ``laq_rounds`` alternating rounds m per projection (exactly m,
    the hardware cost model's count); ``laq_clip`` master weights clipped to ±clip after each
    Adam step. FB: ``fb_a`` backtracking coefficient, ``fb_coef_on`` which gradient a
    multiplies, ``fb_trial_batch`` same / next mini-batch for the trial, and
    ``fb_trial_updates_moments`` whether the trial's Adam moments are committed.

    LBT (§3.4): ``lbt_alpha`` (target clipped fraction α/(2^b−1)), ``lbt_eta`` γ step,
    γ clamped to [``lbt_gamma_min``, 1]; ``lbt_calibrate`` runs the first-batch γ search
    (one extra forward/backward before training, no update).

    BN rectification (§5.2) [interp]: ``bnrect_lambda``; ``bnrect_form`` ``hinge``
    (max(0, |γ|/σ − 1)²) or ``square`` ((γ/σ)²); ``bnrect_sigma`` ``batch`` or ``running``.

    MetaGrad (§4.2) [interp]: 1→``metagrad_hidden``→1 ReLU MLP shared by all layers, Adam
    ``metagrad_lr``; ``metagrad_update`` ``hyper`` (the update uses Ĝ = H(G)) or ``plain``
    (value of G, hypernetwork only trained); ``metagrad_gain`` ``keep`` (Ĝ has G's
    per-layer norm) or ``free`` (the hypernetwork may also scale the step).

    Octo (§6): ``octo_lambda`` L2 on the compensation tensors μ, o.

    Learned forward scales (``forward_scales=learned``, §3.5): ``fwd_scale_lr`` the Adam
    learning rate of every layer's (s_W, u_A) (LBT's code: 1e-5, no weight decay).
    """

    lr: float | None = None
    sgd_lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-4
    adam_lr: float = 1e-3
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_eps: float = 1e-8
    laq_rounds: int = 5
    laq_clip: float = 1.0
    fb_a: float = 0.6
    fb_coef_on: Literal["trial", "current"] = "trial"
    fb_trial_batch: Literal["same", "next"] = "same"
    fb_trial_updates_moments: bool = False
    lbt_alpha: float = 1e-3
    lbt_eta: float = 1e-3
    lbt_gamma_min: float = 1e-3
    lbt_calibrate: bool = True
    fwd_scale_lr: float = 1e-5
    bnrect_lambda: float = 1e-4
    bnrect_form: Literal["hinge", "square"] = "hinge"
    bnrect_sigma: Literal["batch", "running"] = "batch"
    metagrad_hidden: int = 100
    metagrad_lr: float = 1e-3
    metagrad_update: Literal["hyper", "plain"] = "hyper"
    metagrad_gain: Literal["keep", "free"] = "keep"
    octo_lambda: float = 0.1

    def __post_init__(self) -> None:
        for name in ("sgd_lr", "adam_lr", "metagrad_lr", "lbt_eta", "lbt_alpha", "laq_clip",
                     "lbt_gamma_min", "adam_eps", "fwd_scale_lr"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}: must be > 0, got {getattr(self, name)!r}")
        if self.lr is not None and not self.lr > 0:
            raise ValueError(f"lr: must be > 0 or None, got {self.lr!r}")
        for name in ("laq_rounds", "metagrad_hidden"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name}: must be a positive integer, got {v!r}")
        if not 0.0 <= self.fb_a <= 1.0:
            raise ValueError(f"fb_a: must be in [0, 1], got {self.fb_a!r}")
        for name in ("momentum", "adam_beta1", "adam_beta2"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name}: must be in [0, 1), got {getattr(self, name)!r}")
        for name in ("weight_decay", "bnrect_lambda", "octo_lambda"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: must be >= 0, got {getattr(self, name)!r}")

    def lr_for(self, algo: str) -> float:
        if self.lr is not None:
            return self.lr
        return self.adam_lr if algo in ADAM_ALGOS else self.sgd_lr


def options_from_run(run: object, **overrides: object) -> AlgoOptions:
    """AlgoOptions with the RunConfig's ``lr``, ``fb_*`` and algorithm-knob fields (plus
    ``overrides``)."""
    base = dict(
        lr=getattr(run, "lr", None),
        fb_a=getattr(run, "fb_a", 0.6),
        fb_coef_on=getattr(run, "fb_coef_on", "trial"),
        fb_trial_batch=getattr(run, "fb_trial_batch", "same"),
        fb_trial_updates_moments=getattr(run, "fb_trial_updates_moments", False),
        laq_rounds=getattr(run, "laq_rounds", 5),
        lbt_alpha=getattr(run, "lbt_alpha", 1e-3),
        bnrect_lambda=getattr(run, "bnrect_lambda", 1e-4),
        bnrect_form=getattr(run, "bnrect_form", "hinge"),
        bnrect_sigma=getattr(run, "bnrect_sigma", "batch"),
        metagrad_hidden=getattr(run, "metagrad_hidden", 100),
        metagrad_update=getattr(run, "metagrad_update", "hyper"),
        metagrad_lr=getattr(run, "metagrad_lr", 1e-3),
        metagrad_gain=getattr(run, "metagrad_gain", "keep"),
        octo_lambda=getattr(run, "octo_lambda", 0.1),
        fwd_scale_lr=getattr(run, "forward_scales_lr", 1e-5),
    )
    base.update(overrides)
    return AlgoOptions(**base)  # type: ignore[arg-type]
