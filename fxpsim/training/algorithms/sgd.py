"""Plain quantized SGD (recipe ``sgd``): momentum SGD on fp32 master weights; the QNet
re-quantizes them (min-max per tensor) at every forward and quantizes dY with the run's
gradient format (docs/algorithms.md §0, "plain FQT")."""

from __future__ import annotations

from fxpsim.training.algorithms.base import AlgorithmBase


class SgdAlgorithm(AlgorithmBase):
    name = "sgd"
