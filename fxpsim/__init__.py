"""fxpsim: bit-exact fixed-point DNN accelerator simulator (cycles, energy, accuracy).

``fxpsim.run(...)``, ``fxpsim.compare(...)`` and ``fxpsim.sweep(...)`` are the notebook API
(:mod:`fxpsim.notebook`, :mod:`fxpsim.sweeps`); they are loaded on first use so
``import fxpsim`` stays light.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["Result", "__version__", "compare", "run", "sweep"]


def __getattr__(name: str) -> Any:
    if name in ("run", "Result"):
        from fxpsim import notebook

        return getattr(notebook, name)
    if name == "compare":  # the module fxpsim.compare is callable (see its end)
        import importlib

        return importlib.import_module("fxpsim.compare")
    raise AttributeError(f"module 'fxpsim' has no attribute {name!r}")


def sweep(*args: Any, **kwargs: Any) -> Any:
    """Run a design-space sweep and return a pandas DataFrame; see
    :func:`fxpsim.sweeps.cli.sweep` (imported lazily: ``import fxpsim`` stays light)."""
    from fxpsim.sweeps.cli import sweep as _sweep

    return _sweep(*args, **kwargs)
