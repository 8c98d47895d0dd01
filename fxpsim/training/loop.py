"""The training loop: RunConfig + graph + HwConfig -> :class:`TrainResult`.

``train(graph, hw, run)`` loads the run's dataset (adapted to the graph's input shape: grey
images replicated over channels and zero-padded), builds the QNet with the run's numerics
(:meth:`NumericsConfig.from_hw`, gradient-interval policy per algorithm), runs the
algorithm's recipe step by step, evaluates the test subset after every epoch and returns a
frozen :class:`~fxpsim.training.result.TrainResult`.

Budget (:func:`plan_budget`):

* ``steps`` and/or ``epochs`` given: epochs over the whole training split, stopping after
  ``steps`` steps if given (``epochs`` then defaults to as many as the steps need); the test
  split is capped at :data:`TEST_SAMPLES` (``eval_samples=`` sets the cap; 0 = all).
* neither: a budget scaled by the model's size so a default run stays short on a laptop:
  ``steps = clamp(DEFAULT_STEP_MACS // (3·MACs/sample·batch), MIN_STEPS, MAX_STEPS)``
  rounded up to :data:`DEFAULT_EPOCHS` epochs over a class-balanced subset of
  ``steps/epochs·batch`` training images; :data:`DEFAULT_TEST_SAMPLES` test images.

Training batches drop the last partial batch (every step has ``batch`` samples); epoch
``e`` shuffles with ``batches(seed=run.seed, epoch=e)``; a step's "next" batch (for
``fb.trial_batch=next``) is the following batch of the epoch, or the same batch at its end. Everything random derives from
``run.seed``; the same seed gives the same result bit for bit on the same machine and
thread count (integer GEMMs do not depend on threads; fp32 vector-unit ops — BN statistics,
the loss, optimizer sums — use torch CPU reductions, whose last bits may change with the
number of threads).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
import torch

from fxpsim.config.hw import HwConfig
from fxpsim.config.load import LoadedHw
from fxpsim.errors import FxpsimError
from fxpsim.graph.ir import Graph
from fxpsim.training.algorithms import GRAD_INTERVAL, Batch, make_algorithm
from fxpsim.training.algorithms.options import AlgoOptions, options_from_run
from fxpsim.training.data import Dataset, adapt, batches, load_dataset
from fxpsim.training.formats import NumericsConfig
from fxpsim.training.metrics import (
    CodeFlipTracker,
    ProbeZigZag,
    ZigZagTracker,
    macs_to_target,
    probe_steps,
    steps_to_target,
)
from fxpsim.training.qnet import build_qnet
from fxpsim.training.quantizers import NonFiniteError
from fxpsim.training.result import (
    Accuracy,
    EpochRecord,
    LayerTrainStats,
    OpCount,
    TrainResult,
)
from fxpsim.training.schedule import lr_factor

if TYPE_CHECKING:
    from fxpsim.config.run import RunConfig

DEFAULT_STEP_MACS = 1_800_000_000_000  # ~60 VGG16 steps at batch 32: under a minute on 2 cores
MIN_STEPS, MAX_STEPS = 30, 300
DEFAULT_EPOCHS = 2
DEFAULT_TEST_SAMPLES = 500
TEST_SAMPLES = 1000  # test images evaluated when the user sets steps/epochs
# zig-zag probe pairs per run by default (zigzag.probe_every=auto). Each probed step costs a
# full forward + backward on the probe batch: 50 pairs probed every step of runs under
# 150 steps and doubled their training work; 10 pairs cost 1/3 extra on the default run.
PROBE_PAIRS = 10


def probe_every_for(run: object, steps: int) -> int:
    """``zigzag.probe_every`` (0 = off), or by default a spacing giving about
    :data:`PROBE_PAIRS` consecutive-step pairs over the run."""
    every = getattr(run, "zigzag_probe_every", None)
    if every is not None:
        return int(every)
    return max(1, steps // PROBE_PAIRS)


@dataclass(frozen=True)
class TrainBudget:
    steps: int
    epochs: int
    limit_train: int | None  # None: the whole training split
    limit_test: int | None  # None = the whole test split


def _bits(v: int | str) -> int | None:
    return None if v == "float" else int(v)


def plan_budget(graph: Graph, run: RunConfig, train_size: int | None = None) -> TrainBudget:
    """The budget of ``run`` on ``graph`` (see the module docstring). ``train_size`` is the
    training split's size (needed when only ``epochs`` or ``steps`` is given)."""
    batch = int(run.batch)
    steps, epochs = run.steps, run.epochs
    if steps is None and epochs is None:
        per_step = max(3 * graph.macs * batch, 1)
        s = min(max(DEFAULT_STEP_MACS // per_step, MIN_STEPS), MAX_STEPS)
        per_epoch = math.ceil(s / DEFAULT_EPOCHS)
        return TrainBudget(per_epoch * DEFAULT_EPOCHS, DEFAULT_EPOCHS, per_epoch * batch,
                           _eval_samples(run, DEFAULT_TEST_SAMPLES))
    if train_size is None:
        raise ValueError("train_size: needed when run.steps or run.epochs is given")
    per_epoch = max(train_size // batch, 1)
    if steps is None:
        assert epochs is not None  # one of them is given (checked above)
        steps = epochs * per_epoch
    elif epochs is None:
        epochs = math.ceil(steps / per_epoch)
    return TrainBudget(min(steps, epochs * per_epoch), epochs, None,
                       _eval_samples(run, TEST_SAMPLES))


def _eval_samples(run: RunConfig, default: int | None) -> int | None:
    """``eval_samples=`` caps the test split (0 = the whole split); else ``default``."""
    n = getattr(run, "eval_samples", None)
    if n is None:
        return default
    return None if n == 0 else n


def numerics_for(hw: HwConfig, run: RunConfig, source: str = "hwconfig") -> NumericsConfig:
    """The QNet numerics of ``run`` on ``hw`` (gradient interval from the algorithm; Octo's
    backward re-quantization from ``octo.backward``)."""
    nc = NumericsConfig.from_hw(
        hw, w_bits=_bits(run.w_bits), a_bits=_bits(run.a_bits), g_bits=_bits(run.g_bits),
        rounding_w=run.rounding_w, rounding_a=run.rounding_a, rounding_g=run.rounding_g,
        grad_interval=GRAD_INTERVAL[run.algo],  # type: ignore[arg-type]
        source=source,
    )
    requant = run.algo == "octo" and getattr(run, "octo_backward", "requant") == "requant"
    gran = {"tensor": "per_tensor", "channel": "per_channel", "sample": "per_sample"}[
        getattr(run, "g_granularity", "tensor")]
    return replace(nc, bwd_requant=requant,
                   learned_scales=getattr(run, "forward_scales", "minmax") == "learned",
                   a_codes=getattr(run, "a_codes", "signed"),
                   gradients=replace(nc.gradients, granularity=gran))  # type: ignore[arg-type]


def load_for(graph: Graph, run: RunConfig, budget_limit_train: int | None,
             limit_test: int | None) -> Dataset:
    ds = load_dataset(run.dataset, data_dir=run.data_dir, seed=run.seed,
                      limit_train=budget_limit_train, limit_test=limit_test)
    if ds.num_classes != graph.num_classes:
        raise FxpsimError(f"dataset: {ds.name} has {ds.num_classes} classes but model "
                          f"{graph.name} outputs {graph.num_classes}")
    shape = tuple(graph.input_shape)
    if len(shape) != 3:
        raise FxpsimError(f"model: {graph.name} takes input {shape}; image datasets need "
                          "a (C, H, W) input")
    return ds if ds.input_shape == shape else adapt(ds, shape)


def _progress(enabled: bool, total: int):
    # a bar with elapsed/ETA on a terminal, plain log lines otherwise
    from fxpsim.progress import training_progress

    return training_progress(enabled, total)


def evaluate(algo: object, x: torch.Tensor, y: torch.Tensor, batch: int) -> tuple[float, float]:
    """(mean loss, accuracy) of the current weights in eval mode, in batches of ``batch``."""
    loss_sum, hits = 0.0, 0
    for i in range(0, x.shape[0], batch):
        logits = algo.predict(x[i:i + batch])  # type: ignore[attr-defined]
        yy = y[i:i + batch]
        loss_sum += float(torch.nn.functional.cross_entropy(logits, yy, reduction="sum"))
        hits += int((logits.argmax(dim=1) == yy).sum())
    n = max(int(x.shape[0]), 1)
    return loss_sum / n, hits / n


def train(graph: Graph, hw: HwConfig | LoadedHw, run: RunConfig, *, progress: bool = True,
          options: AlgoOptions | None = None, target_loss: float | None = None,
          dataset: Dataset | None = None, zigzag_window: int = 100,
          zigzag_samples: int = 1024) -> TrainResult:
    """Train ``graph`` on ``run.dataset`` with ``run.algo`` (see the module docstring).

    ``hw``: a HwConfig (or a LoadedHw, whose ``.config`` is used). ``options``: algorithm
    hyper-parameters (default: :func:`options_from_run`). ``target_loss``: report the steps
    until the 10-step trailing mean training loss reaches it. ``dataset``: use this dataset
    instead of loading ``run.dataset`` (tests). Raises FxpsimError for a dataset/model
    mismatch and for a graph the value plane cannot train.
    """
    source = hw.source if isinstance(hw, LoadedHw) else hw.name
    cfg = hw.config if isinstance(hw, LoadedHw) else hw
    t0 = time.perf_counter()
    if run.checkpoint:  # fail before training, not after it
        from fxpsim.training.checkpoint import check_target

        check_target(str(run.checkpoint))
    seed, bsz = int(run.seed), int(run.batch)
    opts = options if options is not None else options_from_run(run)
    if dataset is not None:
        ds = dataset if dataset.input_shape == tuple(graph.input_shape) else adapt(
            dataset, tuple(graph.input_shape))  # type: ignore[arg-type]
        budget = plan_budget(graph, run, ds.train_x.shape[0])
    elif run.steps is None and run.epochs is None:
        budget = plan_budget(graph, run)
        ds = load_for(graph, run, budget.limit_train, budget.limit_test)
    else:  # steps/epochs given: the whole training split
        ds = load_for(graph, run, None, _eval_samples(run, TEST_SAMPLES))
        budget = plan_budget(graph, run, ds.train_x.shape[0])
    net = build_qnet(graph, numerics_for(cfg, run, source), seed=seed)
    algo = make_algorithm(run.algo, net, graph, opts, seed=seed)
    schedule = run.lr_schedule
    warmup = int(run.warmup)
    recal = int(run.bn_recalibrate)
    net.stats_config.enabled = True
    net.stats_config.every = max(1, budget.steps // 8)
    gemms = [g for g in algo.groups if g.is_gemm]
    tracker = ZigZagTracker(
        {g.node: g.weight.numel() for g in gemms},
        {g.node: net.runtimes[g.node].numerics.weights.bits for g in gemms},
        window=zigzag_window, samples=zigzag_samples, seed=seed)
    flips, probe = CodeFlipTracker(), ProbeZigZag()
    flips.observe(algo.weight_codes())
    probe_at = probe_steps(probe_every_for(run, budget.steps), budget.steps)
    pidx = np.sort(np.random.default_rng((seed, 11)).choice(
        ds.train_x.shape[0], min(bsz, ds.train_x.shape[0]), replace=False))
    probe_x, probe_y = torch.from_numpy(ds.train_x[pidx]), torch.from_numpy(ds.train_y[pidx])
    cum_macs: list[int] = []
    test_x, test_y = torch.from_numpy(ds.test_x), torch.from_numpy(ds.test_y)
    n_train = ds.train_x.shape[0]
    drop = n_train >= bsz
    history: list[EpochRecord] = []
    losses: list[float] = []
    step = 0
    diverged: int | None = None
    prog = _progress(progress, budget.steps)
    try:
        for epoch in range(budget.epochs):
            if step >= budget.steps or diverged is not None:
                break
            it = [(torch.from_numpy(bx), torch.from_numpy(by)) for bx, by in
                  batches(ds.train_x, ds.train_y, bsz, seed=seed, epoch=epoch, drop_last=drop)]
            if epoch == 0 and it:
                algo.prepare(Batch(*it[0]))
            e_loss, e_hits, e_n = 0.0, 0, 0
            for i, (bx, by) in enumerate(it):
                if step >= budget.steps:
                    break
                nx, ny = it[i + 1] if i + 1 < len(it) else it[i]
                if schedule != "constant" or warmup:
                    algo.set_lr_factor(lr_factor(schedule, step, budget.steps, warmup))
                try:
                    if step in probe_at:
                        raw, blend = algo.probe(probe_x, probe_y)
                        probe.observe(step, "raw", raw)
                        if blend is not None:
                            probe.observe(step, "blend", blend)
                    st = algo.step(Batch(bx, by, nx, ny))
                except NonFiniteError:  # a quantizer met NaN/inf: the run diverged
                    diverged = step + 1
                    break
                if not (math.isfinite(st.loss) and algo_weights_finite(algo)):
                    diverged = step + 1
                    break
                codes = algo.weight_codes()
                flips.observe(codes)
                tracker.observe(algo.update_grads(), algo.weight_views(), codes)
                cum_macs.append(sum(algo.log.macs.values()))
                step += 1
                losses.append(st.loss)
                e_loss += st.loss * st.count
                e_hits += st.correct
                e_n += st.count
                if prog is not None:
                    prog.update(prog.task_ids[0], advance=1, loss=f"{st.loss:.3f}")
            if diverged is not None:
                break
            if recal:
                algo.recalibrate_bn(it[:recal])
            t_loss, t_acc = evaluate(algo, test_x, test_y, bsz)
            history.append(EpochRecord(epoch + 1, step, e_loss / max(e_n, 1),
                                       e_hits / max(e_n, 1), t_loss, t_acc))
    finally:
        if prog is not None:
            prog.stop()
    if getattr(run, "checkpoint", None) and diverged is None:
        from fxpsim.training.checkpoint import Checkpoint, save_checkpoint

        save_checkpoint(str(run.checkpoint), Checkpoint(
            str(run.algo), graph.name, numerics_echo(run), len(losses), seed,
            net.state_dict(), bsz))
    metrics = RunMetrics(tracker, probe, flips, cum_macs)
    return _result(run, graph, ds, budget, algo, net, history, losses, metrics, opts,
                   target_loss, time.perf_counter() - t0, diverged)


@dataclass(frozen=True)
class RunMetrics:
    tracker: ZigZagTracker
    probe: ProbeZigZag
    flips: CodeFlipTracker
    cum_macs: list[int]


def numerics_echo(run: object) -> dict[str, object]:
    """The formats a checkpoint records (and ``phase=infer`` checks against the run's)."""
    keys = ("w_bits", "a_bits", "g_bits", "rounding_w", "rounding_a", "rounding_g")
    out: dict[str, object] = {k: getattr(run, k) for k in keys}
    out["layer_formats"] = [list(x) for x in getattr(run, "layer_formats", ())]
    for k, default in PROTOCOL_DEFAULTS.items():
        out[k] = getattr(run, k, default)
    return out


#: run options added with LBT's protocol, with the values older checkpoints were trained with
PROTOCOL_DEFAULTS: dict[str, object] = {
    "forward_scales": "minmax", "a_codes": "signed", "float_ends": False,
    "g_granularity": "tensor"}


def algo_weights_finite(algo: object) -> bool:
    """Whether every trainable weight is finite (checked after each step: one NaN or inf
    would otherwise surface later as a quantizer error)."""
    views = algo.weight_views().values()  # type: ignore[attr-defined]
    return all(bool(torch.isfinite(master).all()) for master, _ in views)


def _result(run, graph, ds, budget, algo, net, history, losses, metrics, opts,
            target_loss, wall, diverged=None) -> TrainResult:
    summ = net.stats_summary()
    gammas = getattr(algo, "gammas", {})
    layers = tuple(
        LayerTrainStats(
            name, s.grad_clipped_fraction,
            s.act_clipped / s.act_elems if s.act_elems else 0.0,
            s.grad_sqnr_db, s.act_sqnr_db, tuple(sorted(s.acc_events.items())),
            gammas.get(name))
        for name, s in summ.items())
    ops = tuple(OpCount(p, k, c) for (p, k), c in sorted(algo.log.totals.items()))
    macs = algo.log.macs
    last = history[-1] if history else None
    stt = steps_to_target(losses, target_loss)
    return TrainResult(
        algo=run.algo, model=graph.name, dataset=ds.name, data_source=ds.source,
        data_license=ds.license, batch=int(run.batch), steps=len(losses),
        epochs=len(history), seed=int(run.seed), lr=opts.lr_for(run.algo),
        train_samples=int(ds.train_x.shape[0]), test_samples=int(ds.test_x.shape[0]),
        accuracy=(Accuracy(None, None) if diverged is not None else
                  Accuracy(last.test_accuracy if last else 0.0, last.accuracy if last else 0.0)),
        history=tuple(history), step_losses=tuple(losses), layers=layers,
        zigzag=metrics.tracker.result(metrics.probe), target_loss=target_loss,
        steps_to_target=stt, macs_to_target=macs_to_target(metrics.cum_macs, stt), ops=ops,
        flips=metrics.flips.result(), cum_macs=tuple(metrics.cum_macs),
        method_log=tuple((k, tuple(v)) for k, v in sorted(algo.method_log.items())),
        integer_macs=sum(v for (_, kind), v in macs.items() if kind == "integer"),
        float_macs=sum(v for (_, kind), v in macs.items() if kind == "float"),
        wall_seconds=wall, diverged_at_step=diverged,
    )


def run_training(graph: Graph, hw: HwConfig | LoadedHw, run: RunConfig, *,
                 progress: bool = True,
                 target_loss: float | None = None) -> TrainResult:
    """What ``fxpsim run`` calls for ``phase=train``: :func:`train` with the defaults."""
    return train(graph, hw, run, progress=progress, target_loss=target_loss)
