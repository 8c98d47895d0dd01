"""The training-algorithm protocol and the shared step machinery.

An algorithm owns the optimizer state of a :class:`~fxpsim.training.qnet.QNet` and executes,
per :meth:`Algorithm.step`, exactly the passes of its recipe
(:func:`fxpsim.recipes.recipe_for`): forward / loss / backward_data /
backward_weight / grad_quant run inside the QNet (torch autograd over the integer GEMMs),
the algorithm's own passes (update, blend, trial step, LBT interval, BN rectification,
hypernetwork) run here. Every op is logged in :attr:`Algorithm.log`
(:class:`~fxpsim.training.algorithms.execlog.ExecLog`) under its recipe pass name, by the code
that executes it: vector work through :mod:`fxpsim.training.vector_unit` (which records what
it ran), the QNet's records drained after each segment.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any, Protocol

import numpy as np
import torch

from fxpsim.graph.ir import Graph
from fxpsim.recipes import Recipe, recipe_for
from fxpsim.training import vector_unit as vu
from fxpsim.training.algorithms.execlog import MAIN_PASSES, ExecLog, PassNames
from fxpsim.training.algorithms.optim import Adam, ParamGroup, SgdMomentum
from fxpsim.training.algorithms.options import AlgoOptions
from fxpsim.training.qnet import QuantizedNet
from fxpsim.training.quantizers import quantize_symmetric
from fxpsim.training.stats import LayerStats


@dataclass(frozen=True)
class Batch:
    """A mini-batch (``x`` float32 NCHW, ``y`` int64); ``next_*`` is the following batch,
    used by forward-and-backtrack with ``trial_batch = next``."""

    x: torch.Tensor
    y: torch.Tensor
    next_x: torch.Tensor | None = None
    next_y: torch.Tensor | None = None


@dataclass(frozen=True)
class StepStats:
    """``loss``: mean cross-entropy of the batch at the weights before the update;
    ``correct``/``count``: top-1 hits and samples; ``penalty``: the algorithm's regularizer
    (BN rectification, Octo's L2) — added to the gradients, not to ``loss``."""

    loss: float
    correct: int
    count: int
    penalty: float = 0.0


class Algorithm(Protocol):
    name: str
    recipe: Recipe
    log: ExecLog

    def prepare(self, batch: Batch) -> None: ...

    def step(self, batch: Batch) -> StepStats: ...

    def predict(self, x: torch.Tensor) -> torch.Tensor: ...

    def probe(self, x: torch.Tensor, y: torch.Tensor
              ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor] | None]: ...

    def weight_codes(self) -> dict[str, np.ndarray]: ...

    def update_grads(self) -> dict[str, torch.Tensor]: ...

    def weight_views(self) -> dict[str, tuple[torch.Tensor, torch.Tensor | None]]: ...


def _grad(p: torch.Tensor) -> torch.Tensor:
    assert p.grad is not None  # every parameter is in the loss graph
    return p.grad


def _key(name: str) -> str:
    return name.replace(".", "_")


def param_groups(net: QuantizedNet, graph: Graph) -> list[ParamGroup]:
    """One :class:`ParamGroup` per graph node with parameters, in graph order."""
    groups: list[ParamGroup] = []
    for node in graph.nodes:
        if node.params == 0:
            continue
        mod: Any = net.layers[_key(node.name)]  # a GEMM layer, its wrapper, or a BN node
        ps: list[torch.nn.Parameter]
        if node.is_gemm:
            ps = [mod.weight] + ([mod.bias] if mod.bias is not None else [])
        elif node.op == "batchnorm":
            ps = [mod.bn.weight, mod.bn.bias]
        else:
            raise ValueError(f"graph: node {node.name!r} ({node.op}) has parameters the "
                             "training plane does not know")
        if sum(p.numel() for p in ps) != node.params:
            raise AssertionError(f"{node.name}: {node.params} params in the IR, "
                                 f"{sum(p.numel() for p in ps)} in the QNet")
        groups.append(ParamGroup(node.name, ps, node.is_gemm))
    return groups


class AlgorithmBase:
    """Quantized SGD with momentum (recipe ``sgd``); subclasses add passes.

    ``step``: forward, loss, backward (QNet) -> :meth:`after_backward` (extra passes in
    recipe order) -> :meth:`update`.
    """

    name = "sgd"
    weights_from_projection = False
    prc = False

    def __init__(self, net: QuantizedNet, graph: Graph, options: AlgoOptions, *,
                 seed: int) -> None:
        self.net, self.graph, self.options, self.seed = net, graph, options, int(seed)
        self.recipe = recipe_for(self.name, "train", projection_rounds=options.laq_rounds,
                                 hypernet_hidden=options.metagrad_hidden)
        self.log = ExecLog(graph, weights_from_projection=self.weights_from_projection,
                           prc=self.prc)
        self.groups = param_groups(net, graph)
        self.lr = options.lr_for(self.name)
        self.step_index = 0
        self._last_grads: dict[str, torch.Tensor] = {}
        #: per-method series logged per step: name -> [(step, value)] (summary.json)
        self.method_log: dict[str, list[tuple[int, float]]] = {}
        self.init_optimizer()
        # learned forward clips (forward_scales=learned): their own Adam, as LBT's q_optimizer
        self.scale_adam = Adam(options.fwd_scale_lr)
        self._clips = [(g.node, c) for g in self.groups if g.is_gemm and (
            c := getattr(net.layers[_key(g.node)], "clips", None)) is not None]

    def log_value(self, name: str, value: float) -> None:
        """Record ``value`` of series ``name`` at the current step (per-method logs)."""
        self.method_log.setdefault(name, []).append((self.step_index, float(value)))

    def set_lr_factor(self, factor: float) -> None:
        """Scale the learning rate of the main optimizer(s) to ``factor``·lr (schedules)."""
        for attr in ("sgd", "adam"):
            opt = getattr(self, attr, None)
            if opt is not None:
                opt.lr = self.lr * factor
        self.scale_adam.lr = self.options.fwd_scale_lr * factor

    # ---- hooks for subclasses ----------------------------------------------------------
    def init_optimizer(self) -> None:
        o = self.options
        self.sgd = SgdMomentum(self.lr, o.momentum, o.weight_decay)

    def after_backward(self, batch: Batch) -> float:
        """Passes between grad_quant and update; returns the penalty value (if any)."""
        return 0.0

    def update(self) -> None:
        for grp in self.groups:
            vu.update(self.log, grp.node, "update", "sgd_update", self.sgd.step, grp.params,
                      [_grad(p) for p in grp.params])

    def update_scales(self) -> None:
        """Adam step of each layer's learned forward clips (s_W, u_A) with their STE
        gradients (:mod:`fxpsim.training.fwdscales`); logged as ``fwd_scale_w/a.<layer>``."""
        for node, clips in self._clips:
            g = clips.grad if clips.grad is not None else torch.zeros_like(clips)
            vu.update(self.log, node, "update", "scale_update", self.scale_adam.step, [clips],
                      [g])
            sw, sa = clips.detach().abs().tolist()
            self.log_value(f"fwd_scale_w.{node}", sw)
            self.log_value(f"fwd_scale_a.{node}", sa)

    def prepare(self, batch: Batch) -> None:
        """One-time work before the first step (default: nothing)."""

    # ---- shared machinery --------------------------------------------------------------
    def forward_backward(self, x: torch.Tensor, y: torch.Tensor,
                         names: PassNames = MAIN_PASSES, loss_pass: str = "loss",
                         ) -> tuple[float, int]:
        """Forward, softmax cross-entropy, backward; leaves ``.grad`` on every parameter
        and drains the QNet's records into the log under ``names``."""
        for p in self.net.parameters():
            p.grad = None
        logits = self.net(x)
        loss = vu.softmax_xent(self.log, self.graph.nodes[-1].name, loss_pass, logits, y)
        loss.backward()
        self.log.drain(self.net.counters, names)
        correct = int((logits.detach().argmax(dim=1) == y).sum())
        return float(loss.detach()), correct

    def step(self, batch: Batch) -> StepStats:
        """One training step on ``batch`` following :attr:`recipe`."""
        self.log.clear()
        self.net.train()
        self.net.begin_step(self.step_index)
        loss, correct = self.forward_backward(batch.x, batch.y)
        penalty = self.after_backward(batch)
        self._last_grads = {g.node: _grad(g.weight).detach().reshape(-1)
                            for g in self.groups if g.is_gemm}
        self.update()
        self.update_scales()
        self.step_index += 1
        return StepStats(loss, correct, int(batch.x.shape[0]), penalty)

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Logits in eval mode (BN running statistics); nothing is logged or sampled."""
        self.net.eval()
        stats = self.net.stats_config
        sampling, stats.enabled = stats.enabled, False  # SQNR statistics are training's
        try:
            out = self.net(x)
        finally:
            stats.enabled = sampling
            self.net.counters.reset()
            self.net.train()
        return out

    # ---- measurement (never part of a recipe step) -------------------------------------------
    def _bn_modules(self) -> list[torch.nn.modules.batchnorm._BatchNorm]:
        return [m for m in self.net.modules()
                if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]

    @contextmanager
    def quiet(self, restore_bn: bool = True) -> Iterator[None]:
        """Run extra forward/backward passes that leave no trace on the run: their ops go to
        a scratch log, their stochastic rounding to fresh RNG streams (the training streams
        are not advanced), their clip counts to scratch statistics, LBT's observer is off,
        BN running statistics are restored (unless ``restore_bn`` is False) and every
        ``.grad`` is cleared afterwards."""
        from fxpsim.training.algorithms.execlog import ExecLog

        net = self.net
        saved_log, self.log = self.log, ExecLog(self.graph)
        rngs, net._rngs = net._rngs, {}  # type: ignore[attr-defined]
        rts = net.runtimes  # type: ignore[attr-defined]
        stats = {n: (rt.stats, rt.grad_observer) for n, rt in rts.items()}
        for n, rt in rts.items():
            rt.stats, rt.grad_observer = LayerStats(n), None
        cfg = net.stats_config
        enabled, cfg.enabled = cfg.enabled, False
        bn = [(b, b.detach().clone()) for m in self._bn_modules() for b in m.buffers()]
        try:
            yield
        finally:
            self.log = saved_log
            net._rngs = rngs  # type: ignore[attr-defined]
            for n, rt in rts.items():
                rt.stats, rt.grad_observer = stats[n]
            cfg.enabled = enabled
            if restore_bn:
                with torch.no_grad():
                    for buf, copy in bn:
                        buf.copy_(copy)
            for p in self.net.parameters():
                p.grad = None
            net.counters.reset()
            self.net.train()

    def _gemm_grads(self) -> dict[str, torch.Tensor]:
        return {g.node: g.weight.grad.detach().reshape(-1).clone() for g in self.groups
                if g.is_gemm and g.weight.grad is not None}

    def probe(self, x: torch.Tensor, y: torch.Tensor
              ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor] | None]:
        """Weight gradients on the probe batch at the current weights (the zig-zag metric):
        (raw gradient, the gradient the algorithm's update would blend, or None)."""
        with self.quiet():
            self.net.train()
            self.forward_backward(x, y)
            return self._gemm_grads(), None

    @torch.no_grad()
    def recalibrate_bn(self, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        """Re-estimate every BN layer's running statistics as the plain average over
        ``batches`` (train-mode forwards, no update) before an evaluation."""
        bns = self._bn_modules()
        if not bns or not batches:
            return
        moms = [m.momentum for m in bns]
        for m in bns:
            m.reset_running_stats()
            m.momentum = None  # cumulative average
        try:
            with self.quiet(restore_bn=False):
                for bx, _ in batches:
                    self.net(bx)
        finally:
            for m, mom in zip(bns, moms, strict=True):
                m.momentum = mom

    def weight_codes(self) -> dict[str, np.ndarray]:
        """Per GEMM layer with quantized weights: the integer codes of the current weights
        as the QNet's forward quantizes them (rounding to nearest when the weight rounding is
        stochastic), flattened."""
        out: dict[str, np.ndarray] = {}
        for g in self.groups:
            if not g.is_gemm:
                continue
            tn = self.net.runtimes[g.node].numerics.weights  # type: ignore[attr-defined]
            if tn.is_float:
                continue
            if tn.stochastic:
                tn = replace(tn, rounding="half_even")
            q = quantize_symmetric(g.weight.detach(), tn,
                                   per_channel=tn.granularity == "per_channel")
            out[g.node] = q.codes.numpy().reshape(-1).copy()
        return out

    def update_grads(self) -> dict[str, torch.Tensor]:
        """Per GEMM layer, the (flattened) weight gradient the last update used."""
        return self._last_grads

    def weight_views(self) -> dict[str, tuple[torch.Tensor, torch.Tensor | None]]:
        """Per GEMM layer: (master fp32 weights, quantized weights or None if the QNet
        quantizes them itself), flattened."""
        return {g.node: (g.weight.detach().reshape(-1), None) for g in self.groups
                if g.is_gemm}

