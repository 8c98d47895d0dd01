"""The vector unit records what it ran: a record exists only if the op executed, with the
element count of the tensors it touched, in the time plane's vocabulary.

Unit level: each op's values equal the plain torch op (exactly), its record's count equals
the numel of the tensors it was given, nothing is recorded for an op that did not run (no
backward yet, no gradient wanted, an op that raised). Step level: removing an op's execution
removes its record (and the recipe comparison then reports it missing); the network's records
equal an independent observation of the modules that ran (torch module hooks); every update
record matches the parameters the step actually changed.
"""

from __future__ import annotations

from collections import Counter

import pytest
import torch
import torch.nn.functional as F

from fxpsim.graph.resolve import load_model
from fxpsim.timing.lowering import lower
from fxpsim.timing.ops import TimingRequest, VectorOp
from fxpsim.training import vector_unit as vu
from fxpsim.training.algorithms import GRAD_INTERVAL, AlgoOptions, Batch, make_algorithm
from fxpsim.training.formats import NumericsConfig, TensorNumerics
from fxpsim.training.qnet import VectorNode, build_qnet
from fxpsim.vocab import VECTOR_KINDS


class Sink:
    def __init__(self) -> None:
        self.recs: list[tuple[str, str, str, int]] = []

    def record(self, layer: str, pass_name: str, kind: str, elems: int) -> None:
        self.recs.append((layer, pass_name, kind, elems))


def _t(*shape: int, seed: int = 0, grad: bool = True) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g).requires_grad_(grad)


# ---- unit level ----------------------------------------------------------------------------

def test_relu_forward_then_backward_only_after_it_ran() -> None:
    s = Sink()
    x = _t(2, 3, 4, 4)
    y = vu.relu(s, "r", x)
    assert torch.equal(y, F.relu(x))
    assert s.recs == [("r", "forward", "relu", 96)]  # no backward record before it runs
    y.sum().backward()
    assert s.recs[1:] == [("r", "backward_data", "relu_bwd", 96)]
    assert x.grad is not None and torch.equal(x.grad, (x > 0).float())
    with torch.no_grad():  # no graph: the backward can never run, nothing is promised
        vu.relu(s, "r", x)
    assert [r[2] for r in s.recs] == ["relu", "relu_bwd", "relu"]


@pytest.mark.parametrize("op", ["maxpool", "avgpool"])
def test_pool_counts_the_output_and_the_gradient_it_consumed(op: str) -> None:
    s = Sink()
    x = _t(2, 3, 8, 8)
    y = vu.pool(s, "p", op, x, (2, 2), (2, 2), (0, 0))
    ref = (F.max_pool2d if op == "maxpool" else F.avg_pool2d)(x, (2, 2), (2, 2), (0, 0))
    assert torch.equal(y, ref)
    (y * 2).sum().backward()
    assert s.recs == [("p", "forward", op, 2 * 3 * 4 * 4),
                      ("p", "backward_data", f"{op}_bwd", 2 * 3 * 4 * 4)]


def test_batchnorm_train_and_eval() -> None:
    s = Sink()
    bn = torch.nn.BatchNorm2d(3)
    ref = torch.nn.BatchNorm2d(3)
    x = _t(4, 3, 5, 5)
    y = vu.batchnorm(s, "bn", bn, x)
    assert torch.equal(y, ref(x))
    y.pow(2).sum().backward()
    assert s.recs == [("bn", "forward", "batchnorm_fwd", 300),
                      ("bn", "forward", "batchnorm_stats", 3),
                      ("bn", "backward_data", "batchnorm_bwd", 300),
                      ("bn", "backward_data", "batchnorm_bwd_stats", 3)]
    bn.eval()
    vu.batchnorm(s, "bn", bn, x.detach())
    assert s.recs[-1] == ("bn", "forward", "batchnorm_infer", 300)


def test_bias_add_records_the_reduction_only_when_the_bias_gradient_is_computed() -> None:
    s = Sink()
    y, b = _t(2, 4, 3, 3), _t(4, seed=1)
    out = vu.bias_add(s, "c", y, b, (1, -1, 1, 1))
    assert s.recs == []  # the forward add is the accumulator's (no vector op)
    out.sum().backward()
    assert s.recs == [("c", "backward_weight", "bias_grad", 72)]
    y2, b2 = y.detach().clone().requires_grad_(), b.detach().clone().requires_grad_()
    (y2 + b2.view(1, -1, 1, 1)).sum().backward()
    assert b.grad is not None and b2.grad is not None and torch.equal(b.grad, b2.grad)
    s2 = Sink()
    frozen = b.detach()  # no bias gradient wanted: the reduction does not run
    vu.bias_add(s2, "c", _t(2, 4, 3, 3), frozen, (1, -1, 1, 1)).sum().backward()
    assert s2.recs == []


def test_update_records_what_the_steps_were_given_and_nothing_if_one_raises() -> None:
    s = Sink()
    ps = [torch.zeros(3, 2), torch.zeros(5)]
    gs = [torch.ones(3, 2), torch.ones(5)]

    def step(p: torch.Tensor, g: torch.Tensor) -> None:
        p.sub_(g)

    vu.update(s, "fc", "update", "sgd_update", step, ps, gs)
    assert s.recs == [("fc", "update", "sgd_update", 11)]
    assert all(torch.equal(p, -g) for p, g in zip(ps, gs, strict=True))

    def broken(p: torch.Tensor, g: torch.Tensor) -> None:
        raise RuntimeError("no update")

    with pytest.raises(RuntimeError):
        vu.update(s, "fc", "update", "sgd_update", broken, ps, gs)
    with pytest.raises(ValueError, match="grads"):
        vu.update(s, "fc", "update", "sgd_update", step, ps, gs[:1])
    assert len(s.recs) == 1


def test_run_blend_softmax_and_the_vocabulary() -> None:
    s = Sink()
    x = _t(7, grad=False)
    assert vu.run(s, "l", "hypernet", "hypernet_fwd", torch.square, x).equal(x * x)
    a = [_t(3, seed=1, grad=False), _t(2, seed=2, grad=False)]
    b = [_t(3, seed=3, grad=False), _t(2, seed=4, grad=False)]
    out = vu.blend(s, "l", "fb_blend", 0.25, a, 0.75, b)
    assert all(torch.equal(o, 0.25 * p + 0.75 * q) for o, p, q in zip(out, a, b, strict=True))
    logits, y = _t(4, 10), torch.tensor([1, 2, 3, 4])
    assert torch.equal(vu.softmax_xent(s, "fc", "loss", logits, y), F.cross_entropy(logits, y))
    assert s.recs == [("l", "hypernet", "hypernet_fwd", 7), ("l", "fb_blend", "blend", 5),
                      ("fc", "loss", "softmax_xent", 40)]
    with pytest.raises(ValueError, match="vector kind"):
        vu.run(s, "l", "update", "not_a_kind", torch.square, x)
    assert len(s.recs) == 3
    assert all(r[2] in VECTOR_KINDS for r in s.recs)


def test_grad_sum_counts_the_extra_consumers() -> None:
    s = Sink()
    x = _t(2, 5)
    y = x * 1.0
    vu.grad_sum(s, "n", y, 3)
    (y.sum() + (2 * y).sum() + (3 * y).sum()).backward()
    assert s.recs == [("n", "backward_data", "grad_add", 20)]
    vu.grad_sum(s, "m", x * 1.0, 1)  # a single consumer: nothing to sum
    assert len(s.recs) == 1


# ---- step level ----------------------------------------------------------------------------

def _algo(name: str, model: str = "lenet5", batch: int = 2):
    graph = load_model(model)
    nc = NumericsConfig(TensorNumerics(8), TensorNumerics(8), TensorNumerics(8),
                        grad_interval=GRAD_INTERVAL[name])  # type: ignore[arg-type]
    net = build_qnet(graph, nc, seed=5)
    alg = make_algorithm(name, net, graph, AlgoOptions(), seed=5)  # type: ignore[arg-type]
    c, h, w = graph.input_shape
    x = torch.randn((2 * batch, c, h, w), generator=torch.Generator().manual_seed(1))
    y = torch.arange(2 * batch) % 10
    b = Batch(x[:batch], y[:batch], x[batch:], y[batch:])
    alg.prepare(b)
    return graph, alg, b


def _lowered_vectors(graph, alg, batch: int) -> Counter:
    req = TimingRequest(phase="train", algo=alg.name, batch=batch, w_bits=8, a_bits=8, g_bits=8)
    return Counter((o.pass_name, o.layer, o.kind, o.elems)
                   for o in lower(graph, req, alg.recipe) if isinstance(o, VectorOp))


def _executed(alg) -> Counter:
    return Counter((v.pass_name, v.layer, v.kind, v.elems) for v in alg.log.vectors)


def test_step_records_equal_the_lowering_before_any_removal() -> None:
    graph, alg, b = _algo("fb")
    alg.step(b)
    assert _executed(alg) == _lowered_vectors(graph, alg, 2)


@pytest.mark.parametrize(("algo", "fn", "kinds"), [
    ("sgd", "relu", {"relu", "relu_bwd"}),
    ("sgd", "update", {"sgd_update"}),
    ("fb", "blend", {"blend"}),
    ("laq", "run", {"laq_projection"}),
])
def test_removing_an_ops_execution_removes_its_record(monkeypatch: pytest.MonkeyPatch,
                                                      algo: str, fn: str,
                                                      kinds: set[str]) -> None:
    """Replace one vector-unit op by a version that does not execute it (identity, no-op
    update, plain blend, projection skipped): its records vanish and the recipe comparison
    reports exactly those as lowered but not executed."""
    real = getattr(vu, fn)

    def identity(sink, layer, x):  # relu not executed
        return x

    def no_update(sink, layer, pass_name, kind, step, params, grads):
        return None

    def unrecorded_blend(sink, layer, pass_name, a, xs, b_, ys):  # ran off the vector unit
        return [a * x + b_ * y for x, y in zip(xs, ys, strict=True)]

    def skip_projection(sink, layer, pass_name, kind, f, x):
        if kind == "laq_projection":  # keep the current codes: no projection ran
            return 1.0, torch.zeros_like(x)
        return real(sink, layer, pass_name, kind, f, x)

    fake = {"relu": identity, "update": no_update, "blend": unrecorded_blend,
            "run": skip_projection}[fn]
    graph, alg, b = _algo(algo)  # built (and LAQ's setup projection run) unpatched
    monkeypatch.setattr(vu, fn, fake)
    params = {n: p.detach().clone() for n, p in alg.net.named_parameters()}
    alg.step(b)
    got, want = _executed(alg), _lowered_vectors(graph, alg, 2)
    missing = want - got
    assert missing and {k for _, _, k, _ in missing} == kinds
    assert not got - want  # nothing recorded that did not run
    if fn == "update":  # and indeed nothing was updated
        assert all(torch.equal(p, params[n]) for n, p in alg.net.named_parameters())


def test_network_records_equal_module_hooks() -> None:
    """Forward/backward records of the fp32 nodes equal what torch module hooks observe of
    the same modules running (the output numel, the output gradient numel)."""
    graph, alg, b = _algo("sgd", "resnet20")
    seen: Counter = Counter()
    for node in graph.nodes[1:]:
        mod = alg.net.layers[node.name.replace(".", "_")]
        if not isinstance(mod, VectorNode) or node.op in ("flatten", "add"):
            continue

        def fwd(m, inp, out, node=node):
            kind = "batchnorm_fwd" if node.op == "batchnorm" else node.op
            seen[("forward", node.name, kind, out.numel())] += 1

        def bwd(m, gin, gout, node=node):
            kind = "batchnorm_bwd" if node.op == "batchnorm" else f"{node.op}_bwd"
            seen[("backward_data", node.name, kind, gout[0].numel())] += 1

        mod.register_forward_hook(fwd)
        mod.register_full_backward_hook(bwd)
    alg.step(b)
    kinds = {k for _, _, k, _ in seen}
    got = Counter(r for r in _executed(alg).elements() if r[2] in kinds)
    assert got == seen and len(seen) > 20


@pytest.mark.parametrize("algo", ["sgd", "laq", "octo", "metagrad"])
def test_update_records_match_the_parameters_the_step_changed(algo: str) -> None:
    graph, alg, b = _algo(algo)
    # MetaGrad: the hypernetwork's Adam step needs a previous step, and its first layer's
    # gradient a non-zero output layer in the φ that produced the previous update (the output
    # layer starts at zero and first moves at step 2, so step 4 is the first to move all).
    for _ in range(3 if algo == "metagrad" else 0):
        alg.step(b)
    before = {id(p): p.detach().clone() for p in alg.net.parameters()}
    hyper = getattr(alg, "hyper", None)
    hyper_before = [p.detach().clone() for p in hyper.parameters()] if hyper else []
    alg.step(b)
    recs = Counter()
    for v in alg.log.vectors:
        if v.kind in ("sgd_update", "adam_update") and v.pass_name in ("update", "hypernet"):
            recs[v.layer] += v.elems
    changed = Counter()
    for grp in alg.groups:
        for p in grp.params:
            if not torch.equal(p.detach(), before[id(p)]) or algo in ("laq",):
                changed[grp.node] += p.numel()  # LAQ: ŵ may keep its codes; master moved
    lac = getattr(alg, "lac", {})
    for name, m in lac.items():
        changed[name] += sum(t.numel() for t in (m.a, m.mu, m.o)
                             if not torch.equal(t.detach(), before[id(t)]))
    if hyper is not None:
        changed["hypernet"] = sum(p.numel() for p, q in zip(hyper.parameters(), hyper_before,
                                                            strict=True)
                                  if not torch.equal(p.detach(), q))
    assert recs == changed
