"""The work list the lowering produces and the schedule consumes.

Lowering expands (graph x the algorithm's step recipe x operand formats) into an ordered
tuple of :class:`GemmOp` (run on the MAC array) and :class:`VectorOp` (run on the vector
unit). Shapes are per group: a grouped/depthwise conv is ``groups`` independent GEMMs of
``m x k x n``. Operand A is ``m x k`` (streamed), B is ``k x n``, the output ``m x n``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

TensorKind = Literal["activations", "weights", "gradients", "weight_gradients", "optimizer_state"]
Phase = Literal["infer", "train"]


@dataclass(frozen=True)
class TimingRequest:
    """What the time plane needs to know about the run (built from the RunConfig)."""

    phase: Phase = "train"
    algo: str = "sgd"
    batch: int = 32
    w_bits: int | None = 8  # None = float (fp32) operands
    a_bits: int | None = 8
    g_bits: int | None = 8
    rounding_w: str = "half_even"
    rounding_a: str = "half_even"
    rounding_g: str = "stochastic"
    timing: Literal["native", "scalesim"] = "native"
    projection_rounds: int = 5  # LAQ/FB alternating rounds per projection (recipe cost)
    hypernet_hidden: int = 100  # MetaGrad hypernetwork width (recipe cost)
    # Octo: conv backward GEMMs re-quantize the range-clipped X and W ("requant", the
    # demo's LAC conv) or reuse the forward codes ("reuse")
    octo_backward: Literal["requant", "reuse"] = "requant"
    objective: Literal["latency", "energy", "edp"] = "latency"  # mapping search objective
    schedule: Literal["overlap", "sequential"] = "overlap"  # engines at once, or op by op
    # learned forward clips (LBT): no max reduction for W, STE clip gradients, their Adam step
    forward_scales: Literal["minmax", "learned"] = "minmax"
    # dY scales per tensor / channel / sample (the latter two add a per-tensor copy of dY)
    g_granularity: Literal["tensor", "channel", "sample"] = "tensor"


@dataclass(frozen=True)
class GemmOp:
    layer: str  # graph node name
    op: str  # graph op ("conv2d", "linear")
    pass_name: str  # "forward", "backward_data", "backward_weight", or an algorithm's pass
    m: int
    k: int  # reduction dimension
    n: int
    groups: int
    a_kind: TensorKind
    b_kind: TensorKind
    out_kind: TensorKind
    a_bits: int
    b_bits: int
    out_bits: int  # width written back after the requantizer (acc width if not requantized)
    rounding: str  # requantizer rounding of the output
    # dims of the original loop nest for spatial maps like {rows: C, cols: K}
    loop_dims: tuple[tuple[str, int], ...] = ()
    # True when an operand is float (bits None in the run): its *_bits then read 32 (fp32)
    float_operands: bool = False
    # random bits drawn per requantized output element (0 unless rounding is stochastic);
    # RNG bits of the op = groups * m * n * random_bits
    random_bits: int = 0
    # conv geometry for data movement (sliding-window halo): stride and the spatial size of
    # the pass's windowed input (forward/wgrad: X's H, W; backward-data: dY's OH, OW)
    stride: tuple[int, int] = (1, 1)
    in_hw: tuple[int, int] = (0, 0)

    @property
    def macs(self) -> int:
        return self.groups * self.m * self.k * self.n


@dataclass(frozen=True)
class VectorOp:
    layer: str
    op: str
    pass_name: str
    kind: str  # vector-unit operation: batchnorm_fwd, relu, maxpool, quantize, sgd_update ...
    elems: int  # elements processed
    # primitive ALU ops per element, e.g. (("mul", 1), ("add", 1)); priced by the energy table
    alu: tuple[tuple[str, int], ...]
    bits: int  # datapath width of the elements (8, 16, 32)
    read_bytes: int  # on-chip reads
    write_bytes: int  # on-chip writes
    dram_read_bytes: int = 0
    dram_write_bytes: int = 0
    rng_bits: int = 0  # random bits drawn (stochastic rounding)
    stochastic_roundings: int = 0
    # rounding mode of the op's ("requant", n) ALU entries ("none" when it has none)
    rounding: str = "none"


Op = GemmOp | VectorOp
