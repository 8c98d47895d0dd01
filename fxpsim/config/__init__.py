"""Accelerator configs (``hwconfigs/*.yaml``, SCALE-Sim ``.cfg``) and run options.

Public API: :func:`load_hwconfig` -> :class:`LoadedHw` (validated :class:`HwConfig`, source,
digest); :func:`apply_overrides` for dotted ``key=value`` overrides; :class:`RunConfig` and
:func:`parse_run_options` for the CLI. Imports pydantic and PyYAML only (no torch/numba).
"""

from fxpsim.config.hw import HwConfig
from fxpsim.config.load import LoadedHw, config_digest, load_hwconfig
from fxpsim.config.overrides import apply_overrides
from fxpsim.config.run import RunConfig, parse_run_options
from fxpsim.vocab import ROUNDING_NAMES

__all__ = [
    "HwConfig",
    "LoadedHw",
    "ROUNDING_NAMES",
    "RunConfig",
    "apply_overrides",
    "config_digest",
    "load_hwconfig",
    "parse_run_options",
]
