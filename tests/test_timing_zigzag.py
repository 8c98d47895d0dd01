"""fxpsim against stored ZigZag 3.9 numbers on the same edge_npu description (the fixture is
written by ``tools/crosscheck_zigzag.py --out``; ZigZag itself is not needed here).

Targets: totals within +-30% of ZigZag for cycles and for energy over the GEMM layers, and
every GEMM layer's cycles within 2x. docs/zigzag_crosscheck.md explains what differs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fxpsim.config.load import load_hwconfig
from fxpsim.graph.resolve import load_model
from fxpsim.timing.mapping import pass_kind
from fxpsim.timing.ops import GemmOp, TimingRequest
from fxpsim.timing.simulate import simulate

FIXTURE = Path(__file__).parent / "fixtures" / "zigzag_edge_npu.json"
CASES = {"imagenet_vgg16_forward_b1": ("vgg16_imagenet", "infer"),
         "cifar_vgg16_train_step_b1": ("vgg16", "train")}


def _fxpsim(case: str) -> dict[str, tuple[int, float]]:
    model, phase = CASES[case]
    graph = load_model(model)
    res = simulate(graph, load_hwconfig("edge_npu").config,
                   TimingRequest(phase=phase, batch=1))  # type: ignore[arg-type]
    out = {}
    from fxpsim.timing.lowering import lower

    ops = [op for op in lower(graph, TimingRequest(phase=phase, batch=1))  # type: ignore[arg-type]
           if isinstance(op, GemmOp)]
    recs = [r for r in res.records if r.gemm is not None]
    for op, r in zip(ops, recs, strict=True):
        out[f"{op.layer}.{pass_kind(op)}"] = (r.metrics.cycles, r.metrics.energy_pj)
    return out


@pytest.mark.parametrize("case", sorted(CASES))
def test_within_targets_of_zigzag(case: str) -> None:
    stored = {c["case"]: c for c in json.loads(FIXTURE.read_text())["cases"]}[case]
    ours = _fxpsim(case)
    zz = {r["layer"]: (r["zigzag_cycles"], r["zigzag_energy_pj"]) for r in stored["layers"]}
    assert set(ours) == set(zz)
    for name, (cyc, _) in ours.items():
        ratio = cyc / zz[name][0]
        assert 0.5 <= ratio <= 2.0, (name, cyc, zz[name][0])
    for i, what in ((0, "cycles"), (1, "energy")):
        total = sum(v[i] for v in ours.values()) / sum(v[i] for v in zz.values())
        assert 0.7 <= total <= 1.3, (what, total)
