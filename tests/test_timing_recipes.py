"""Step recipes: every algorithm lowers, its extra vector work is where docs/algorithms.md puts it."""

from __future__ import annotations

from collections import Counter

import pytest

from fxpsim.errors import ConfigError
from fxpsim.graph.ir import BatchNormAttrs, Conv2dAttrs, Graph, LinearAttrs, NoAttrs, Node
from fxpsim.recipes import ALGORITHMS, PassDecl, recipe_for
from fxpsim.timing.lowering import lower
from fxpsim.timing.ops import GemmOp, TimingRequest, VectorOp


def small() -> Graph:
    """input 3x4x4 -> conv(4, 3x3, pad 1) -> bn -> relu -> conv(4) -> flatten -> linear(64->3)."""
    cv = Conv2dAttrs(out_channels=4, kernel=(3, 3), padding=(1, 1))
    nodes = (
        Node("input", "input", (), NoAttrs(), (3, 4, 4)),
        Node("c1", "conv2d", ("input",), cv, (4, 4, 4), in_shape=(3, 4, 4)),
        Node("bn", "batchnorm", ("c1",), BatchNormAttrs(), (4, 4, 4), in_shape=(4, 4, 4)),
        Node("r", "relu", ("bn",), NoAttrs(), (4, 4, 4), in_shape=(4, 4, 4)),
        Node("c2", "conv2d", ("r",), cv, (4, 4, 4), in_shape=(4, 4, 4)),
        Node("f", "flatten", ("c2",), NoAttrs(), (64,), in_shape=(4, 4, 4)),
        Node("fc", "linear", ("f",), LinearAttrs(3), (3,), in_shape=(64,)),
    )
    return Graph("small", nodes, 3)


def vec(ops, kind, pass_name=None):
    return [o for o in ops if isinstance(o, VectorOp) and o.kind == kind
            and (pass_name is None or o.pass_name == pass_name)]


def alu_total(op: VectorOp) -> int:
    return sum(c for _, c in op.alu)


@pytest.mark.parametrize("algo", ALGORITHMS)
@pytest.mark.parametrize("phase", ["infer", "train"])
def test_every_algorithm_lowers(algo, phase):
    r = recipe_for(algo, phase)
    assert r.algo == algo and r.phase == phase
    ops = lower(small(), TimingRequest(algo=algo, phase=phase, batch=2))
    assert any(isinstance(o, GemmOp) for o in ops)
    if phase == "infer":
        assert [p.name for p in r.passes] == ["forward"]
        assert {o.pass_name for o in ops} == {"forward"}
    else:
        assert {"forward", "backward_data", "backward_weight", "update"} <= {
            p.name for p in r.passes}
        for p in r.passes:  # no pass declared without work on this model
            assert any(o.pass_name == p.name for o in ops), (algo, p.name)


def test_unknown_algo_and_phase():
    with pytest.raises(ConfigError) as e:
        recipe_for("adamw", "train")
    assert e.value.key_path == "algo" and "sgd" in e.value.message
    assert "command line" in str(e.value)
    with pytest.raises(ConfigError, match="phase"):
        recipe_for("sgd", "eval")
    with pytest.raises(ConfigError, match="algo"):
        lower(small(), TimingRequest(algo="nope"))
    with pytest.raises(ValueError, match="optimizer"):
        PassDecl("update", "update")


def test_fb_step_layout():
    r = recipe_for("fb", "train")
    assert [p.name for p in r.passes] == [
        "forward", "loss", "backward_data", "backward_weight", "grad_quant",
        "fb_trial_update", "fb_trial_forward", "fb_trial_loss", "fb_trial_backward_data",
        "fb_trial_backward_weight", "fb_trial_grad_quant", "fb_blend", "update"]
    assert r.pass_named("fb_trial_update").scratch
    assert r.pass_named("fb_trial_forward").weights == "trial"
    g = small()
    ops = lower(g, TimingRequest(algo="fb", batch=2))
    trial_bd = [o.layer for o in ops if isinstance(o, GemmOp)
                and o.pass_name == "fb_trial_backward_data"]
    assert trial_bd == ["fc", "c2"]  # first GEMM layer has no dX in the trial pass either
    blend = vec(ops, "blend")
    assert [(o.layer, o.elems) for o in blend] == [(n.name, n.params) for n in g.nodes
                                                   if n.params]
    assert all(o.alu == (("mul", 2), ("add", 1)) for o in blend)
    assert len(vec(ops, "laq_projection")) == 2 * len(g.gemm_nodes)  # trial + real
    assert len(vec(ops, "adam_update")) == 2 * sum(1 for n in g.nodes if n.params)


def test_laq_projection_rounds_and_stochastic_weights():
    g = small()
    r = recipe_for("laq", "train", projection_rounds=3)
    ops = lower(g, TimingRequest(algo="laq", batch=2, rounding_w="stochastic"), r,
                random_bits=6)
    proj = vec(ops, "laq_projection")
    assert [o.layer for o in proj] == ["c1", "c2", "fc"]
    c1 = proj[0]
    assert c1.elems == 4 * 3 * 9
    assert dict(c1.alu)["requant"] == 3 and dict(c1.alu)["cmp"] == 6
    assert c1.stochastic_roundings == 3 * c1.elems and c1.rng_bits == 18 * c1.elems
    assert not vec(ops, "sgd_update") and not vec(ops, "quantize", "update")
    with pytest.raises(ValueError, match="projection_rounds"):
        recipe_for("laq", "train", projection_rounds=0)


def test_sgd_update_and_weight_requant():
    g = small()
    ops = lower(g, TimingRequest(algo="sgd", batch=2))
    upd = vec(ops, "sgd_update")
    assert [(o.layer, o.elems) for o in upd] == [("c1", 108), ("bn", 8), ("c2", 144),
                                                 ("fc", 195)]
    assert all(o.read_bytes == 12 * o.elems and o.write_bytes == 8 * o.elems for o in upd)
    q = vec(ops, "quantize", "update")
    assert [(o.layer, o.elems, o.write_bytes) for o in q] == [("c1", 108, 108),
                                                            ("c2", 144, 144), ("fc", 192, 192)]


def test_lbt_count_per_gemm_layer():
    ops = lower(small(), TimingRequest(algo="lbt", batch=2))
    cnt = vec(ops, "lbt_count")
    assert [(o.layer, o.elems) for o in cnt] == [("fc", 6), ("c2", 128), ("c1", 128)]
    plain = lower(small(), TimingRequest(algo="sgd", batch=2))
    assert Counter(map(repr, plain)) == Counter(
        repr(o) for o in ops if o.pass_name != "lbt_interval")


def test_bnrect_is_order_c():
    ops = lower(small(), TimingRequest(algo="bnrect", batch=2))
    assert [(o.layer, o.elems) for o in vec(ops, "bn_rectify")] == [("bn", 4)]


def test_metagrad_hypernet_cost():
    r = recipe_for("metagrad", "train", hypernet_hidden=10)
    ops = lower(small(), TimingRequest(algo="metagrad", batch=2), r)
    fwd, bwd = vec(ops, "hypernet_fwd"), vec(ops, "hypernet_bwd")
    assert [o.elems for o in fwd] == [108, 144, 192]  # weights only, not biases
    assert all(alu_total(f) + alu_total(b) == 6 * 10 for f, b in zip(fwd, bwd, strict=True))
    hyp = [o for o in ops if o.layer == "hypernet"]
    assert len(hyp) == 1 and hyp[0].elems == 31


def test_octo_lac_and_backward_prc():
    g = small()
    ops = lower(g, TimingRequest(algo="octo", batch=2))
    assert [o.layer for o in vec(ops, "lac_fwd")] == ["c1", "c2"]
    assert [o.layer for o in vec(ops, "lac_bwd")] == ["c2", "c1"]
    # PRC clips dY of every GEMM layer (B x output elements); X and W keep their forward
    # codes, so octo_requant quantizes nothing
    assert not vec(ops, "quantize", "octo_requant")
    prc = [(o.layer, o.elems) for o in vec(ops, "prc_clip", "octo_requant")]
    assert prc == [("fc", 2 * 3), ("c2", 2 * 4 * 4 * 4), ("c1", 2 * 4 * 4 * 4)]
    lac_upd = [o for o in vec(ops, "adam_update") if o.elems == 3 * 64]
    assert [o.layer for o in lac_upd] == ["c1", "c2"]
    inf = lower(g, TimingRequest(algo="octo", phase="infer", batch=2))
    assert len(vec(inf, "lac_fwd")) == 2
    assert not vec(lower(g, TimingRequest(algo="sgd", batch=2)), "lac_fwd")
