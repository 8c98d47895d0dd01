"""fxpsim: bit-exact fixed-point DNN accelerator simulator (cycles, energy, accuracy).

``fxpsim.run(...)`` and ``fxpsim.compare(...)`` are the notebook API
(:mod:`fxpsim.notebook`); they are loaded on first use so ``import fxpsim`` stays light.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["Result", "__version__", "compare", "run"]


def __getattr__(name: str) -> Any:
    if name in ("run", "Result"):
        from fxpsim import notebook

        return getattr(notebook, name)
    if name == "compare":  # the module fxpsim.compare is callable (see its end)
        import importlib

        return importlib.import_module("fxpsim.compare")
    raise AttributeError(f"module 'fxpsim' has no attribute {name!r}")
