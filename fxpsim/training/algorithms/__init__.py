"""Training algorithms of the value plane (docs/algorithms.md), one module each.

``ALGORITHMS`` maps the RunConfig ``algo`` names to classes; :func:`make_algorithm` builds
one around a QNet. :data:`GRAD_INTERVAL` is the gradient-clip policy each algorithm needs
in the :class:`~fxpsim.training.formats.NumericsConfig`.
"""

from __future__ import annotations

from fxpsim.training.algorithms.base import Algorithm, AlgorithmBase, Batch, StepStats
from fxpsim.training.algorithms.bnrect import BnRectAlgorithm
from fxpsim.training.algorithms.fb import FbAlgorithm
from fxpsim.training.algorithms.laq import LaqAlgorithm
from fxpsim.training.algorithms.lbt import LbtAlgorithm
from fxpsim.training.algorithms.metagrad import MetaGradAlgorithm
from fxpsim.training.algorithms.octo import OctoAlgorithm
from fxpsim.training.algorithms.options import AlgoOptions, options_from_run
from fxpsim.training.algorithms.sgd import SgdAlgorithm

ALGORITHMS: dict[str, type[AlgorithmBase]] = {
    "sgd": SgdAlgorithm,
    "laq": LaqAlgorithm,
    "fb": FbAlgorithm,
    "lbt": LbtAlgorithm,
    "bnrect": BnRectAlgorithm,
    "metagrad": MetaGradAlgorithm,
    "octo": OctoAlgorithm,
}

GRAD_INTERVAL: dict[str, str] = {name: "minmax" for name in ALGORITHMS} | {
    "lbt": "lbt", "octo": "prc"}


def make_algorithm(name: str, net: object, graph: object, options: AlgoOptions, *,
                   seed: int) -> AlgorithmBase:
    """An algorithm ``name`` (a key of :data:`ALGORITHMS`) driving ``net``."""
    if name not in ALGORITHMS:
        raise ValueError(f"name: expected one of {', '.join(ALGORITHMS)}, got {name!r}")
    return ALGORITHMS[name](net, graph, options, seed=seed)  # type: ignore[arg-type]


__all__ = [
    "ALGORITHMS", "GRAD_INTERVAL", "AlgoOptions", "Algorithm", "AlgorithmBase", "Batch",
    "StepStats", "make_algorithm", "options_from_run",
]
