"""Plain name lists shared by the config layer and the numeric core (no heavy imports).

``fxpsim.fixedpoint.modes`` re-exports these as ``ROUNDING_MODES`` (its kernel ids index
into them), so run options can be validated without importing Numba.
"""

from __future__ import annotations

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

# Hardware-style short names (hwconfig ``requantizer.rounding_modes``) -> canonical name.
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
