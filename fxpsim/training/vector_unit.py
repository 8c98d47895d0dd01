"""The value plane's vector unit: fp32 ops that execute *and* record themselves.

Every function here performs one vector-unit op on the tensors it is given and then hands
one record ``(layer, pass, kind, elems)`` to a :class:`VectorSink` (the QNet's
:class:`~fxpsim.training.stats.Counters` or an algorithm's
:class:`~fxpsim.training.algorithms.execlog.ExecLog`). Nobody else writes vector records, so

* a record exists only if the op ran: it is made after the op returned (an op that raised
  leaves none), and a backward op's record is made by an autograd hook on the node that
  computed it, which fires only after that node executed (:func:`_after_backward`);
* ``elems`` is read from the tensors the op touched, as the time plane's lowering counts the
  op: the tensor an op produces (forward ops, blend), the output gradient a backward node
  consumed, the parameters an optimizer step wrote, the operand a per-element op streams
  over (:func:`run`), the channels a statistics op reduced to;
* ``kind`` is one of the lowering's vector kinds (:data:`fxpsim.vocab.VECTOR_KINDS`, the one
  vocabulary); anything else is a ``ValueError``.

``pass_name`` is the recipe pass for an algorithm's own ops; the network's ops record their
role (``forward`` / ``backward_data`` / ``backward_weight``), which the ExecLog maps to the
pass names of the segment that ran (main step or a trial step).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

import torch
import torch.nn.functional as F

from fxpsim.vocab import VECTOR_BACKWARD, VECTOR_KINDS

T = TypeVar("T")


class VectorSink(Protocol):
    """Where executed vector ops are recorded."""

    def record(self, layer: str, pass_name: str, kind: str, elems: int) -> None: ...


class NullSink:
    """Work that is not part of a training step (setup, calibration): recorded nowhere."""

    def record(self, layer: str, pass_name: str, kind: str, elems: int) -> None:
        return None


NULL_SINK = NullSink()


def _record(sink: VectorSink, layer: str, pass_name: str, kind: str, elems: int) -> None:
    if kind not in VECTOR_KINDS:
        raise ValueError(f"kind: {kind!r} is not a vector kind of the time plane "
                         f"(fxpsim.vocab.VECTOR_KINDS)")
    sink.record(layer, pass_name, kind, int(elems))


Hook = Callable[[tuple[torch.Tensor | None, ...], tuple[torch.Tensor | None, ...]], None]


def _after_backward(sink: VectorSink, out: torch.Tensor, hook: Hook) -> None:
    """Call ``hook(grad_inputs, grad_outputs)`` after the autograd node that produced ``out``
    has executed (nothing when ``out`` is not part of a backward graph, or for the null sink:
    an fp32 reference network pays no recording cost)."""
    if out.requires_grad and out.grad_fn is not None and not isinstance(sink, NullSink):
        out.grad_fn.register_hook(hook)


def _numel(t: torch.Tensor | None) -> int:
    return 0 if t is None else t.numel()


# ---- algorithm-side ops ---------------------------------------------------------------------

def run(sink: VectorSink, layer: str, pass_name: str, kind: str,
        fn: Callable[[torch.Tensor], T], x: torch.Tensor) -> T:
    """``fn(x)`` on the vector unit: one per-element op streaming over ``x`` (projection,
    hypernetwork, interval count, rectification), recorded with ``x.numel()`` elements."""
    out = fn(x)
    _record(sink, layer, pass_name, kind, x.numel())
    return out


def update(sink: VectorSink, layer: str, pass_name: str, kind: str,
           step: Callable[[torch.Tensor, torch.Tensor], object],
           params: Sequence[torch.Tensor], grads: Sequence[torch.Tensor]) -> None:
    """Optimizer ``step(p, g)`` over every (parameter, gradient) pair of one node, in order;
    one ``kind`` record (``sgd_update`` / ``adam_update``) of the parameter elements the
    steps were given."""
    if len(params) != len(grads):
        raise ValueError(f"grads: {len(grads)} gradients for {len(params)} parameters")
    for p, g in zip(params, grads, strict=True):
        step(p, g)
    _record(sink, layer, pass_name, kind, sum(p.numel() for p in params))


def blend(sink: VectorSink, layer: str, pass_name: str, a: float, xs: Sequence[torch.Tensor],
          b: float, ys: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """``a·x + b·y`` per pair (forward-and-backtrack's gradient blend), recorded with the
    elements produced."""
    out = [a * x + b * y for x, y in zip(xs, ys, strict=True)]
    _record(sink, layer, pass_name, "blend", sum(o.numel() for o in out))
    return out


def softmax_xent(sink: VectorSink, layer: str, pass_name: str, logits: torch.Tensor,
                 y: torch.Tensor) -> torch.Tensor:
    """Mean softmax cross-entropy of ``logits`` (its backward, dlogits, is the same op's
    second half in the time plane), recorded with the logits' elements."""
    loss = F.cross_entropy(logits, y)
    _record(sink, layer, pass_name, "softmax_xent", logits.numel())
    return loss


# ---- network-side ops (the QNet's fp32 nodes) ----------------------------------------------

def bias_add(sink: VectorSink, layer: str, y: torch.Tensor, bias: torch.Tensor,
             shape: tuple[int, ...] | None = None) -> torch.Tensor:
    """``y + bias`` (``bias.view(shape)`` if given). The forward add happens in the
    accumulator in the time plane (no record); the backward's batch reduction of dY into the
    bias gradient runs in this add's autograd node, recorded as ``bias_grad`` with the dY
    elements it reduced."""
    out = y + (bias if shape is None else bias.view(shape))

    def hook(gi: tuple[torch.Tensor | None, ...], go: tuple[torch.Tensor | None, ...]) -> None:
        if len(gi) > 1 and gi[1] is not None:  # the bias gradient was computed
            _record(sink, layer, "backward_weight", "bias_grad", _numel(go[0]))

    _after_backward(sink, out, hook)
    return out


def _pointwise(sink: VectorSink, layer: str, op: str, y: torch.Tensor) -> torch.Tensor:
    """Record the forward ``op`` (elements produced) and its backward (dY consumed)."""
    _record(sink, layer, "forward", op, y.numel())
    bwd = VECTOR_BACKWARD[op]
    _after_backward(sink, y, lambda gi, go: _record(sink, layer, "backward_data", bwd,
                                              _numel(go[0])))
    return y


def relu(sink: VectorSink, layer: str, x: torch.Tensor) -> torch.Tensor:
    return _pointwise(sink, layer, "relu", F.relu(x))


def relu6(sink: VectorSink, layer: str, x: torch.Tensor) -> torch.Tensor:
    return _pointwise(sink, layer, "relu6", F.hardtanh(x, 0.0, 6.0))


def pool(sink: VectorSink, layer: str, op: str, x: torch.Tensor, kernel: tuple[int, int],
         stride: tuple[int, int], padding: tuple[int, int]) -> torch.Tensor:
    """``maxpool`` / ``avgpool`` (elements produced; backward: dY consumed)."""
    if op == "maxpool":
        y = F.max_pool2d(x, kernel, stride, padding)
    elif op == "avgpool":
        y = F.avg_pool2d(x, kernel, stride, padding)
    else:
        raise ValueError(f"op: expected maxpool or avgpool, got {op!r}")
    return _pointwise(sink, layer, op, y)


def global_avgpool(sink: VectorSink, layer: str, x: torch.Tensor) -> torch.Tensor:
    return _pointwise(sink, layer, "global_avgpool", x.mean(dim=(2, 3), keepdim=True))


def add(sink: VectorSink, layer: str, xs: Sequence[torch.Tensor]) -> torch.Tensor:
    """Residual sum; its backward routes dY unchanged to every input (no op, no record)."""
    y = xs[0]
    for t in xs[1:]:
        y = y + t
    _record(sink, layer, "forward", "add", y.numel())
    return y


def batchnorm(sink: VectorSink, layer: str, bn: torch.nn.Module, x: torch.Tensor
              ) -> torch.Tensor:
    """``bn(x)``. Training: ``batchnorm_fwd`` (elements normalized) + ``batchnorm_stats``
    (the channels whose statistics were reduced); backward: ``batchnorm_bwd`` (dY consumed)
    + ``batchnorm_bwd_stats`` (the γ gradient produced). Eval: ``batchnorm_infer``."""
    y = bn(x)
    if not bn.training:
        _record(sink, layer, "forward", "batchnorm_infer", y.numel())
        return y
    _record(sink, layer, "forward", "batchnorm_fwd", y.numel())
    _record(sink, layer, "forward", "batchnorm_stats", x.shape[1])

    def hook(gi: tuple[torch.Tensor | None, ...], go: tuple[torch.Tensor | None, ...]) -> None:
        _record(sink, layer, "backward_data", "batchnorm_bwd", _numel(go[0]))
        if len(gi) > 1 and gi[1] is not None:
            _record(sink, layer, "backward_data", "batchnorm_bwd_stats", gi[1].numel())

    _after_backward(sink, y, hook)
    return y


def lac(sink: VectorSink, layer: str, y: torch.Tensor, a: torch.Tensor, mu: torch.Tensor,
        o: torch.Tensor) -> torch.Tensor:
    """Octo's loss-aware compensation ``y + a⊙μ + o`` (``lac_fwd``, elements of ``y``); its
    backward (``lac_bwd``, the dY consumed) is recorded after the final add's node ran."""
    out = y + a * mu + o
    _record(sink, layer, "forward", "lac_fwd", y.numel())
    _after_backward(sink, out, lambda gi, go: _record(sink, layer, "backward_data", "lac_bwd",
                                                _numel(go[0])))
    return out


def grad_sum(sink: VectorSink, layer: str, y: torch.Tensor, consumers: int) -> None:
    """``y`` feeds ``consumers`` nodes: autograd sums their gradients before ``y``'s
    producer runs its backward — ``consumers − 1`` adds over dY, recorded (``grad_add``) when
    that summed gradient arrives."""
    if consumers >= 2 and y.requires_grad and not isinstance(sink, NullSink):
        y.register_hook(lambda g: _record(sink, layer, "backward_data", "grad_add",
                                          g.numel() * (consumers - 1)))
