"""The accelerator description (``hwconfigs/*.yaml``) as frozen, validated pydantic models.

Schema version 1, as documented in the README ("Accelerator configs"). Units live in key
names (``_bits``, ``_kib``, ``_mhz``, ``_gb_s``, ``_ns``, ``_pj``, ``_mw``). Unknown keys are
errors (``extra="forbid"``); defaults are filled here so no consumer sees a missing key.
Loading YAML, overrides and error formatting live in :mod:`fxpsim.config.load`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
    model_validator,
)

# Upper bounds keep a typo (rows: 1600000) from turning into an hour-long schedule or a
# memory blow-up in the time plane; they are far above any real accelerator.
_BIG = 2**30
PosInt = Annotated[int, Field(gt=0, le=_BIG)]
NonNegInt = Annotated[int, Field(ge=0, le=_BIG)]
# NaN/inf pass ``gt=0`` checks, so every float forbids them explicitly
PosFloat = Annotated[float, Field(gt=0, le=1e12, allow_inf_nan=False)]
NonNegFloat = Annotated[float, Field(ge=0, le=1e12, allow_inf_nan=False)]


def _between(lo: float, hi: float) -> object:
    """A float in the physically meaningful range [lo, hi]: a positive ``gt=0`` bound lets
    5e-324 through, and dividing by it overflows every derived number."""
    return Field(ge=lo, le=hi, allow_inf_nan=False)


# energies per operation / access / byte: up to 1 uJ (far above any circuit)
Picojoules = Annotated[float, Field(ge=0, le=1e6, allow_inf_nan=False)]
Milliwatts = Annotated[float, Field(ge=0, le=1e6, allow_inf_nan=False)]
ArrayDim = Annotated[int, Field(gt=0, le=4096)]
Lanes = Annotated[int, Field(gt=0, le=65536)]
Fraction01 = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]

Dataflow = Literal["weight_stationary", "output_stationary", "input_stationary"]
TensorKind = Literal["weights", "activations", "psums", "gradients", "optimizer_state"]
HwRounding = Literal["rne", "rna", "rtz", "floor", "ceil", "stochastic"]
Pass = Literal["forward", "dgrad", "wgrad"]


class KeyedValueError(ValueError):
    """A cross-field check failure that knows which key (relative to its model) is wrong.

    Raised from model validators; the loader appends ``key`` to the pydantic location so the
    user sees ``mac_array.requantizer.default_rounding`` rather than just the section.
    """

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


class _Model(BaseModel):
    # strict: "16" is not an int and 1.5 is not a bool; frozen: configs are values
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Technology(_Model):
    node_nm: Annotated[float, _between(1, 1000)]
    vdd_v: Annotated[float, _between(0.1, 10)]
    energy_reference: str = Field(min_length=1)
    node_scale_from_45nm: Annotated[float, _between(1e-3, 1e3)] = 1.0


class Clock(_Model):
    freq_mhz: Annotated[float, _between(1e-3, 1e5)]  # 1 kHz .. 100 GHz


class PrecisionMode(_Model):
    name: str = Field(min_length=1)
    w_bits: Annotated[int, Field(ge=2, le=32)]
    a_bits: Annotated[int, Field(ge=2, le=32)]
    macs_per_pe_per_cycle: Annotated[float, _between(1 / 1024, 1024)]


class Accumulator(_Model):
    bits: Annotated[int, Field(ge=2, le=64)]
    overflow: Literal["saturate", "wrap"]
    # width of the partial sum travelling down a column (WS/IS); defaults to ``bits``
    psum_bits: Annotated[int, Field(ge=2, le=64)] | None = None


class Requantizer(_Model):
    scale_format: Literal["int32_mult_shift", "pow2_shift", "fp32_scale"]
    rounding_modes: list[HwRounding] = Field(min_length=1)
    default_rounding: HwRounding
    lanes: Lanes

    @model_validator(mode="after")
    def _default_is_supported(self) -> Requantizer:
        if self.default_rounding not in self.rounding_modes:
            raise KeyedValueError(
                "default_rounding",
                f"expected one of rounding_modes ({', '.join(self.rounding_modes)}), "
                f"got {self.default_rounding!r}",
            )
        return self


class StochasticRounding(_Model):
    hardware: bool
    rng: Literal["lfsr", "xorshift", "philox"] = "lfsr"
    rng_width_bits: Annotated[int, Field(ge=2, le=64)] = 16
    rng_polynomial: str | None = None
    rng_instances: Lanes = 1
    random_bits_per_rounding: Annotated[int, Field(ge=1, le=32)] = 8
    seed: Annotated[int, Field(ge=0, le=2**64 - 1)] = 1
    reseed: Literal["never", "per_layer", "per_step"] = "never"


class MacArray(_Model):
    rows: ArrayDim
    cols: ArrayDim
    dataflow: Dataflow
    # loop dims unrolled on rows / cols, e.g. {rows: C, cols: K}; None = the dataflow's default
    spatial_map: dict[Literal["rows", "cols"], str] | None = None
    spatial_map_overrides: dict[Pass, dict[Literal["rows", "cols"], str]] = Field(
        default_factory=dict
    )
    systolic: bool = True
    # None = ``rows`` cycles (one row of weights per cycle)
    weight_load_cycles_per_tile: NonNegInt | None = None
    weight_double_buffered: bool = False
    precision_modes: list[PrecisionMode] = Field(min_length=1)
    accumulator: Accumulator
    requantizer: Requantizer
    stochastic_rounding: StochasticRounding

    @model_validator(mode="after")
    def _unique_modes(self) -> MacArray:
        names = [m.name for m in self.precision_modes]
        if len(set(names)) != len(names):
            raise KeyedValueError(
                "precision_modes", f"expected unique mode names, got {', '.join(names)}"
            )
        return self

    def mode(self, name: str) -> PrecisionMode:
        for m in self.precision_modes:
            if m.name == name:
                return m
        raise KeyError(name)


#: vector ops that can sit on the MAC array's output path (``vector_unit.fused_ops``)
FusedOp = Literal["requant", "relu", "bn_infer", "maxpool", "avgpool"]


class VectorUnit(_Model):
    """The vector unit. ``fused_ops``: the vector ops built into the array's output path: a
    fused op right after a GEMM (or another fused op) costs no DRAM round trip and no pass
    of its own, only its throughput beside the array."""

    lanes: Lanes
    datapath_bits: Annotated[int, Field(gt=0, le=4096)]
    precisions: list[str] = Field(min_length=1)
    ops_cycles: dict[str, Annotated[int, Field(gt=0, le=1 << 20)]] = Field(min_length=1)
    supports: list[str] = Field(default_factory=list)
    stochastic_rounding: str | None = None
    fused_ops: list[FusedOp] = Field(default_factory=list)

    @model_serializer(mode="wrap")
    def _omit_no_fusion(self, handler: SerializerFunctionWrapHandler) -> dict:
        # configs without fusion dump (and digest) exactly as before the key existed
        data = handler(self)
        if not self.fused_ops:
            data.pop("fused_ops", None)
        return data


class Ports(_Model):
    read: Annotated[int, Field(gt=0, le=64)] = 1
    write: Annotated[int, Field(gt=0, le=64)] = 1


class Memory(_Model):
    """An on-chip SRAM (size/banks/width/energies) or the PE register file (per_pe_bits)."""

    name: str = Field(min_length=1)
    size_kib: Annotated[float, _between(1 / 1024, 2**30)] | None = None  # >= one byte
    banks: Annotated[int, Field(gt=0, le=65536)] = 1
    width_bits: Annotated[int, Field(gt=0, le=65536)] | None = None
    ports: Ports = Field(default_factory=Ports)
    holds: list[TensorKind] = Field(default_factory=list)
    double_buffered: bool = False
    read_energy_pj: Picojoules | None = None
    write_energy_pj: Picojoules | None = None
    leakage_mw: Milliwatts = 0.0
    per_pe_bits: Annotated[int, Field(gt=0, le=4096)] | None = None
    energy_pj_per_bit: Picojoules | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Memory:
        if self.per_pe_bits is not None:
            if self.energy_pj_per_bit is None:
                raise KeyedValueError(
                    "energy_pj_per_bit", "required for a PE register entry (per_pe_bits)"
                )
            if self.size_kib is not None:
                raise KeyedValueError(
                    "size_kib", "give either per_pe_bits (PE registers) or size_kib (SRAM)"
                )
            return self
        missing = [
            k
            for k in ("size_kib", "width_bits", "read_energy_pj", "write_energy_pj")
            if getattr(self, k) is None
        ]
        if missing:
            raise KeyedValueError(
                missing[0],
                f"required for an SRAM (missing: {', '.join(missing)}; "
                "or give per_pe_bits for PE registers)",
            )
        if not self.holds:
            raise KeyedValueError(
                "holds", "an SRAM needs holds: [weights, activations, psums, ...], got []"
            )
        return self

    @property
    def is_sram(self) -> bool:
        return self.per_pe_bits is None

    @property
    def ports_key(self) -> str:
        """``area.sram_um2_per_kib`` key of this memory's port configuration."""
        return f"{self.ports.read}r{self.ports.write}w"

    @property
    def size_bytes(self) -> int:
        return int(round((self.size_kib or 0.0) * 1024))


class Dram(_Model):
    type: str = Field(min_length=1)
    bandwidth_gb_s: Annotated[float, _between(1e-3, 1e6)]  # 1 MB/s .. 1 PB/s
    efficiency: Annotated[float, _between(1e-3, 1)] = 1.0
    latency_ns: Annotated[float, _between(0, 1e9)] = 0.0  # up to one second
    # requests in flight (None = as many as hide the latency) of burst_bytes each: the
    # achievable rate is at most max_outstanding x burst_bytes / latency (Little's law)
    max_outstanding: Annotated[int, Field(gt=0, le=65536)] | None = None
    burst_bytes: Annotated[int, Field(gt=0, le=65536)] = 64
    capacity_gib: Annotated[float, _between(1e-6, 1e9)] | None = None
    read_energy_pj_per_byte: Picojoules
    write_energy_pj_per_byte: Picojoules


class Energy(_Model):
    """pJ per operation at the configured node and Vdd (see ``technology``)."""

    mac: dict[str, Picojoules] = Field(min_length=1)
    mul: dict[str, Picojoules] = Field(default_factory=dict)
    add: dict[str, Picojoules] = Field(default_factory=dict)
    cmp: dict[str, Picojoules] = Field(default_factory=dict)
    shift: dict[str, Picojoules] = Field(default_factory=dict)
    requant_rne: Picojoules
    requant_stochastic: Picojoules
    # floor/jam only drop (or force) bits: no rounding adder, so no energy by default
    requant_floor: Picojoules = 0.0
    rng_per_bit: Picojoules = 0.0
    idle_pe_fraction: Fraction01 = 0.0


class Area(_Model):
    """Silicon area prices at the configured node (um^2 unless the key says mm2); sources and
    the node scaling are documented in docs/area.md. Like ``energy``, every component the
    config instantiates must have a price (checked in :class:`HwConfig`)."""

    reference: str = Field(min_length=1)
    # area scale applied to the 45 nm anchors (logic), for provenance only
    scale_from_45nm: PosFloat = 1.0
    # per PE, per supported precision mode: the widest mode's entry is the multiplier and
    # accumulate adder; every other mode adds its split/compose logic on top
    pe_um2: dict[str, NonNegFloat] = Field(min_length=1)
    register_um2_per_bit: NonNegFloat
    # per KiB of SRAM macro, keyed by ports per bank ("1r1w": one read + one write port)
    sram_um2_per_kib: dict[str, NonNegFloat] = Field(min_length=1)
    rng_um2_per_bit: NonNegFloat
    requant_lane_um2: NonNegFloat
    vector_lane_um2: NonNegFloat
    dram_phy_mm2: NonNegFloat


class Leakage(_Model):
    logic_mw: Milliwatts = 0.0


class ScaleSimInterface(_Model):
    """SCALE-Sim's DRAM interface, set by the ``.cfg`` importer (``timing=scalesim`` only):
    ``CALC`` (no memory stalls) or ``USER`` (per-operand DRAM words per cycle)."""

    interface_bandwidth: Literal["CALC", "USER"] = "CALC"
    ifmap_words_per_cycle: PosInt = 10
    filter_words_per_cycle: PosInt = 10
    ofmap_words_per_cycle: PosInt = 10


class HwConfig(_Model):
    schema_version: Literal[1]
    name: str = Field(min_length=1)
    description: str = ""
    technology: Technology
    clock: Clock
    mac_array: MacArray
    vector_unit: VectorUnit
    memory: list[Memory] = Field(min_length=1)
    dram: Dram
    energy: Energy
    area: Area
    leakage: Leakage = Field(default_factory=Leakage)
    scalesim: ScaleSimInterface | None = None

    @model_serializer(mode="wrap")
    def _omit_absent_scalesim(self, handler: SerializerFunctionWrapHandler) -> dict:
        # configs without the section dump (and digest) exactly as before it existed
        data = handler(self)
        if self.scalesim is None:
            data.pop("scalesim", None)
        return data

    @model_validator(mode="after")
    def _cross_checks(self) -> HwConfig:
        names = [m.name for m in self.memory]
        if len(set(names)) != len(names):
            raise KeyedValueError("memory", f"expected unique memory names, got {names}")
        missing = [m.name for m in self.mac_array.precision_modes if m.name not in self.energy.mac]
        if missing:
            raise KeyedValueError(
                "energy.mac",
                f"expected a price (pJ) for every precision mode, missing {', '.join(missing)}",
            )
        missing = [m.name for m in self.mac_array.precision_modes if m.name not in self.area.pe_um2]
        if missing:
            raise KeyedValueError(
                "area.pe_um2",
                f"expected an area (um^2) for every precision mode, missing {', '.join(missing)}",
            )
        for m in self.memory:
            if m.is_sram and m.ports_key not in self.area.sram_um2_per_kib:
                raise KeyedValueError(
                    f"area.sram_um2_per_kib.{m.ports_key}",
                    f"missing area price for SRAM {m.name!r} ({m.ports.read} read, "
                    f"{m.ports.write} write ports per bank)",
                )
        if not any(m.is_sram for m in self.memory):
            raise KeyedValueError("memory", "expected at least one SRAM (an entry with size_kib)")
        self._check_psum_buffers()
        return self

    def _check_psum_buffers(self) -> None:
        """What fits: a psum buffer holds at least one row of partial sums across the array
        (its larger side, ``psum_bits`` each; half of it when double-buffered), since the
        mapper chunks a reduction by rows of psums."""
        acc = self.mac_array.accumulator
        bits = acc.psum_bits or acc.bits
        extent = max(self.mac_array.rows, self.mac_array.cols)
        for i, mem in enumerate(self.memory):
            if not (mem.is_sram and "psums" in mem.holds):
                continue
            usable = (mem.size_bytes // 2 if mem.double_buffered else mem.size_bytes) * 8
            if usable < extent * bits:
                need = extent * bits * (2 if mem.double_buffered else 1) / 8 / 1024
                raise KeyedValueError(
                    f"memory[{i}].size_kib",
                    f"psum buffer {mem.name} ({mem.size_kib:g} KiB"
                    f"{', double-buffered' if mem.double_buffered else ''}) cannot hold one row "
                    f"of {extent} {bits}-bit psums of the {self.mac_array.rows}x"
                    f"{self.mac_array.cols} array: expected at least {need:g} KiB")

    # ---- derived numbers used by the time plane -------------------------------------------
    @property
    def freq_hz(self) -> float:
        return self.clock.freq_mhz * 1e6

    @property
    def dram_bytes_per_cycle(self) -> float:
        """Achievable DRAM bytes per core clock cycle (bandwidth x efficiency / f)."""
        return self.dram.bandwidth_gb_s * 1e9 * self.dram.efficiency / self.freq_hz

    @property
    def leakage_mw_total(self) -> float:
        return self.leakage.logic_mw + sum(m.leakage_mw for m in self.memory)

    def memories_holding(self, kind: str) -> list[Memory]:
        return [m for m in self.memory if m.is_sram and kind in m.holds]
