"""Training-step recipes: the ordered passes each algorithm runs in one step (neutral:
imported by both planes, imports neither).

A :class:`Recipe` is the single source of truth for *what work a step does*. The time plane
lowers it onto a graph (:func:`fxpsim.timing.lowering.lower`) and the value plane executes
the same passes, so a test can compare the GEMMs and vector ops the training code actually
ran with the lowering's list. The exact ops each pass kind implies per layer are listed here;
the arithmetic per element (ALU ops, bytes, roundings) is in :mod:`fxpsim.timing.lowering`.

Pass kinds (``B`` = batch, "GEMM layer" = conv2d or linear, forward order = graph order,
reverse = reverse graph order)
==========================================================================================

``forward`` (graph order)
    GEMM layer: one forward GEMM (``Y = X W``, output requantized to ``a_bits``). If
    ``lac``: then one ``lac_fwd`` vector op over its B x output elements (Octo compensation).
    batchnorm: ``batchnorm_fwd`` (elements) + ``batchnorm_stats`` (channels) in training;
    in ``infer`` nothing when folded into the preceding GEMM's requantizer scale (its only
    input is a GEMM whose only consumer is this BN), else ``batchnorm_infer``.
    relu / relu6 / maxpool / avgpool / global_avgpool / add: one vector op of that name.
    input / flatten: nothing (data movement is the schedule's business).
``loss`` softmax cross-entropy on the logits and its gradient: one ``softmax_xent`` op.
``backward_data`` (reverse order)
    For each node whose input needs a gradient (every node after the first GEMM layer):
    first a ``grad_add`` if its output feeds several consumers (fan-out sum of gradients),
    then GEMM layer: ``lac_bwd`` if ``lac``, then one backward-data GEMM
    (``dX = dY Wᵀ``), skipped for the first GEMM layer (its input is data);
    batchnorm: ``batchnorm_bwd`` + ``batchnorm_bwd_stats``; relu/relu6/maxpool/avgpool/
    global_avgpool: ``<op>_bwd``; add / flatten: nothing (gradient routed unchanged).
``backward_weight`` (reverse order)
    GEMM layer: one backward-weight GEMM (``dW = Xᵀ dY``, 32-bit, not requantized), then
    ``bias_grad`` if the layer has a bias.
``grad_quant`` (reverse order)
    GEMM layer: ``reduce_max`` (max |dY|) then ``quantize`` of dY to ``g_bits``.
    Nothing when gradients are float (``g_bits`` None).
``lbt_interval`` (reverse order) GEMM layer: ``lbt_count`` (compare-and-count over dY; the
    max |dY| is the one ``grad_quant`` already reduced).
``octo_requant`` (reverse order) GEMM layer: ``prc_clip`` over dY (parameterized range
    clipping before the gradient is quantized); for conv layers with
    ``octo_backward = "requant"`` (the demo's LAC conv) also ``reduce_max`` +
    ``prc_quantize`` of the range-clipped X and of W for the backward GEMMs (``reuse``: the
    forward INT8 codes, as the demo's quantized FC layers do).
``bn_rectify`` (graph order) batchnorm: one ``bn_rectify`` op over its channels.
``hypernet`` (graph order) GEMM layer: ``hypernet_bwd`` then ``hypernet_fwd`` over its
    weights; after the last layer one ``adam_update`` over the hypernetwork's parameters.
``blend`` (graph order) each node with parameters: one ``blend`` op over its parameters.
``update`` (graph order) each node with parameters: one ``<optimizer>`` op over its
    parameters (``sgd_update`` or ``adam_update``; ``laq_adam_projection`` = ``adam_update``
    with clipping), then for GEMM layers with integer weights: ``reduce_max`` + ``quantize``
    (sgd_momentum, adam) or ``laq_projection`` (laq_adam_projection). If ``lac``: one more
    ``adam_update`` over the compensation parameters (3 x output elements) of each conv.

``weights="trial"`` passes run at the trial weights of the forward-and-backtrack step;
``scratch=True`` updates write a scratch copy of the optimizer state (same work).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from fxpsim.errors import ConfigError
from fxpsim.vocab import ALGORITHMS, REVERSE_KINDS, PassKind

__all__ = ["ALGORITHMS", "REVERSE_KINDS", "Optimizer", "PassDecl", "PassKind", "Recipe",
           "recipe_for"]

Optimizer = Literal["sgd_momentum", "adam", "laq_adam_projection"]


@dataclass(frozen=True)
class PassDecl:
    """One pass of a step. ``name`` becomes ``pass_name`` of every op it lowers to."""

    name: str
    kind: PassKind
    weights: Literal["current", "trial"] = "current"
    optimizer: Optimizer | None = None  # update passes only
    scratch: bool = False  # update writes a scratch optimizer state (fb trial step)
    lac: bool = False  # Octo loss-aware compensation layer after each conv

    def __post_init__(self) -> None:
        if (self.kind == "update") != (self.optimizer is not None):
            raise ValueError(f"pass {self.name!r}: optimizer is required for update passes "
                             "and only for them")


@dataclass(frozen=True)
class Recipe:
    """An algorithm's step: ordered passes plus the knobs that size their vector work."""

    algo: str
    phase: Literal["infer", "train"]
    passes: tuple[PassDecl, ...]
    projection_rounds: int = 5  # LAQ alternating-projection rounds m (ALGORITHMS §1.3, §2.2)
    hypernet_hidden: int = 100  # MetaGrad 1->h->1 hypernetwork width h (ALGORITHMS §4.3)

    def pass_named(self, name: str) -> PassDecl:
        for p in self.passes:
            if p.name == name:
                return p
        raise KeyError(name)


_F = PassDecl("forward", "forward")
_L = PassDecl("loss", "loss")
_BD = PassDecl("backward_data", "backward_data")
_BW = PassDecl("backward_weight", "backward_weight")
_GQ = PassDecl("grad_quant", "grad_quant")
_SGD = PassDecl("update", "update", optimizer="sgd_momentum")
_LAQ_UPDATE = PassDecl("update", "update", optimizer="laq_adam_projection")
_BACKWARD = (_L, _BD, _BW, _GQ)


def _train_passes(algo: str) -> tuple[PassDecl, ...]:
    if algo == "sgd":
        # quantized SGD with momentum on fp32 master weights, min-max gradient intervals
        return (_F, *_BACKWARD, _SGD)
    if algo == "laq":
        # Adam + alternating projection onto the weight grid (ALGORITHMS §1.2-1.3)
        return (_F, *_BACKWARD, _LAQ_UPDATE)
    if algo == "fb":
        # one-step forward and backtrack (ALGORITHMS §2.2): a trial step on the same batch
        # from a scratch optimizer state, blend of both gradients, then the real update
        trial = (
            PassDecl("fb_trial_update", "update", optimizer="laq_adam_projection",
                     scratch=True),
            PassDecl("fb_trial_forward", "forward", weights="trial"),
            PassDecl("fb_trial_loss", "loss", weights="trial"),
            PassDecl("fb_trial_backward_data", "backward_data", weights="trial"),
            PassDecl("fb_trial_backward_weight", "backward_weight", weights="trial"),
            PassDecl("fb_trial_grad_quant", "grad_quant", weights="trial"),
        )
        return (_F, *_BACKWARD, *trial, PassDecl("fb_blend", "blend"), _LAQ_UPDATE)
    if algo == "lbt":
        # interval update: compare-and-count over dY per layer (ALGORITHMS §3.4)
        return (_F, *_BACKWARD, PassDecl("lbt_interval", "lbt_interval"), _SGD)
    if algo == "bnrect":
        # rectification penalty on gamma/sigma: O(C) per BN layer (ALGORITHMS §5)
        return (_F, *_BACKWARD, PassDecl("bn_rectify", "bn_rectify"), _SGD)
    if algo == "metagrad":
        # coordinate-wise hypernetwork over every weight gradient (ALGORITHMS §4.2-4.3)
        return (_F, *_BACKWARD, PassDecl("hypernet", "hypernet"), _SGD)
    if algo == "octo":
        # LAC compensation layer, PRC clipping + backward re-quantization (ALGORITHMS §6)
        return (
            PassDecl("forward", "forward", lac=True), _L,
            PassDecl("backward_data", "backward_data", lac=True), _BW, _GQ,
            PassDecl("octo_requant", "octo_requant"),
            PassDecl("update", "update", optimizer="adam", lac=True),
        )
    raise AssertionError(algo)


def recipe_for(algo: str, phase: str, *, projection_rounds: int = 5,
               hypernet_hidden: int = 100) -> Recipe:
    """The recipe of ``algo`` (one of :data:`ALGORITHMS`) for ``phase`` (``infer``/``train``).

    ``infer`` is the forward pass alone (Octo keeps its compensation layer: it is part of the
    trained model). Raises :class:`ConfigError` (``command line``, ``algo``/``phase``) for an
    unknown name and ValueError for non-positive knobs.
    """
    if algo not in ALGORITHMS:
        raise ConfigError("command line", "algo",
                          f"expected one of {', '.join(ALGORITHMS)}, got {algo!r}")
    if phase not in ("infer", "train"):
        raise ConfigError("command line", "phase", f"expected infer or train, got {phase!r}")
    if projection_rounds < 1:
        raise ValueError(f"projection_rounds must be >= 1, got {projection_rounds}")
    if hypernet_hidden < 1:
        raise ValueError(f"hypernet_hidden must be >= 1, got {hypernet_hidden}")
    if phase == "infer":
        passes: tuple[PassDecl, ...] = (PassDecl("forward", "forward", lac=algo == "octo"),)
    else:
        passes = _train_passes(algo)
    return Recipe(algo=algo, phase=phase, passes=passes,  # type: ignore[arg-type]
                  projection_rounds=projection_rounds, hypernet_hidden=hypernet_hidden)
