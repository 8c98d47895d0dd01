"""The project's shared vocabulary, written once and imported by config, both planes and
the reports (plain data, no heavy imports; imports nothing from fxpsim).

* rounding names, their hardware aliases and the hwconfig requantizer's names;
* training algorithm names (the recipes are in :mod:`fxpsim.recipes`, the classes in
  :mod:`fxpsim.training.algorithms`);
* pass kinds of a step and the vector-op kinds the value plane records;
* the GEMM shape of every pass of a conv / linear layer.

``fxpsim.fixedpoint.modes`` re-exports the rounding names as ``ROUNDING_MODES`` (its kernel
ids index into them), so run options can be validated without importing Numba.
"""

from __future__ import annotations

from typing import Literal, get_args

# Canonical rounding names accepted by run options (``rounding.w=...``); the order is the
# kernels' mode ids (``fxpsim.fixedpoint.modes``, where the semantics are documented).
ROUNDING_CANONICAL: tuple[str, ...] = (
    "floor",
    "ceil",
    "trunc",
    "away",
    "half_up",
    "half_down",
    "half_zero",
    "half_away",
    "half_even",
    "half_odd",
    "jam",
    "jam_unbiased",
    "stochastic",
    "stochastic_equal",
)

# Hardware-style short names (HWCONFIG ``requantizer.rounding_modes``) -> canonical name.
ROUNDING_ALIASES: dict[str, str] = {"rne": "half_even", "rna": "half_away", "rtz": "trunc"}

# Every name a user may write: canonical names first, then the aliases.
ROUNDING_NAMES: tuple[str, ...] = ROUNDING_CANONICAL + tuple(ROUNDING_ALIASES)


def canonical_rounding(name: str) -> str:
    """``"rne"`` -> ``"half_even"``; canonical names map to themselves.

    Raises ``ValueError`` naming the valid choices for an unknown name.
    """
    if name in ROUNDING_ALIASES:
        return ROUNDING_ALIASES[name]
    if name in ROUNDING_CANONICAL:
        return name
    from fxpsim.suggest import did_you_mean

    raise ValueError(f"unknown rounding {name!r} (valid: {', '.join(ROUNDING_NAMES)})"
                     f"{did_you_mean(name, ROUNDING_NAMES)}")


# hwconfig ``mac_array.requantizer.rounding_modes`` names -> canonical rounding names
HW_ROUNDING: dict[str, str] = {"rne": "half_even", "rna": "half_away", "rtz": "trunc",
                               "floor": "floor", "ceil": "ceil", "stochastic": "stochastic"}


def hw_rounding_name(name: str) -> str | None:
    """The hwconfig name of a rounding (``half_even`` -> ``rne``), None if it has none."""
    canon = canonical_rounding(name)
    return next((hw for hw, c in HW_ROUNDING.items() if c == canon), None)


def is_stochastic(name: str) -> bool:
    """True for the rounding modes that draw random bits (``sr`` is the energy tables'
    short name for them)."""
    return name.lower() in ("stochastic", "stochastic_equal", "sr")


# ---- training algorithms, passes, vector ops ------------------------------------------------

#: training algorithm names (run option ``algo``), in the order reports list them
AlgoName = Literal["sgd", "laq", "fb", "lbt", "bnrect", "metagrad", "octo"]
ALGORITHMS: tuple[str, ...] = get_args(AlgoName)

#: pass kinds a recipe is made of (see :mod:`fxpsim.recipes`)
PassKind = Literal[
    "forward", "loss", "backward_data", "backward_weight", "grad_quant", "lbt_interval",
    "octo_requant", "bn_rectify", "hypernet", "blend", "update",
]
PASS_KINDS: tuple[str, ...] = get_args(PassKind)
#: pass kinds lowered in reverse graph order (the rest run in graph order)
REVERSE_KINDS: frozenset[str] = frozenset(
    {"backward_data", "backward_weight", "grad_quant", "lbt_interval", "octo_requant"}
)
#: the three GEMM passes of a conv / linear layer
GEMM_PASSES: tuple[str, ...] = ("forward", "backward_data", "backward_weight")

#: fp32 vector-unit ops of the IR whose forward keeps the op's name as its vector kind
VECTOR_FORWARD: frozenset[str] = frozenset(
    {"relu", "relu6", "maxpool", "avgpool", "global_avgpool", "add"})
#: IR op -> vector kind of its backward (``add`` routes gradients: no op)
VECTOR_BACKWARD: dict[str, str] = {
    "relu": "relu_bwd", "relu6": "relu6_bwd", "maxpool": "maxpool_bwd",
    "avgpool": "avgpool_bwd", "global_avgpool": "global_avgpool_bwd"}
#: every vector-op kind of the time plane's lowering; the value plane's vector unit
#: (:mod:`fxpsim.training.vector_unit`) records only these
VectorKind = Literal[
    # forward-side IR ops and their training statistics / inference form
    "relu", "relu6", "maxpool", "avgpool", "global_avgpool", "add",
    "batchnorm_fwd", "batchnorm_stats", "batchnorm_infer",
    # backward-side
    "relu_bwd", "relu6_bwd", "maxpool_bwd", "avgpool_bwd", "global_avgpool_bwd",
    "batchnorm_bwd", "batchnorm_bwd_stats", "grad_add", "bias_grad",
    # dynamic-range quantization, loss
    "reduce_max", "quantize", "softmax_xent",
    # algorithm passes
    "lbt_count", "prc_clip", "prc_quantize", "lac_fwd", "lac_bwd", "bn_rectify",
    "hypernet_fwd", "hypernet_bwd", "blend", "sgd_update", "adam_update", "laq_projection",
    # learned forward clips (LBT's protocol): their STE gradients and Adam step
    "scale_grad", "scale_update",
]
VECTOR_KINDS: frozenset[str] = frozenset(get_args(VectorKind))
#: IR ops the value plane runs on the vector unit (``flatten`` is a view, never recorded)
VECTOR_OPS: tuple[str, ...] = ("batchnorm", "relu", "relu6", "maxpool", "avgpool",
                               "global_avgpool", "add", "flatten")


# ---- GEMM shapes per pass -------------------------------------------------------------------

def conv_gemm_shape(which: str, batch: int, in_chw: tuple[int, int, int],
                    out_khw: tuple[int, int, int], kernel: tuple[int, int], groups: int
                    ) -> tuple[int, int, int, int]:
    """``(m, k, n, groups)`` of one group's GEMM of a conv pass (a pass runs ``groups``):
    forward ``(B·OH·OW, Cg·kh·kw, Kg)``, backward-data ``(B·H·W, Kg·kh·kw, Cg)`` (a stride-1
    correlation of the zero-dilated dY, one accumulator per dX element), backward-weight
    ``(Cg·kh·kw, B·OH·OW, Kg)``."""
    c, h, w = in_chw
    k_out, oh, ow = out_khw
    kh, kw = kernel
    cg, kg = c // groups, k_out // groups
    if which == "forward":
        return batch * oh * ow, cg * kh * kw, kg, groups
    if which == "backward_data":
        return batch * h * w, kg * kh * kw, cg, groups
    if which == "backward_weight":
        return cg * kh * kw, batch * oh * ow, kg, groups
    raise ValueError(f"which: expected one of {', '.join(GEMM_PASSES)}, got {which!r}")


def linear_gemm_shape(which: str, batch: int, fin: int, fout: int
                      ) -> tuple[int, int, int, int]:
    """``(m, k, n, 1)`` of a linear pass: forward ``(B, in, out)``, backward-data
    ``(B, out, in)``, backward-weight ``(in, B, out)``."""
    if which == "forward":
        return batch, fin, fout, 1
    if which == "backward_data":
        return batch, fout, fin, 1
    if which == "backward_weight":
        return fin, batch, fout, 1
    raise ValueError(f"which: expected one of {', '.join(GEMM_PASSES)}, got {which!r}")
