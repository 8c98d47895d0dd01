"""fxpsim: bit-exact fixed-point DNN accelerator simulator (cycles, energy, accuracy)."""

__version__ = "0.1.0"


def sweep(*args, **kwargs):  # type: ignore[no-untyped-def]
    """Run a design-space sweep and return a pandas DataFrame; see
    :func:`fxpsim.sweeps.cli.sweep` (imported lazily: ``import fxpsim`` stays light)."""
    from fxpsim.sweeps.cli import sweep as _sweep

    return _sweep(*args, **kwargs)
