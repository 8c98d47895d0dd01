"""The value plane executes exactly the work the time plane charges.

One real training step of each algorithm on a small model: the GEMMs (layer, pass, m, k, n,
groups) and vector ops (layer, pass, kind, elems) the QNet and the algorithm executed —
translated to the lowering's vocabulary by ExecLog — must equal
``lower(graph, TimingRequest(phase="train", algo=..., batch=...))`` as multisets, and the
GEMMs of each pass must run in the lowering's layer order. The step compared is the second
one (MetaGrad's hypernetwork backward needs a previous step; see test_metagrad_first_step).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import pytest
import torch

from fxpsim.config.load import load_hwconfig
from fxpsim.errors import FxpsimError
from fxpsim.graph.resolve import load_model
from fxpsim.timing.lowering import lower, op_signature
from fxpsim.timing.ops import GemmOp, TimingRequest, VectorOp
from fxpsim.training.algorithms import GRAD_INTERVAL, AlgoOptions, Batch, make_algorithm
from fxpsim.training.data import adapt, load_dataset
from fxpsim.training.formats import NumericsConfig
from fxpsim.training.qnet import build_qnet
from fxpsim.vocab import ALGORITHMS

ALGOS = ALGORITHMS
_HW = None
_DATA: dict[tuple[int, ...], tuple[torch.Tensor, torch.Tensor]] = {}


def _hw():
    global _HW
    if _HW is None:
        _HW = load_hwconfig("edge_npu", {}).config
    return _HW


def _batch(shape: tuple[int, ...], n: int) -> Batch:
    if shape not in _DATA:
        ds = adapt(load_dataset(limit_train=40, limit_test=10), shape)  # type: ignore[arg-type]
        _DATA[shape] = (torch.from_numpy(ds.train_x), torch.from_numpy(ds.train_y))
    x, y = _DATA[shape]
    return Batch(x[:n], y[:n], x[n:2 * n], y[n:2 * n])


def _run(algo: str, model: str, batch: int, bits: tuple[int | None, int | None, int | None],
         steps: int = 2, **opts: object):
    graph = load_model(model)
    w, a, g = bits
    nc = NumericsConfig.from_hw(_hw(), w_bits=w, a_bits=a, g_bits=g,
                                grad_interval=GRAD_INTERVAL[algo])  # type: ignore[arg-type]
    octo_backward = str(opts.pop("octo_backward", "requant"))
    if algo == "octo" and octo_backward == "requant":
        nc = replace(nc, bwd_requant=True)
    net = build_qnet(graph, nc, seed=3)
    alg = make_algorithm(algo, net, graph, AlgoOptions(**opts), seed=3)  # type: ignore[arg-type]
    b = _batch(tuple(graph.input_shape), batch)
    alg.prepare(b)
    for _ in range(steps):
        alg.step(b)
    req = TimingRequest(phase="train", algo=algo, batch=batch, w_bits=w, a_bits=a, g_bits=g,
                        octo_backward=octo_backward)  # type: ignore[arg-type]
    return graph, alg, lower(graph, req, alg.recipe)


def _diff(got: Counter, want: Counter) -> str:
    extra = sorted(map(str, (got - want).elements()))[:8]
    missing = sorted(map(str, (want - got).elements()))[:8]
    return f"executed but not lowered: {extra}\nlowered but not executed: {missing}"


def _precision(o: GemmOp) -> tuple[object, ...]:
    """A lowered GEMM's signature with the operand precisions the kernels must be given."""
    bits = (None, None) if o.float_operands else (o.a_bits, o.b_bits)
    return (*op_signature(o), *bits)


def _check(alg, ops, *, vectors: bool = True) -> None:
    want_g = Counter(_precision(o) for o in ops if isinstance(o, GemmOp))
    got_g = Counter((*g.signature, g.a_bits, g.b_bits) for g in alg.log.gemms)
    assert got_g == want_g, _diff(got_g, want_g)
    for p in {o.pass_name for o in ops if isinstance(o, GemmOp)}:
        lowered = [o.layer for o in ops if isinstance(o, GemmOp) and o.pass_name == p]
        executed = [g.layer for g in alg.log.gemms if g.pass_name == p]
        assert executed == lowered, p  # autograd interleaves dX/dW; each pass keeps order
    if vectors:
        want_v = Counter(op_signature(o) for o in ops if isinstance(o, VectorOp))
        got_v = Counter(v.signature for v in alg.log.vectors)
        assert got_v == want_v, _diff(got_v, want_v)


@pytest.mark.parametrize("algo", [a for a in ALGOS if a not in ("octo", "bnrect")])
def test_lenet5_step_matches_lowering(algo: str) -> None:
    _, alg, ops = _run(algo, "lenet5", 4, (4, 8, 8))
    _check(alg, ops)
    assert all(g.integer for g in alg.log.gemms)


@pytest.mark.parametrize("algo", ["sgd", "fb", "bnrect", "lbt"])
def test_resnet20_step_matches_lowering(algo: str) -> None:
    """BN, residual adds, fan-out gradient sums (grad_add) and global pooling."""
    _, alg, ops = _run(algo, "resnet20", 2, (8, 8, 8))
    _check(alg, ops)


@pytest.mark.parametrize("algo", ["sgd", "laq", "fb"])
def test_float_baseline_matches_lowering(algo: str) -> None:
    """w/a/g float: same network and recipe in fp32 (no quantize/projection ops)."""
    _, alg, ops = _run(algo, "lenet5", 4, (None, None, None))
    _check(alg, ops)
    assert not any(g.integer for g in alg.log.gemms)
    kinds = {v.kind for v in alg.log.vectors}
    assert not kinds & {"quantize", "reduce_max", "laq_projection"}


# every built-in model family: VGG, ResNet with projection shortcuts, MobileNetV2 with
# depthwise convs, LeNet-5 (batch 1, one step after a warm-up: the records, not accuracy)
FAMILIES = ("vgg16", "resnet20", "mobilenetv2", "lenet5")


@pytest.mark.parametrize("model", FAMILIES)
@pytest.mark.parametrize("algo", ALGORITHMS)
def test_every_family_executes_what_is_lowered(algo: str, model: str) -> None:
    """GEMM shapes, groups and operand precisions recorded by the kernel wrapper, and the
    vector ops, of one real step equal the lowering (MetaGrad: the second step)."""
    if algo == "bnrect" and not any(n.op == "batchnorm" for n in load_model(model).nodes):
        with pytest.raises(FxpsimError, match="has none"):  # nothing to rectify: an error
            _run(algo, model, 1, (8, 8, 8))
        return
    graph, alg, ops = _run(algo, model, 1, (8, 8, 8), steps=2 if algo == "metagrad" else 1)
    _check(alg, ops, vectors=True)
    assert all(g.integer and g.acc_bits == 32 for g in alg.log.gemms)
    if model == "mobilenetv2":
        assert any(g.groups > 1 for g in alg.log.gemms)  # depthwise ran per group
    if model == "resnet20":
        assert any("shortcut" in g.layer for g in alg.log.gemms)


def test_octo_gemms_match_lowering() -> None:
    _, alg, ops = _run("octo", "lenet5", 4, (8, 8, 8))
    _check(alg, ops, vectors=False)
    kinds = Counter((v.pass_name, v.kind) for v in alg.log.vectors)
    assert kinds[("forward", "lac_fwd")] == 2 and kinds[("backward_data", "lac_bwd")] == 2
    assert kinds[("octo_requant", "prc_clip")] == 5


@pytest.mark.parametrize("mode", ["requant", "reuse"])
def test_octo_vectors_match_lowering(mode: str) -> None:
    """Octo's conv backward re-quantizes the range-clipped X and W (the demo) or reuses the
    forward codes (``octo.backward=reuse``), in both planes alike."""
    _, alg, ops = _run("octo", "lenet5", 4, (8, 8, 8), octo_backward=mode)
    _check(alg, ops)
    kinds = Counter((v.pass_name, v.kind) for v in alg.log.vectors)
    assert kinds[("octo_requant", "prc_quantize")] == (4 if mode == "requant" else 0)


def test_metagrad_first_step() -> None:
    """Step 1 has no previous update to differentiate through: no hypernet_bwd and no
    hypernetwork Adam step; everything else is the recipe's."""
    _, alg, ops = _run("metagrad", "lenet5", 4, (4, 8, 8), steps=1)
    want = Counter(op_signature(o) for o in ops
                   if not (isinstance(o, VectorOp) and o.pass_name == "hypernet"
                           and o.kind in ("hypernet_bwd", "adam_update")))
    got = alg.log.signatures()
    assert got == want, _diff(got, want)


def test_fb_trial_passes_are_labelled() -> None:
    _, alg, _ = _run("fb", "lenet5", 4, (4, 8, 8), steps=1)
    passes = Counter(g.pass_name for g in alg.log.gemms)
    assert passes == {"forward": 5, "backward_data": 4, "backward_weight": 5,
                      "fb_trial_forward": 5, "fb_trial_backward_data": 4,
                      "fb_trial_backward_weight": 5}
