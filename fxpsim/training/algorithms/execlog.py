"""What one training step executed, in the time plane's vocabulary (:class:`ExecLog`).

The value plane's :class:`~fxpsim.training.qnet.QNet` logs its GEMMs and vector ops with its
own pass names (``forward`` / ``backward``) and kinds (``quantize_act``, ``relu`` ...). An
algorithm drains those records into an :class:`ExecLog` after each segment of its step,
translating them to the pass names of its recipe (:mod:`fxpsim.recipes`) and to the
vector kinds of :mod:`fxpsim.timing.lowering`; the algorithm's own work (loss, optimizer,
projection, blend, hypernetwork, LBT count, compensation layer) is logged directly. A test
then compares the log of one real step with ``lower(graph, TimingRequest(...))``.

Translation of QNet vector records (``elems`` as recorded: the elements of the node's output
or output gradient, the lowering's convention):

* forward ``relu``/``relu6``/``maxpool``/``avgpool``/``global_avgpool``/``add`` -> the same
  kind; forward ``batchnorm`` -> ``batchnorm_fwd`` + ``batchnorm_stats`` (channels).
* backward ``relu``/... -> ``<op>_bwd`` in ``backward_data``; ``batchnorm`` ->
  ``batchnorm_bwd`` + ``batchnorm_bwd_stats``; ``add`` -> nothing (gradient routed).
* backward ``quantize_grad`` -> ``reduce_max`` + ``quantize`` in ``grad_quant`` (and a
  ``prc_clip`` in ``octo_requant`` when the clip factor is Octo's PRC);
  ``quantize_grad_copy`` (the per-tensor dY copy of per-channel / per-sample gradient
  quantization) -> ``reduce_max`` + ``quantize`` in ``grad_quant``.
* backward ``scale_grad_w`` / ``scale_grad_a`` (STE of learned forward clips) ->
  ``scale_grad`` in ``backward_weight`` / ``backward_data``; forward
  ``quantize_weight_clip`` (weights under a learned clip) -> ``quantize`` in ``update``.
* forward ``quantize_weight`` -> ``reduce_max`` + ``quantize`` in ``update`` (the lowering
  charges the re-quantization of the updated weights at the end of the step; the value plane
  does it at the next forward: one per layer and step either way). For LAQ-style algorithms
  the projection already produced the codes (``laq_projection``): the QNet's re-quantization
  of ``ŵ = α·b`` is dropped (it reproduces the same codes when some ``|b| = 1``).
* forward ``quantize_act`` and ``bias_add`` -> nothing: the time plane folds activation
  requantization into the op producing the activation and adds the bias in the accumulator.
  (The first layer's input quantization therefore has no time-plane op: a known gap.)
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

from fxpsim.graph.ir import Graph
from fxpsim.vocab import VECTOR_BACKWARD, VECTOR_FORWARD


@dataclass(frozen=True)
class ExecGemm:
    layer: str
    pass_name: str
    m: int
    k: int
    n: int
    groups: int
    integer: bool
    # operand precisions the kernel was given (None: fp32) and the accumulator it ran in
    a_bits: int | None = None
    b_bits: int | None = None
    acc_bits: int | None = None

    @property
    def signature(self) -> tuple[object, ...]:
        """Same layout as :func:`fxpsim.timing.lowering.op_signature` for GEMMs."""
        return ("gemm", self.pass_name, self.layer, self.m, self.k, self.n, self.groups)

    @property
    def macs(self) -> int:
        return self.groups * self.m * self.k * self.n


@dataclass(frozen=True)
class ExecVector:
    layer: str
    pass_name: str
    kind: str
    elems: int

    @property
    def signature(self) -> tuple[object, ...]:
        """Same layout as :func:`fxpsim.timing.lowering.op_signature` for vector ops."""
        return ("vector", self.pass_name, self.layer, self.kind, self.elems)


@dataclass(frozen=True)
class PassNames:
    """Recipe pass names a QNet segment's records are filed under."""

    forward: str = "forward"
    backward_data: str = "backward_data"
    backward_weight: str = "backward_weight"
    grad_quant: str = "grad_quant"
    update: str = "update"

    @staticmethod
    def prefixed(prefix: str) -> PassNames:
        return PassNames(f"{prefix}forward", f"{prefix}backward_data",
                         f"{prefix}backward_weight", f"{prefix}grad_quant", "update")


MAIN_PASSES = PassNames()


@dataclass
class ExecLog:
    """Executed GEMMs and vector ops of the current step (mutable; :meth:`clear` per step).

    ``totals`` keeps run-long counts per (pass, kind) (kind ``gemm`` for GEMMs, counted
    with their MACs under ``macs``) so long runs do not keep every record.
    """

    graph: Graph
    weights_from_projection: bool = False  # LAQ-style: drop the QNet's weight re-quantization
    prc: bool = False  # Octo: the gradient quantizer's clip is PRC
    gemms: list[ExecGemm] = field(default_factory=list)
    vectors: list[ExecVector] = field(default_factory=list)
    totals: Counter = field(default_factory=Counter)
    macs: Counter = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._nodes = {n.name: n for n in self.graph.nodes}
        fan: dict[str, int] = dict.fromkeys(self._nodes, 0)
        for n in self.graph.nodes:
            for i in n.inputs:
                fan[i] += 1
        self._fan = fan

    def clear(self) -> None:
        self.gemms.clear()
        self.vectors.clear()

    # ---- direct records ---------------------------------------------------------------
    def vector(self, layer: str, pass_name: str, kind: str, elems: int) -> None:
        self.vectors.append(ExecVector(layer, pass_name, kind, int(elems)))
        self.totals[(pass_name, kind)] += 1

    def gemm(self, rec: ExecGemm) -> None:
        self.gemms.append(rec)
        self.totals[(rec.pass_name, "gemm")] += 1
        self.macs[(rec.pass_name, "integer" if rec.integer else "float")] += rec.macs

    # ---- QNet translation -------------------------------------------------------------
    def drain(self, counters: object, names: PassNames = MAIN_PASSES) -> None:
        """Translate and move all records of a QNet ``Counters`` into this log, then reset
        the counters. GEMM pass names map through ``names``; vector ops as in the module
        docstring."""
        gmap = {"forward": names.forward, "backward_data": names.backward_data,
                "backward_weight": names.backward_weight}
        for g in counters.gemms:  # type: ignore[attr-defined]
            self.gemm(ExecGemm(g.layer, gmap[g.pass_name], g.m, g.k, g.n, g.groups,
                               g.integer, g.a_bits, g.b_bits, g.acc_bits))
            if g.pass_name == "backward_weight":
                node = self._nodes[g.layer]  # k = B·OH·OW (conv) or B (linear)
                pixels = math.prod(node.shape[1:]) if len(node.shape) == 3 else 1
                self._fan_in_sum(g.layer, g.k // pixels, names)
        for v in counters.vector_ops:  # type: ignore[attr-defined]
            self._translate(v, names)
        counters.reset()  # type: ignore[attr-defined]

    def _translate(self, v: object, names: PassNames) -> None:
        layer, kind, pass_name = v.layer, v.kind, v.pass_name  # type: ignore[attr-defined]
        elems: int = v.elems  # type: ignore[attr-defined]
        node = self._nodes.get(layer)
        if kind in ("quantize_act", "bias_add"):
            return
        if kind in ("quantize_weight", "quantize_weight_clip"):
            if not self.weights_from_projection:
                if kind == "quantize_weight":  # a learned clip needs no max reduction
                    self.vector(layer, names.update, "reduce_max", elems)
                self.vector(layer, names.update, "quantize", elems)
            return
        if kind in ("scale_grad_w", "scale_grad_a"):  # STE of the learned forward clips
            self.vector(layer, names.backward_weight if kind == "scale_grad_w"
                        else names.backward_data, "scale_grad", elems)
            return
        if kind == "quantize_grad_copy":  # per-tensor dY copy (per-channel/-sample grads)
            self.vector(layer, names.grad_quant, "reduce_max", elems)
            self.vector(layer, names.grad_quant, "quantize", elems)
            return
        if kind in ("requant_x", "requant_w"):  # Octo: clip + re-quantize for the backward
            self.vector(layer, "octo_requant", "reduce_max", elems)
            self.vector(layer, "octo_requant", "prc_quantize", elems)
            return
        if kind == "quantize_grad":
            self.vector(layer, names.grad_quant, "reduce_max", elems)
            self.vector(layer, names.grad_quant, "quantize", elems)
            if self.prc and names.grad_quant == "grad_quant":
                self.vector(layer, "octo_requant", "prc_clip", elems)
            return
        if node is None:  # unknown record: keep it visible (the comparison will flag it)
            self.vector(layer, pass_name, kind, elems)
            return
        out = elems
        if pass_name == "forward":
            if kind == "batchnorm":
                self.vector(layer, names.forward, "batchnorm_fwd", out)
                self.vector(layer, names.forward, "batchnorm_stats", node.shape[0])
            elif kind in VECTOR_FORWARD:
                self.vector(layer, names.forward, kind, out)
            else:
                self.vector(layer, names.forward, kind, elems)
            return
        self._fan_in_sum(layer, out // max(node.out_elems, 1), names)
        if kind == "batchnorm":
            self.vector(layer, names.backward_data, "batchnorm_bwd", out)
            self.vector(layer, names.backward_data, "batchnorm_bwd_stats", node.shape[0])
        elif kind == "add":
            return
        elif kind in VECTOR_BACKWARD:
            self.vector(layer, names.backward_data, VECTOR_BACKWARD[kind], out)
        else:
            self.vector(layer, pass_name, kind, elems)

    def _fan_in_sum(self, layer: str, batch: int, names: PassNames) -> None:
        """Autograd summed the gradients of a node's ``fan`` consumers before running its
        backward (whose record we are translating): ``grad_add`` over ``fan - 1`` copies."""
        fan = self._fan.get(layer, 0)
        if fan >= 2:
            elems = batch * self._nodes[layer].out_elems * (fan - 1)
            self.vector(layer, names.backward_data, "grad_add", elems)

    # ---- views ------------------------------------------------------------------------
    def signatures(self) -> Counter:
        """Multiset of op signatures of the current step (GEMMs and vector ops)."""
        return Counter([g.signature for g in self.gemms] + [v.signature for v in self.vectors])
