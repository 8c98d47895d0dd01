"""``phase=infer checkpoint=FILE``: the bit-exact test accuracy of a trained network.

The checkpoint's network (:mod:`fxpsim.training.checkpoint`) is rebuilt with the run's
forward numerics (weight/activation bits and roundings, per-layer formats), which must
equal the ones it was trained with, and evaluated in eval mode on the
test subset through the same integer GEMMs as training's final evaluation. The activation
scale is per batch tensor (max|x| of the batch), so the accuracy depends on how the test set
is batched: evaluation uses the training run's batch size (stored in the checkpoint) and the
test subset of the checkpoint's seed (``seed=`` chooses another) and of ``eval_samples=``.
With those equal to the training run's, the accuracy equals its final test accuracy exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import torch

from fxpsim.errors import FxpsimError
from fxpsim.graph.ir import Graph

if TYPE_CHECKING:
    from fxpsim.config.hw import HwConfig
    from fxpsim.config.run import RunConfig


@dataclass(frozen=True)
class InferResult:
    algo: str  # the algorithm the checkpoint was trained with
    checkpoint: str
    trained_steps: int
    dataset: str
    test_samples: int
    eval_batch: int
    test_loss: float
    test_accuracy: float

    def summary(self) -> dict[str, object]:
        return {"checkpoint": self.checkpoint, "algo": self.algo,
                "trained_steps": self.trained_steps, "dataset": self.dataset,
                "test_samples": self.test_samples, "eval_batch": self.eval_batch,
                "test_loss": float(f"{self.test_loss:.6g}"),
                "test_accuracy": float(f"{self.test_accuracy:.6g}")}


def evaluate_checkpoint(graph: Graph, hw: object, run: RunConfig) -> InferResult:
    """Load ``run.checkpoint`` into a QNet of ``graph`` and evaluate the test subset."""
    from fxpsim.training.algorithms import make_algorithm
    from fxpsim.training.algorithms.options import options_from_run
    from fxpsim.training.checkpoint import load_checkpoint
    from fxpsim.training.loop import (
        PROTOCOL_DEFAULTS,
        TEST_SAMPLES,
        _eval_samples,
        evaluate,
        load_for,
        numerics_echo,
        numerics_for,
    )
    from fxpsim.training.qnet import build_qnet

    path = str(run.checkpoint)
    ck = load_checkpoint(path)
    if ck.model != graph.name:
        raise FxpsimError(f"{path}: checkpoint of model {ck.model}, run has model={graph.name}")
    mine = numerics_echo(run)
    forward = ("w_bits", "a_bits", "rounding_w", "rounding_a", "layer_formats", "float_ends",
               "forward_scales", "a_codes")
    had = {k: ck.numerics.get(k, PROTOCOL_DEFAULTS.get(k)) for k in forward}
    diff = [f"{k}={had[k]} (run: {mine[k]})" for k in forward if had[k] != mine[k]]
    if diff:
        raise FxpsimError(f"{path}: trained with other formats: {', '.join(diff)}; pass the "
                          "same formats to evaluate it")
    seed = run.seed if "seed" in run.model_fields_set else ck.seed
    hw_config = cast("HwConfig", getattr(hw, "config", hw))
    data_run = run.model_copy(update={"seed": seed})
    ds = load_for(graph, data_run, None, _eval_samples(run, TEST_SAMPLES))
    net = build_qnet(graph, numerics_for(hw_config, run.model_copy(update={"algo": ck.algo})),
                     seed=seed)
    algo = make_algorithm(ck.algo, net, graph, options_from_run(run), seed=seed)
    try:
        net.load_state_dict(ck.state)
    except RuntimeError as exc:
        raise FxpsimError(f"{path}: does not fit model {graph.name}: "
                          f"{str(exc).splitlines()[0]}") from None
    batch = int(ck.eval_batch) if ck.eval_batch else int(run.batch)
    loss, acc = evaluate(algo, torch.from_numpy(ds.test_x), torch.from_numpy(ds.test_y), batch)
    return InferResult(ck.algo, path, ck.steps, ds.name, int(ds.test_x.shape[0]), batch,
                       loss, acc)
