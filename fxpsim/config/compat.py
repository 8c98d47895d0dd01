"""Run options checked against the accelerator they run on.

Rounding: every ``rounding.*`` option names a rounding the hardware performs, so it must be
one the requantizer lists (``mac_array.requantizer.rounding_modes``, hwconfig names
:data:`fxpsim.vocab.HW_ROUNDING`), and ``stochastic`` needs the hardware RNG
(``mac_array.stochastic_rounding.hardware: true``). Errors name the option and the key.
"""

from __future__ import annotations

from fxpsim.config.hw import HwConfig
from fxpsim.errors import ConfigError
from fxpsim.vocab import HW_ROUNDING, canonical_rounding, hw_rounding_name

ROUNDING_OPTIONS: tuple[str, ...] = ("rounding.w", "rounding.a", "rounding.g")


def check_rounding(option: str, name: str, hw: HwConfig, source: str) -> None:
    """ConfigError (source ``command line``, key ``option``) when ``hw`` cannot round with
    ``name`` (a canonical, alias or hwconfig rounding name)."""
    req = hw.mac_array.requantizer
    canon = canonical_rounding(HW_ROUNDING.get(name, name))
    if hw_rounding_name(canon) not in req.rounding_modes:
        raise ConfigError("command line", option,
                          f"{canon} is not a rounding mode of the requantizer ({source}: "
                          f"mac_array.requantizer.rounding_modes = "
                          f"[{', '.join(req.rounding_modes)}])")
    if canon == "stochastic" and not hw.mac_array.stochastic_rounding.hardware:
        raise ConfigError("command line", option,
                          f"stochastic rounding needs a hardware RNG ({source}: "
                          "mac_array.stochastic_rounding.hardware is false)")


def check_roundings(roundings: tuple[str, str, str], hw: HwConfig, source: str) -> None:
    """:func:`check_rounding` for (rounding.w, rounding.a, rounding.g)."""
    for option, name in zip(ROUNDING_OPTIONS, roundings, strict=True):
        check_rounding(option, name, hw, source)
