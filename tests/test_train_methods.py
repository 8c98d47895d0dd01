"""Issue-9 metrics and controls: code flips on hand-made trajectories, probe zig-zag, MACs to
target, lr schedules, 1-bit weights, per-layer formats, checkpoints (bit-exact inference),
BN recalibration, per-method logs, bnrect/octo run rules — from the API and the CLI."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from fxpsim.config.load import load_hwconfig
from fxpsim.config.run import RunConfig, parse_run_options
from fxpsim.errors import ConfigError, FxpsimError
from fxpsim.graph.layer_formats import with_layer_formats
from fxpsim.graph.resolve import load_model
from fxpsim.training.algorithms.laq import lab_project
from fxpsim.training.data import load_dataset
from fxpsim.training.formats import NumericsConfig, TensorNumerics
from fxpsim.training.loop import train
from fxpsim.training.metrics import (
    CodeFlipTracker,
    ProbeZigZag,
    macs_to_target,
    probe_steps,
    thin,
)
from fxpsim.training.quantizers import quantize_symmetric
from fxpsim.training.schedule import lr_factor

ROOT = Path(__file__).resolve().parents[1]
CNN5 = str(ROOT / "tools" / "models" / "cnn5_bn.yaml")
_CACHE: dict[str, object] = {}


def _ctx():
    if not _CACHE:
        _CACHE["hw"] = load_hwconfig("edge_npu", {}).config
        _CACHE["ds"] = load_dataset(seed=0, limit_train=96, limit_test=40)
    return _CACHE["hw"], _CACHE["ds"]


def _train(model: str = "lenet5", **kw: object):
    hw, ds = _ctx()
    base: dict[str, object] = dict(model=model, dataset="fmnist_small", batch=16, steps=6)
    base.update(kw)
    run = RunConfig(**base)  # type: ignore[arg-type]
    graph = with_layer_formats(load_model(model), run.layer_formats)
    return train(graph, hw, run, progress=False, dataset=ds, target_loss=run.target_loss)


# ---- code flips on hand-made trajectories -----------------------------------------------

def test_flip_and_flip_back_by_hand() -> None:
    tr = CodeFlipTracker()
    # weight 0: 0 1 0 0 1 -> 3 flips, 2 flip-backs (1->0 returns to 0; 0->1 returns to 1)
    # weight 1: 2 2 2 2 2 -> nothing; weight 2: 0 1 2 1 0 -> 4 flips, 1 flip-back
    seq = [[0, 2, 0], [1, 2, 1], [0, 2, 2], [0, 2, 1], [1, 2, 0]]
    for c in seq:
        tr.observe({"a": np.array(c, dtype=np.int8)})
    f = tr.result().layers[0]
    assert (f.weights, f.transitions) == (3, 4)
    assert f.flips == 3 + 0 + 4
    # weight 2: 0->1 (no earlier code), 1->2 (before=0: no), 2->1 (before=1: yes),
    # 1->0 (before=2: no) -> 1 flip-back; weight 0: 2 flip-backs
    assert f.flip_backs == 2 + 1
    assert f.flip_rate == pytest.approx(7 / 12) and f.flip_back_rate == pytest.approx(3 / 12)


def test_flip_totals_weigh_layers_by_size() -> None:
    tr = CodeFlipTracker()
    tr.observe({"a": np.array([0]), "b": np.array([0, 0, 0])})
    tr.observe({"a": np.array([1]), "b": np.array([0, 0, 0])})
    tr.observe({"a": np.array([0]), "b": np.array([0, 0, 1])})
    m = tr.result()
    assert m.flip_rate == pytest.approx(3 / 8) and m.flip_back_rate == pytest.approx(1 / 8)


def test_scale_change_is_not_a_flip() -> None:
    """The old metric counted a change of the scale as oscillation: codes do not."""
    tn = TensorNumerics(4, "half_even")
    w = torch.tensor([0.7, -0.3, 0.1, 0.05])
    tr = CodeFlipTracker()
    for s in (1.0, 1.3, 0.8):  # the whole tensor scales: every value changes, codes don't
        tr.observe({"w": quantize_symmetric(w * s, tn).codes.numpy()})
    assert tr.result().flip_rate == 0.0


# ---- probe zig-zag, MACs to target ----------------------------------------------------------

def test_probe_pairs_and_cosines() -> None:
    assert probe_steps(0, 10) == frozenset()
    assert probe_steps(1, 4) == frozenset(range(4))
    assert probe_steps(5, 12) == frozenset({0, 1, 5, 6, 10, 11})
    pz = ProbeZigZag()
    g = torch.tensor([1.0, 0.0])
    pz.observe(0, "raw", {"a": g})
    pz.observe(1, "raw", {"a": -g})  # cos -1
    pz.observe(5, "raw", {"a": g})  # not consecutive: no pair
    pz.observe(6, "raw", {"a": torch.tensor([1.0, 1.0])})  # cos 1/sqrt2
    frac, mean, n = pz.layer("raw", "a")
    assert n == 2 and frac == 0.5 and mean == pytest.approx((-1 + 1 / math.sqrt(2)) / 2)
    assert pz.layer("blend", "a") == (None, None, 0)


def test_macs_to_target_and_thin() -> None:
    assert macs_to_target([10, 20, 30], 2) == 20
    assert macs_to_target([10, 20, 30], None) is None
    assert thin(5, 10) == [0, 1, 2, 3, 4]
    t = thin(1000, 5)
    assert t[0] == 0 and t[-1] == 999 and len(t) == 5


def test_run_reports_codes_probe_and_macs() -> None:
    r = _train(algo="fb", w_bits=2, a_bits="float", g_bits="float", target_loss=50.0)
    s = r.summary()
    assert s["steps_to_target"] == 1
    per_step = r.cum_macs[0]
    assert s["macs_to_target"] == per_step and r.cum_macs[-1] == 6 * per_step
    laq = _train(algo="laq", w_bits=2, a_bits="float", g_bits="float")
    assert per_step == 2 * laq.cum_macs[0]  # FB runs two forward/backward passes a step
    assert 0.0 <= s["code_flip_rate"] <= 1.0
    assert s["code_flip_back_rate"] <= s["code_flip_rate"]
    assert [f["layer"] for f in s["code_flips"]] == ["conv1", "conv2", "fc1", "fc2", "fc3"]
    z = s["zigzag"]
    assert z["probe_neg_cos_fraction"] is not None
    assert z["probe_blend_neg_cos_fraction"] is not None
    assert z["layers"][0]["probe_pairs"] == 5  # every step probed on a 6-step run
    assert laq.summary()["zigzag"]["probe_blend_neg_cos_fraction"] is None
    assert s["loss_curve"][-1] == {"step": 6, "macs": 6 * per_step,
                                   "loss": pytest.approx(r.step_losses[-1], rel=1e-5)}


def test_probe_leaves_the_trajectory_alone() -> None:
    a = _train(algo="sgd", g_bits=4, zigzag_probe_every=1)
    b = _train(algo="sgd", g_bits=4, zigzag_probe_every=0)
    assert a.step_losses == b.step_losses and a.ops == b.ops
    assert b.zigzag.probe_neg_cos_fraction is None


# ---- schedules --------------------------------------------------------------------------

def test_lr_factor() -> None:
    assert [lr_factor("step", t, 8) for t in (0, 3, 4, 5, 6, 7)] == pytest.approx(
        [1, 1, 0.1, 0.1, 0.01, 0.01])
    assert lr_factor("cosine", 0, 10) == 1.0 and lr_factor("cosine", 5, 10) == pytest.approx(0.5)
    assert lr_factor("constant", 3, 10, warmup=4) == 1.0
    assert lr_factor("constant", 0, 10, warmup=4) == 0.25
    with pytest.raises(ValueError):
        lr_factor("linear", 0, 10)


def test_schedule_changes_training_and_warmup_starts_small() -> None:
    a = _train(lr=0.05)
    b = _train(lr=0.05, lr_schedule="cosine", warmup=2)
    assert a.step_losses[0] == b.step_losses[0] and a.step_losses != b.step_losses


# ---- 1-bit weights --------------------------------------------------------------------------

def test_binary_quantizer() -> None:
    w = torch.tensor([0.5, -0.25, 0.0, -1.0])
    q = quantize_symmetric(w, TensorNumerics(1, "half_even"))
    assert q.codes.tolist() == [1, -1, 1, -1] and q.qmax == 1
    assert float(q.scale) == pytest.approx(0.4375)
    with pytest.raises(ValueError, match="weights only"):
        NumericsConfig(activations=TensorNumerics(1))


def test_lab_projection_by_hand() -> None:
    w = torch.tensor([0.5, -0.25, 0.0, -1.0])
    d = torch.tensor([1.0, 3.0, 1.0, 1.0])
    alpha, q = lab_project(w, d)
    assert q.tolist() == [1, -1, 1, -1]
    assert alpha == pytest.approx((0.5 + 0.75 + 0 + 1.0) / 6)


@pytest.mark.parametrize("algo", ["laq", "fb"])
def test_one_bit_laq_runs_on_binary_codes(algo: str) -> None:
    r = _train(algo=algo, w_bits=1, a_bits="float", g_bits="float", steps=4)
    assert all(math.isfinite(x) for x in r.step_losses)
    s = r.summary()
    assert s["code_flip_rate"] is not None


def test_one_bit_codes_reach_the_qnet_exactly() -> None:
    """LAQ's ŵ = α·q re-quantizes to exactly q with Δ = α in the QNet's 1-bit quantizer."""
    from fxpsim.training.algorithms import AlgoOptions, make_algorithm
    from fxpsim.training.qnet import build_qnet

    hw, _ = _ctx()
    g = load_model("lenet5")
    nc = NumericsConfig.from_hw(hw, w_bits=1, a_bits=None, g_bits=None)
    alg = make_algorithm("laq", build_qnet(g, nc, seed=1), g, AlgoOptions(), seed=1)
    for grp in alg.groups:
        if grp.is_gemm:
            q = quantize_symmetric(grp.weight.detach(), nc.weights)
            assert torch.equal(q.codes.float(), alg.codes[grp.node])
            assert float(q.scale) == pytest.approx(alg.alpha[grp.node], rel=1e-6)


# ---- per-layer formats ----------------------------------------------------------------------

def test_layer_formats_from_the_cli() -> None:
    run, _ = parse_run_options({"formats.conv1": "float", "formats.fc3.w": "4"})
    assert run.layer_formats == (("conv1", "w", "float"), ("conv1", "a", "float"),
                                 ("conv1", "g", "float"), ("fc3", "w", 4))
    g = with_layer_formats(load_model("lenet5"), run.layer_formats)
    assert g.node("conv1").formats.w_bits == "float" and g.node("fc3").formats.w_bits == 4
    with pytest.raises(ConfigError, match="formats.conv9"):
        with_layer_formats(load_model("lenet5"), (("conv9", "w", 4),))
    for bad in ({"formats.conv1": "1"}, {"formats.conv1.a": "1"}, {"formats.conv1": "x"}):
        with pytest.raises(ConfigError, match="formats.conv1"):
            parse_run_options(bad)
    assert parse_run_options({"formats.conv1.w": "1"})[0].layer_formats == (
        ("conv1", "w", 1),)


def test_float_first_layer_runs_float_gemms_there_only() -> None:
    r = _train(layer_formats=(("conv1", "w", "float"), ("conv1", "a", "float"),
                              ("conv1", "g", "float")), steps=2)
    conv1_fwd = 6 * 16 * 28 * 28 * 25  # B·OH·OW·K·N, forward only (no dX at the input)
    conv1 = 2 * conv1_fwd  # forward + backward-weight
    assert r.float_macs == 2 * conv1 and r.integer_macs > 0


# ---- checkpoints ----------------------------------------------------------------------------

def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fxpsim", "run", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=600)


def test_checkpoint_gives_bit_exact_inference_from_the_cli(tmp_path: Path) -> None:
    ck = tmp_path / "net.pt"
    common = ["hw=edge_npu", "model=lenet5", "eval_samples=48", "format=json"]
    tr = _cli(*common, "batch=16", "algo=octo", "steps=4", f"checkpoint={ck}", f"out={tmp_path / 't'}",
              cwd=tmp_path)
    assert tr.returncode == 0, tr.stderr
    inf = _cli(*common, "phase=infer", "batch=1", f"checkpoint={ck}",
               f"out={tmp_path / 'i'}", cwd=tmp_path)
    assert inf.returncode == 0, inf.stderr
    t = json.loads((tmp_path / "t" / "summary.json").read_text())
    i = json.loads((tmp_path / "i" / "summary.json").read_text())
    assert i["inference"]["eval_batch"] == 16 and i["inference"]["trained_steps"] == 4
    assert i["accuracy"]["test"] == t["accuracy"]["test"]
    assert i["inference"]["test_loss"] == pytest.approx(t["accuracy"]["history"][-1]
                                                        ["test_loss"], rel=1e-6)
    bad = _cli(*common, "phase=infer", "w_bits=4", f"checkpoint={ck}",
               f"out={tmp_path / 'j'}", cwd=tmp_path)
    assert bad.returncode == 2 and "w_bits=8 (run: 4)" in bad.stderr
    assert "Traceback" not in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


def test_checkpoint_never_overwrites_a_foreign_file(tmp_path: Path) -> None:
    mine = tmp_path / "notes.txt"
    mine.write_text("keep me")
    with pytest.raises(FxpsimError, match="not an fxpsim checkpoint"):
        _train(checkpoint=str(mine), steps=1)
    assert mine.read_text() == "keep me"


# ---- BN recalibration, per-method logs, run rules --------------------------------------------

def test_bn_recalibration_changes_only_eval() -> None:
    a = _train(model=CNN5, steps=4)
    b = _train(model=CNN5, steps=4, bn_recalibrate=2)
    assert a.step_losses == b.step_losses
    assert a.history[-1].test_loss != b.history[-1].test_loss


def test_method_logs_in_the_summary() -> None:
    s = _train(algo="lbt", g_bits=4, steps=3).summary()["method_logs"]
    # algo=lbt also learns the forward clips (its protocol's default): logged per layer
    assert set(s) == {f"{k}.{n}" for n in ("conv1", "conv2", "fc1", "fc2", "fc3")
                      for k in ("lbt_gamma", "fwd_scale_w", "fwd_scale_a")}
    assert len(s["lbt_gamma.fc3"]["points"]) == 3
    s = _train(algo="metagrad", g_bits=4, steps=3, metagrad_lr=1e-4).summary()
    assert s["method_logs"]["metagrad_gain.conv1"]["final"] > 0
    s = _train(model=CNN5, algo="bnrect", steps=2, bnrect_lambda=1.0).summary()
    assert len(s["method_logs"]["bnrect_penalty"]["points"]) == 2


def test_bnrect_without_bn_is_an_error(tmp_path: Path) -> None:
    r = _cli("model=lenet5", "algo=bnrect", "steps=1", cwd=tmp_path)
    assert r.returncode == 2 and "has none" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "reports").exists()


def test_octo_rounds_gradients_to_nearest_by_default() -> None:
    assert parse_run_options({"algo": "octo"})[0].rounding_g == "half_even"
    assert parse_run_options({"algo": "octo", "rounding.g": "stochastic"})[0].rounding_g \
        == "stochastic"
    assert parse_run_options({"algo": "sgd"})[0].rounding_g == "stochastic"


# ---- Octo backward re-quantization ----------------------------------------------------------

def test_octo_backward_requantizes_clipped_x_and_w() -> None:
    """dW and dX of a conv under ``bwd_requant`` are the integer GEMMs of the codes of
    clip(X, 0.95·[min, max]) and clip(W, ...) (nearest), with dY's codes."""
    from dataclasses import replace as dc_replace

    from fxpsim.training.qlayers import ConvGeom, LayerRuntime, QConv2dFn
    from fxpsim.training.stats import Counters, LayerStats, StatsConfig

    hw, _ = _ctx()
    nc = dc_replace(NumericsConfig.from_hw(hw, w_bits=8, a_bits=8, g_bits=8,
                                           rounding_g="half_even", grad_interval="prc"),
                    bwd_requant=True)
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(2, 3, 6, 6, generator=gen).requires_grad_(True)
    w = torch.randn(4, 3, 3, 3, generator=gen).requires_grad_(True)
    gy = torch.randn(2, 4, 6, 6, generator=gen)
    rt = LayerRuntime("c", "conv2d", nc, Counters(), LayerStats("c"), StatsConfig(),
                      lambda: None)
    geom = ConvGeom((3, 3), (1, 1), (1, 1), 1)
    QConv2dFn.apply(x, w, rt, geom).backward(gy)

    def deq(t: torch.Tensor, tn: TensorNumerics, clip: float = 0.95) -> torch.Tensor:
        lo, hi = float(t.detach().min()), float(t.detach().max())
        q = quantize_symmetric(torch.clamp(t.detach(), clip * lo, clip * hi), tn)
        return q.codes.double() * float(q.scale)

    tn = TensorNumerics(8, "half_even")
    gd = quantize_symmetric(gy, tn, clip_factor=0.95)
    g64 = gd.codes.double() * float(gd.scale)
    dw = torch.nn.grad.conv2d_weight(deq(x, tn), w.shape, g64, 1, 1)
    dx = torch.nn.grad.conv2d_input(x.shape, deq(w, tn), g64, 1, 1)
    assert torch.allclose(w.grad.double(), dw, rtol=1e-6, atol=0)
    assert torch.allclose(x.grad.double(), dx, rtol=1e-6, atol=0)
    kinds = [v.kind for v in rt.counters.vector_ops]
    assert kinds.count("requant_x") == 1 and kinds.count("requant_w") == 1


def test_octo_backward_option_changes_training() -> None:
    a = _train(algo="octo", steps=3)
    b = _train(algo="octo", steps=3, octo_backward="reuse")
    assert a.step_losses[0] == b.step_losses[0] and a.step_losses != b.step_losses
