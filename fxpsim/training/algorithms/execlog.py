"""What one training step executed, in the time plane's vocabulary (:class:`ExecLog`).

Every record is made by the code that executed the work, from the tensors it touched:

* GEMMs by the one wrapper that calls the integer kernels
  (:class:`~fxpsim.training.qgemm.PassGemms`): operand shapes, precisions and accumulator
  settings it was given;
* fp32 vector-unit work by :mod:`fxpsim.training.vector_unit`, whose functions perform an op
  and then record its kind (one of :data:`fxpsim.vocab.VECTOR_KINDS`) and the element count of
  the tensors it touched — the network's fp32 nodes, bias gradients and fan-out gradient sums
  into the QNet's counters (pass = the role ``forward`` / ``backward_data`` /
  ``backward_weight``), the algorithm's own ops (loss, optimizer steps, projection, blend,
  hypernetwork, LBT count, BN rectification) straight into this log under their recipe pass
  (this log is a :class:`~fxpsim.training.vector_unit.VectorSink`);
* quantizations by the layers' quantizer calls (one record per quantized tensor, its
  element count).

An algorithm drains the QNet's records into its log after each segment of its step
(:meth:`ExecLog.drain`): roles map to the segment's recipe pass names (:class:`PassNames`,
e.g. ``fb_trial_forward``); element counts are never recomputed. A quantizer record becomes
the lowering's two ops of a dynamic-range quantization, ``reduce_max`` + ``quantize``:

* ``quantize_grad`` -> in ``grad_quant`` (plus Octo's ``prc_clip`` in ``octo_requant`` when
  the clip factor is PRC); ``quantize_grad_copy`` (the per-tensor dY copy of per-channel /
  per-sample gradient quantization) -> in ``grad_quant``;
* ``quantize_weight_clip`` (weights under a learned forward clip) -> ``quantize`` alone in
  ``update`` (the clip is given: no max reduction);
* ``quantize_weight`` -> in ``update`` (the lowering charges the re-quantization of the
  updated weights at the end of the step; the value plane does it at the next forward: one per
  layer and step either way). For LAQ-style algorithms the projection already produced the
  codes (``laq_projection``): the QNet's re-quantization of ``ŵ = α·b`` is dropped (it
  reproduces the same codes when some ``|b| = 1``);
* Octo's ``requant_x`` / ``requant_w`` -> ``reduce_max`` + ``prc_quantize`` in
  ``octo_requant``;
* ``quantize_act`` -> nothing: the time plane folds activation requantization into the op
  producing the activation. (The first layer's input quantization therefore has no
  time-plane op: a known gap.)

A test then compares the log of one real step with ``lower(graph, TimingRequest(...))``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from fxpsim.graph.ir import Graph
from fxpsim.training.stats import Counters


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

    def clear(self) -> None:
        self.gemms.clear()
        self.vectors.clear()

    # ---- records ----------------------------------------------------------------------
    def record(self, layer: str, pass_name: str, kind: str, elems: int) -> None:
        """A vector op that ran (the :class:`~fxpsim.training.vector_unit.VectorSink`
        interface: called by the vector unit, never by hand)."""
        self.vectors.append(ExecVector(layer, pass_name, kind, int(elems)))
        self.totals[(pass_name, kind)] += 1

    def gemm(self, rec: ExecGemm) -> None:
        self.gemms.append(rec)
        self.totals[(rec.pass_name, "gemm")] += 1
        self.macs[(rec.pass_name, "integer" if rec.integer else "float")] += rec.macs

    # ---- QNet records -----------------------------------------------------------------
    def drain(self, counters: Counters, names: PassNames = MAIN_PASSES) -> None:
        """Move all records of a QNet's ``counters`` into this log under the recipe pass
        names ``names``, then reset the counters (see the module docstring)."""
        roles = {"forward": names.forward, "backward_data": names.backward_data,
                 "backward_weight": names.backward_weight}
        for g in counters.gemms:
            self.gemm(ExecGemm(g.layer, roles[g.pass_name], g.m, g.k, g.n, g.groups,
                               g.integer, g.a_bits, g.b_bits, g.acc_bits))
        for v in counters.vector_ops:
            if v.op:  # a quantizer's record
                self._quantization(v.layer, v.pass_name, v.kind, v.elems, names)
            else:  # the vector unit's: already the lowering's kind and count
                self.record(v.layer, roles.get(v.pass_name, v.pass_name), v.kind, v.elems)
        counters.reset()

    def _quantization(self, layer: str, pass_name: str, kind: str, elems: int,
                      names: PassNames) -> None:
        if kind == "quantize_act":
            return
        if kind in ("quantize_weight", "quantize_weight_clip"):
            if not self.weights_from_projection:
                if kind == "quantize_weight":  # a learned clip needs no max reduction
                    self.record(layer, names.update, "reduce_max", elems)
                self.record(layer, names.update, "quantize", elems)
            return
        if kind == "quantize_grad_copy":  # per-tensor dY copy (per-channel/-sample grads)
            self.record(layer, names.grad_quant, "reduce_max", elems)
            self.record(layer, names.grad_quant, "quantize", elems)
            return
        if kind in ("requant_x", "requant_w"):  # Octo: clip + re-quantize for the backward
            self.record(layer, "octo_requant", "reduce_max", elems)
            self.record(layer, "octo_requant", "prc_quantize", elems)
            return
        if kind == "quantize_grad":
            self.record(layer, names.grad_quant, "reduce_max", elems)
            self.record(layer, names.grad_quant, "quantize", elems)
            if self.prc and names.grad_quant == "grad_quant":
                self.record(layer, "octo_requant", "prc_clip", elems)
            return
        self.record(layer, pass_name, kind, elems)  # stays visible: the recipe test flags it

    # ---- views ------------------------------------------------------------------------
    def signatures(self) -> Counter:
        """Multiset of op signatures of the current step (GEMMs and vector ops)."""
        return Counter([g.signature for g in self.gemms] + [v.signature for v in self.vectors])
