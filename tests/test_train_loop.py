"""The training loop: budgets, results, determinism, float baseline, metrics."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fxpsim.config.load import load_hwconfig
from fxpsim.config.run import RunConfig
from fxpsim.errors import FxpsimError
from fxpsim.graph.resolve import load_model
from fxpsim.training.data import load_dataset
from fxpsim.training.loop import (
    DEFAULT_EPOCHS,
    DEFAULT_STEP_MACS,
    DEFAULT_TEST_SAMPLES,
    MAX_STEPS,
    TEST_SAMPLES,
    TrainBudget,
    plan_budget,
    train,
)
from fxpsim.training.metrics import ZigZagTracker, _sign_changes, steps_to_target

_CACHE: dict[str, object] = {}


def _ctx():
    if not _CACHE:
        _CACHE["hw"] = load_hwconfig("edge_npu", {}).config
        _CACHE["lenet5"] = load_model("lenet5")
        _CACHE["ds"] = load_dataset(seed=0, limit_train=96, limit_test=40)
    return _CACHE["hw"], _CACHE["lenet5"], _CACHE["ds"]


def _run(**kw: object) -> RunConfig:
    base = dict(model="lenet5", dataset="fmnist_small", batch=16, steps=6)
    base.update(kw)
    return RunConfig(**base)  # type: ignore[arg-type]


# ---- budget --------------------------------------------------------------------------------

def test_default_budget_scales_with_model_size() -> None:
    vgg = load_model("vgg16")
    run = RunConfig(model="vgg16", batch=32)
    assert vgg.macs == 313_201_664 and DEFAULT_STEP_MACS == 1_800_000_000_000
    b = plan_budget(vgg, run)
    # 1.8e12 // (3 * 313201664 * 32) = 59 steps, rounded up to 2 epochs of 30 batches
    assert b == TrainBudget(60, DEFAULT_EPOCHS, 960, DEFAULT_TEST_SAMPLES)
    lenet = plan_budget(load_model("lenet5"), RunConfig(model="lenet5", batch=32))
    assert lenet.steps == MAX_STEPS


def test_user_budget() -> None:
    g = load_model("lenet5")
    assert plan_budget(g, _run(steps=10, batch=32), 6000) == TrainBudget(10, 1, None,
                                                                         TEST_SAMPLES)
    assert plan_budget(g, _run(steps=None, epochs=2, batch=32), 6000) == TrainBudget(
        374, 2, None, TEST_SAMPLES)
    assert plan_budget(g, _run(steps=400, epochs=1, batch=32), 6000).steps == 187
    with pytest.raises(ValueError, match="train_size"):
        plan_budget(g, _run(steps=3))


# ---- runs ----------------------------------------------------------------------------------

def test_train_result_and_summary_are_deterministic() -> None:
    hw, g, ds = _ctx()
    r1 = train(g, hw, _run(), progress=False, dataset=ds, target_loss=10.0)
    r2 = train(g, hw, _run(), progress=False, dataset=ds, target_loss=10.0)
    assert r1.step_losses == r2.step_losses
    s1, s2 = r1.summary(), r2.summary()
    assert json.dumps(s1, allow_nan=False) == json.dumps(s2, allow_nan=False)
    assert r1.steps == 6 and r1.epochs == 1 and len(r1.history) == 1
    assert 0.0 <= s1["accuracy"]["test"] <= 1.0 and 0.0 <= s1["accuracy"]["train"] <= 1.0
    assert s1["history"][0]["loss"] == pytest.approx(np.mean(r1.step_losses), rel=1e-5)
    assert r1.steps_to_target == 1
    assert r1.integer_macs > 0 and r1.float_macs == 0
    assert {o.pass_name for o in r1.ops} >= {"forward", "loss", "update", "grad_quant"}
    assert [x.layer for x in r1.layers] == ["conv1", "conv2", "fc1", "fc2", "fc3"]
    assert r1.test_samples == 40 and r1.train_samples == 96


def test_epochs_over_the_split_and_history() -> None:
    hw, g, ds = _ctx()
    r = train(g, hw, _run(steps=None, epochs=2, algo="laq"), progress=False, dataset=ds)
    assert r.steps == 12 and [h.steps for h in r.history] == [6, 12]
    assert r.accuracy.test == r.history[-1].test_accuracy
    assert r.accuracy.train == r.history[-1].accuracy


def test_float_baseline_runs_fp32_gemms() -> None:
    hw, g, ds = _ctx()
    r = train(g, hw, _run(w_bits="float", a_bits="float", g_bits="float"), progress=False,
              dataset=ds)
    assert r.integer_macs == 0 and r.float_macs > 0
    assert all(x.grad_clipped_fraction == 0.0 for x in r.layers)


def test_training_lowers_the_loss() -> None:
    hw, g, _ = _ctx()
    ds = load_dataset(seed=0, limit_train=640, limit_test=20)
    r = train(g, hw, _run(steps=40, lr=0.05), progress=False, dataset=ds)
    assert np.mean(r.step_losses[-10:]) < np.mean(r.step_losses[:10]) - 0.3


def test_lbt_reports_gamma_and_octo_runs() -> None:
    hw, g, ds = _ctx()
    r = train(g, hw, _run(algo="lbt", steps=3), progress=False, dataset=ds)
    assert all(x.lbt_gamma is not None and 0 < x.lbt_gamma <= 1 for x in r.layers)
    r = train(g, hw, _run(algo="octo", steps=3), progress=False, dataset=ds)
    assert r.summary()["layers"][0]["lbt_gamma"] is None


def test_dataset_model_mismatch_is_an_error() -> None:
    hw, _, ds = _ctx()
    g = load_model("lenet5", num_classes=7)
    with pytest.raises(FxpsimError, match="classes"):
        train(g, hw, _run(), progress=False)
    # an unknown dataset never reaches training: the run options reject it
    from fxpsim.config.run import parse_run_options
    from fxpsim.errors import ConfigError

    with pytest.raises(ConfigError, match="dataset: expected one of fmnist_small"):
        parse_run_options({"dataset": "nope"})


# ---- metrics -------------------------------------------------------------------------------

def test_steps_to_target() -> None:
    losses = [3.0, 2.0, 1.0, 0.5, 0.4]
    assert steps_to_target(losses, None) is None
    assert steps_to_target(losses, 2.0, window=2) == 3  # mean(2, 1) = 1.5
    assert steps_to_target(losses, 2.5, window=2) == 2
    assert steps_to_target(losses, 0.1, window=2) is None
    assert steps_to_target(losses, 3.0, window=10) == 1


def test_sign_changes() -> None:
    series = np.array([[0, 0, 0], [1, 1, 0], [1, 2, 0], [0, 3, 0], [1, 2, 0], [2, 1, 0]],
                      dtype=float)
    # col 0: diffs +1, 0, -1, +1, +1 -> 2 changes; col 1: +,+,+,-,- -> 1; col 2: none
    assert _sign_changes(series).tolist() == [2, 1, 0]


def test_zigzag_tracker() -> None:
    import torch

    tr = ZigZagTracker({"a": 4}, {"a": None}, window=3, samples=4, seed=0)
    g = torch.tensor([1.0, -1.0, 2.0, 0.5])
    ws = [torch.tensor([0.0, 1.0, 0.0, 0.0]), torch.tensor([1.0, 1.0, 0.0, 0.0]),
          torch.tensor([0.0, 1.0, 0.0, 0.0]), torch.tensor([1.0, 1.0, 0.0, 0.0])]
    for i, w in enumerate(ws):
        tr.observe({"a": g if i % 2 == 0 else -g}, {"a": (w, None)})
    z = tr.result()
    assert z.window == 3
    la = z.layers[0]
    assert la.neg_cos_fraction == 1.0 and la.cos_steps == 3
    # last 3 samples of weight 0: 1, 0, 1 -> diffs -1, +1 -> 1 change; others 0
    assert la.osc_frequency == pytest.approx((1 / 4) / 3)
    assert la.amplitude_max == pytest.approx(2 / 3)


def test_divergence_stops_training_and_is_reported() -> None:
    """A run whose weights become NaN stops at that step and reports no accuracy (a network
    with non-finite weights has none) instead of crashing in a quantizer."""
    hw, _, ds = _ctx()
    r = train(load_model("lenet5"), hw, _run(steps=6, lr=1e6), progress=False, dataset=ds)
    assert r.diverged_at_step is not None and 1 <= r.diverged_at_step <= 6
    assert r.accuracy.test is None and r.accuracy.train is None
    s = r.summary()
    assert s["diverged_at_step"] == r.diverged_at_step and s["accuracy"]["test"] is None
    assert len(r.step_losses) == r.diverged_at_step - 1
