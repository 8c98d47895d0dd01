"""QNet: IR -> torch module; counters of one training step, determinism, input adaptation,
LBT interval and statistics."""

from __future__ import annotations

from collections import Counter as Multiset

import pytest
import torch
import torch.nn.functional as F

from fxpsim.graph.build import NodeSpec, build_graph
from fxpsim.training.formats import NumericsConfig, RngSpec, TensorNumerics
from fxpsim.training.qnet import build_qnet


def small_graph(pad_to=None, in_shape=(2, 6, 6)):
    specs = [
        NodeSpec("conv1", "conv2d", None, {"out_channels": 4, "kernel": 3, "padding": 1}),
        NodeSpec("bn1", "batchnorm"),
        NodeSpec("relu1", "relu"),
        NodeSpec("conv2", "conv2d", None,
                 {"out_channels": 4, "kernel": 3, "stride": 2, "padding": 1}),
        NodeSpec("bn2", "batchnorm"),
        NodeSpec("sc", "conv2d", ("relu1",), {"out_channels": 4, "kernel": 1, "stride": 2}),
        NodeSpec("add", "add", ("bn2", "sc")),
        NodeSpec("relu2", "relu"),
        NodeSpec("gap", "global_avgpool"),
        NodeSpec("flat", "flatten"),
        NodeSpec("fc", "linear", None, {"out_features": 3}),
    ]
    return build_graph("small", in_shape, specs, 3, "test", pad_to=pad_to)


def int8_numerics(seed_hw=0x1D):
    return NumericsConfig(TensorNumerics(8), TensorNumerics(8),
                          TensorNumerics(8, "stochastic"),
                          rng=RngSpec("lfsr", 16, None, 4, seed_hw), random_bits=8)


def train_step(net, x, y, step=0):
    net.begin_step(step)
    net.zero_grad()
    loss = F.cross_entropy(net(x), y)
    loss.backward()
    return loss.detach()


def _batch(seed=0, shape=(2, 2, 6, 6)):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=gen), torch.tensor([0, 2])


def test_counters_of_one_training_step():
    """Exactly the GEMMs (layer, pass, m, k, n, groups) and vector ops of one step; the first
    GEMM layer has no backward_data."""
    net = build_qnet(small_graph(), int8_numerics(), seed=1)
    train_step(net, *_batch())
    fwd = [r.shape for r in net.counters.gemms if r.pass_name == "forward"]
    assert fwd == [("conv1", "forward", 72, 18, 4, 1), ("conv2", "forward", 18, 36, 4, 1),
                   ("sc", "forward", 18, 4, 4, 1), ("fc", "forward", 2, 4, 3, 1)]
    bwd = Multiset(r.shape for r in net.counters.gemms if r.pass_name != "forward")
    assert bwd == Multiset([
        ("fc", "backward_data", 2, 3, 4, 1), ("fc", "backward_weight", 4, 2, 3, 1),
        ("sc", "backward_data", 72, 4, 4, 1), ("sc", "backward_weight", 4, 18, 4, 1),
        ("conv2", "backward_data", 72, 36, 4, 1), ("conv2", "backward_weight", 36, 18, 4, 1),
        ("conv1", "backward_weight", 18, 72, 4, 1),
    ])
    assert all(r.integer for r in net.counters.gemms)
    vec = Multiset((v.layer, v.pass_name, v.kind, v.elems) for v in net.counters.vector_ops)
    # the vector unit's records: the time plane's kinds, counts of the tensors touched
    expected = [
        ("bn1", "forward", "batchnorm_fwd", 288), ("bn1", "forward", "batchnorm_stats", 4),
        ("relu1", "forward", "relu", 288), ("bn2", "forward", "batchnorm_fwd", 72),
        ("bn2", "forward", "batchnorm_stats", 4), ("add", "forward", "add", 72),
        ("relu2", "forward", "relu", 72), ("gap", "forward", "global_avgpool", 8),
        ("bn1", "backward_data", "batchnorm_bwd", 288),
        ("bn1", "backward_data", "batchnorm_bwd_stats", 4),
        ("relu1", "backward_data", "relu_bwd", 288),
        ("relu1", "backward_data", "grad_add", 288),  # relu1 feeds conv2 and sc
        ("bn2", "backward_data", "batchnorm_bwd", 72),
        ("bn2", "backward_data", "batchnorm_bwd_stats", 4),
        ("relu2", "backward_data", "relu_bwd", 72),
        ("gap", "backward_data", "global_avgpool_bwd", 8),
        ("fc", "backward_weight", "bias_grad", 6),  # the fc bias's batch reduction of dY
    ]
    assert all(v.op == "" for v in net.counters.vector_ops if v.kind in {e[2] for e in expected})
    for layer, act, w, grad in [("conv1", 144, 72, 288), ("conv2", 288, 144, 72),
                                ("sc", 288, 16, 72), ("fc", 8, 12, 6)]:
        expected += [(layer, "forward", "quantize_act", act),
                     (layer, "forward", "quantize_weight", w),
                     (layer, "backward", "quantize_grad", grad)]
    assert vec == Multiset(expected)
    net.counters.reset()
    assert net.counters.gemms == [] and net.counters.vector_ops == []


def test_same_seed_identical_different_seed_differs():
    x, y = _batch(3)

    def run(seed):
        net = build_qnet(small_graph(), int8_numerics(), seed=seed)
        losses = [float(train_step(net, x, y, s)) for s in range(2)]
        return losses, [p.grad.clone() for p in net.parameters()]

    a, b, c = run(7), run(7), run(8)
    assert a[0] == b[0]
    assert all(torch.equal(p, q) for p, q in zip(a[1], b[1], strict=True))
    assert a[0] != c[0]


def test_rng_seed_alone_changes_stochastic_codes():
    """Same init (seed), different hardware seed -> different SR gradient codes."""
    x, y = _batch(4)
    grads = []
    for hw_seed in (1, 2):
        net = build_qnet(small_graph(), int8_numerics(hw_seed), seed=5)
        train_step(net, x, y)
        grads.append(net.layers["conv1"].weight.grad.clone())
    assert not torch.equal(grads[0], grads[1])


def test_init_is_deterministic_and_float_net_matches_torch_ops():
    fp = TensorNumerics(None)
    net = build_qnet(small_graph(), NumericsConfig(fp, fp, fp), seed=3)
    net2 = build_qnet(small_graph(), NumericsConfig(fp, fp, fp), seed=3)
    for p, q in zip(net.parameters(), net2.parameters(), strict=True):
        assert torch.equal(p, q)
    x, _ = _batch(1)
    L = net.layers
    h = F.relu(L["bn1"].bn(F.conv2d(x, L["conv1"].weight, padding=1)))
    a = L["bn2"].bn(F.conv2d(h, L["conv2"].weight, stride=2, padding=1))
    h2 = F.relu(a + F.conv2d(h, L["sc"].weight, stride=2))
    want = F.linear(h2.mean((2, 3)), L["fc"].weight, L["fc"].bias)
    net3 = build_qnet(small_graph(), NumericsConfig(fp, fp, fp), seed=3)
    torch.testing.assert_close(net3(x), want, rtol=1e-5, atol=1e-6)
    assert not any(r.integer for r in net3.counters.gemms)


def test_input_padding_and_channel_adaptation():
    g = small_graph(pad_to=(4, 4), in_shape=(2, 6, 6))
    net = build_qnet(g, int8_numerics(), seed=0)
    x4 = torch.randn(2, 2, 4, 4, generator=torch.Generator().manual_seed(0))
    padded = net.adapt_input(x4)
    assert padded.shape == (2, 2, 6, 6)
    assert torch.equal(padded[:, :, 1:5, 1:5], x4)
    border = torch.ones(padded.shape, dtype=torch.bool)
    border[:, :, 1:5, 1:5] = False
    assert (padded[border] == 0).all()
    gray = net.adapt_input(torch.ones(2, 1, 6, 6))
    assert gray.shape == (2, 2, 6, 6)
    with pytest.raises(ValueError, match="x: expected"):
        net.adapt_input(torch.ones(2, 3, 5, 5))


def test_lbt_gamma_clips_and_stats_are_collected():
    nc = NumericsConfig(TensorNumerics(4), TensorNumerics(4), TensorNumerics(4, "stochastic"),
                        grad_interval="lbt", rng=RngSpec("philox"), random_bits=8)
    net = build_qnet(small_graph(), nc, seed=2)
    net.stats_config.enabled = True
    seen = []
    net.set_grad_observer(lambda layer, g: seen.append(layer))
    train_step(net, *_batch(2))
    s = net.stats_summary()
    assert s["conv2"].grad_clipped == 0  # gamma = 1: min-max, nothing clips
    assert s["conv2"].act_sqnr_db is not None and 5 < s["conv2"].act_sqnr_db < 40
    assert s["conv2"].grad_sqnr_db is not None and s["conv2"].grad_sqnr_db < 40
    assert sorted(seen) == ["conv1", "conv2", "fc", "sc"]
    net.reset_stats()
    net.set_gamma("conv2", 0.25)
    train_step(net, *_batch(2), step=1)
    assert net.stats_summary()["conv2"].grad_clipped_fraction > 0


def test_resnet20_step_executes_every_lowered_gemm():
    from fxpsim.graph.resolve import load_model

    g = load_model("resnet20", input_shape=(1, 28, 28))
    net = build_qnet(g, int8_numerics(), seed=0)
    x = torch.randn(2, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    train_step(net, x, torch.tensor([1, 2]))
    n_gemm = len(g.gemm_nodes)
    passes = Multiset(r.pass_name for r in net.counters.gemms)
    assert passes == {"forward": n_gemm, "backward_weight": n_gemm,
                      "backward_data": n_gemm - 1}
    first = next(r for r in net.counters.gemms if r.layer == "conv1")
    assert (first.m, first.k, first.n) == (2 * 32 * 32, 9, 16)  # padded 28 -> 32
