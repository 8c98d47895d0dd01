"""Per-tensor-kind number formats of a quantized training run (:class:`NumericsConfig`).

A run quantizes three tensor kinds at every conv/linear layer: weights ``W``, input
activations ``X`` and output gradients ``dY``. Each kind has a :class:`TensorNumerics`
(bits, rounding, scale granularity and scale type); ``bits=None`` keeps that kind in fp32.
The MAC array side (accumulator width/overflow, psum width, dataflow, array size) and the
stochastic-rounding RNG come from the :class:`~fxpsim.config.hw.HwConfig`
(:meth:`NumericsConfig.from_hw`).

Seeding (one run seed, documented): every random stream is derived from
``base = (hw.stochastic_rounding.seed XOR run_seed) mod 2**64`` and a small stream id
(:meth:`RngSpec.build`), so the same run seed gives bit-identical codes.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import TYPE_CHECKING, Literal

from fxpsim.config.compat import check_roundings
from fxpsim.errors import ConfigError
from fxpsim.fixedpoint.macarray import ArrayModel
from fxpsim.vocab import HW_ROUNDING

if TYPE_CHECKING:  # config imports stay torch/numba free; these are only type names
    from fxpsim.config.hw import HwConfig
    from fxpsim.fixedpoint.rng import HardwareRNG
    from fxpsim.graph.ir import OperandFormats

Granularity = Literal["per_tensor", "per_channel", "per_sample"]
ActCodes = Literal["signed", "unsigned"]
ScaleType = Literal["fp32", "pow2"]
ScaleFormat = Literal["int32_mult_shift", "pow2_shift", "fp32_scale"]
GradInterval = Literal["minmax", "lbt", "prc"]
Dataflow = Literal["weight_stationary", "output_stationary", "input_stationary"]

_M64 = (1 << 64) - 1


def _check_bits(bits: int | None, name: str) -> None:
    if bits is None:
        return
    # 1 bit = binary codes ±1 with a scale (weights only, checked by NumericsConfig)
    if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= 16:
        raise ValueError(f"{name}: expected an integer in 1..16 or None (fp32), got {bits!r}")


@dataclass(frozen=True)
class TensorNumerics:
    """Format of one tensor kind.

    ``bits``: 2..16 (symmetric signed codes ``±(2**(bits-1)-1)``) or ``None`` (fp32, not
    quantized). ``rounding``: a :mod:`fxpsim.fixedpoint.modes` name (``stochastic`` draws
    from the run's hardware RNG). ``granularity``: ``per_channel`` (weights: one scale per
    output channel; gradients dY: one per channel) or ``per_sample`` (gradients only: one per
    batch row); activations are per tensor. ``scale``: ``fp32`` (Δ = c / (2**(bits-1)-1)) or
    ``pow2`` (that Δ rounded *up* to a power of two, so nothing clips). ``signed`` False:
    unsigned codes ``0 .. 2**bits-1`` (activations after a ReLU, ``a_codes=unsigned``).
    """

    bits: int | None = 8
    rounding: str = "half_even"
    granularity: Granularity = "per_tensor"
    scale: ScaleType = "fp32"
    signed: bool = True

    def __post_init__(self) -> None:
        _check_bits(self.bits, "bits")
        from fxpsim.fixedpoint.modes import canonical_rounding

        object.__setattr__(self, "rounding", canonical_rounding(self.rounding))
        if self.granularity not in ("per_tensor", "per_channel", "per_sample"):
            raise ValueError(f"granularity: expected per_tensor, per_channel or per_sample, "
                             f"got {self.granularity!r}")
        if self.scale not in ("fp32", "pow2"):
            raise ValueError(f"scale: expected fp32 or pow2, got {self.scale!r}")

    @property
    def is_float(self) -> bool:
        return self.bits is None

    @property
    def stochastic(self) -> bool:
        return self.rounding in ("stochastic", "stochastic_equal")


@dataclass(frozen=True)
class RngSpec:
    """The stochastic-rounding RNG: ``kind`` ``lfsr`` (``lanes`` LFSRs of ``width`` bits with
    feedback ``polynomial``, None = the default maximal polynomial) or ``philox``;
    ``hw_seed`` is XORed with the run seed; ``reseed`` as in the HwConfig: ``never`` (one
    stream for the whole run, drawn in execution order), ``per_step`` (a fresh stream per
    training step), ``per_layer`` (a fresh stream per layer and step)."""

    kind: Literal["lfsr", "philox"] = "philox"
    width: int = 16
    polynomial: str | None = None
    lanes: int = 1
    hw_seed: int = 0
    reseed: Literal["never", "per_step", "per_layer"] = "never"

    def stream_seed(self, run_seed: int, stream: int) -> int:
        """``splitmix64(base XOR splitmix64(stream))`` with ``base = hw_seed XOR run_seed``
        (mod 2**64); stream 0 is the run-long stream."""
        from fxpsim.fixedpoint.rng import splitmix64

        base = (self.hw_seed ^ run_seed) & _M64
        if stream == 0:
            return base
        return splitmix64(base ^ splitmix64(stream & _M64))

    def build(self, run_seed: int, stream: int = 0) -> HardwareRNG:
        """A fresh generator for ``stream`` (see :meth:`stream_seed`)."""
        from fxpsim.fixedpoint.rng import LFSR, Philox

        seed = self.stream_seed(run_seed, stream)
        if self.kind == "lfsr":
            return LFSR(self.width, self.polynomial, seed=seed, lanes=self.lanes)
        return Philox(seed)


@dataclass(frozen=True)
class NumericsConfig:
    """Everything the quantized layers need to compute bit-exactly.

    ``grad_interval``: how the gradient clip value ``c`` is chosen from ``dY``: ``minmax``
    (``c = max|dY|``), ``lbt`` (``c = γ·max|dY|`` with the per-layer γ the LBT algorithm keeps
    in the QNet), ``prc`` (Octo's parameterized range clipping, ``c = prc_clip·max|dY|``).
    ``acc_bits``/``acc_overflow``: the MAC array accumulator; ``psum_bits``/``psum_overflow``:
    the partial-sum register of a weight/input-stationary array (None = ``acc_bits``);
    ``dataflow``, ``rows``, ``cols``: the array (``rows`` is the K-tile of a two-level
    accumulation). ``random_bits``: random bits compared per stochastic rounding.
    ``scale_format``: the requantizer's scale representation (hwconfig
    ``mac_array.requantizer.scale_format``), used by the forward GEMMs' output stage.
    ``learned_scales``: forward clip values of W and X are learned parameters of each layer
    (LBT's ``s_W``, ``u_A``; run option ``forward_scales=learned``) instead of min-max.
    ``a_codes``: ``unsigned`` gives the layers whose input comes from a ReLU unsigned
    activation codes (resolved per layer by the QNet, up to 15 bits).
    """

    weights: TensorNumerics = field(default_factory=TensorNumerics)
    activations: TensorNumerics = field(default_factory=TensorNumerics)
    gradients: TensorNumerics = field(
        default_factory=lambda: TensorNumerics(8, "stochastic"))
    grad_interval: GradInterval = "minmax"
    prc_clip: float = 0.95
    # Octo demo: conv backward GEMMs re-quantize the range-clipped float X and W (INT8,
    # nearest) instead of reusing the forward codes
    bwd_requant: bool = False
    acc_bits: int = 32
    acc_overflow: str = "saturate"
    psum_bits: int | None = None
    psum_overflow: str | None = None
    dataflow: Dataflow = "output_stationary"
    rows: int = 1
    cols: int = 1
    rng: RngSpec = field(default_factory=RngSpec)
    random_bits: int = 16
    scale_format: ScaleFormat = "int32_mult_shift"
    learned_scales: bool = False
    a_codes: ActCodes = "signed"

    def __post_init__(self) -> None:
        if self.activations.granularity != "per_tensor":
            raise ValueError("activations.granularity: only per_tensor is supported")
        if self.weights.granularity == "per_sample":
            raise ValueError("weights.granularity: per_sample is for gradients only")
        for kind in ("activations", "gradients"):
            if getattr(self, kind).bits == 1:
                raise ValueError(f"{kind}.bits: 1-bit (binary) codes are for weights only")
        for kind in ("weights", "gradients"):
            if not getattr(self, kind).signed:
                raise ValueError(f"{kind}.signed: unsigned codes are for activations only")
        if self.learned_scales and self.weights.granularity != "per_tensor":
            raise ValueError("learned_scales: the learned weight clip is per tensor")
        if self.a_codes not in ("signed", "unsigned"):
            raise ValueError(f"a_codes: expected signed or unsigned, got {self.a_codes!r}")
        if self.grad_interval not in ("minmax", "lbt", "prc"):
            raise ValueError(f"grad_interval: expected minmax, lbt or prc, "
                             f"got {self.grad_interval!r}")
        if not 0.0 < self.prc_clip <= 1.0:
            raise ValueError(f"prc_clip: expected a factor in (0, 1], got {self.prc_clip!r}")
        if isinstance(self.acc_bits, bool) or not 2 <= self.acc_bits <= 64:
            raise ValueError(f"acc_bits: expected an integer in 2..64, got {self.acc_bits!r}")
        if self.acc_overflow not in ("wrap", "saturate", "saturate_symmetric", "numeric_std"):
            raise ValueError(f"acc_overflow: unknown overflow mode {self.acc_overflow!r}")
        if self.rng.kind == "lfsr" and self.random_bits > self.rng.width:
            raise ValueError(f"random_bits: {self.random_bits} exceeds the LFSR width "
                             f"{self.rng.width}")

    @cached_property
    def array_model(self) -> ArrayModel:
        """The MAC array as :mod:`fxpsim.fixedpoint.macarray` models it."""
        return ArrayModel(self.rows, self.cols, self.dataflow, self.acc_bits, self.acc_overflow,
                          self.psum_bits, self.psum_overflow)

    @property
    def float_baseline(self) -> bool:
        """True when no tensor kind is quantized (plain fp32 training)."""
        return self.weights.is_float and self.activations.is_float and self.gradients.is_float

    def for_node(self, formats: OperandFormats) -> NumericsConfig:
        """This config with a node's per-operand bit-width overrides applied."""
        out = self
        for kind, bits in (("weights", formats.w_bits), ("activations", formats.a_bits),
                           ("gradients", formats.g_bits)):
            if bits is not None:  # "float": this node keeps the kind in fp32
                out = replace(out, **{kind: replace(getattr(out, kind),
                                                    bits=None if bits == "float" else bits)})
        return out

    @classmethod
    def from_hw(
        cls,
        hw: HwConfig,
        *,
        w_bits: int | None = 8,
        a_bits: int | None = 8,
        g_bits: int | None = 8,
        rounding_w: str = "half_even",
        rounding_a: str = "half_even",
        rounding_g: str = "stochastic",
        w_granularity: Granularity = "per_tensor",
        scale: ScaleType = "fp32",
        grad_interval: GradInterval = "minmax",
        prc_clip: float = 0.95,
        source: str = "hwconfig",
    ) -> NumericsConfig:
        """Build from a HwConfig plus the run's operand choices.

        The RNG follows ``mac_array.stochastic_rounding``: ``lfsr`` -> :class:`LFSR` with
        ``rng_width_bits`` (<= 32), ``rng_polynomial`` and ``rng_instances`` lanes;
        ``philox`` -> :class:`Philox`; ``xorshift`` is not modelled and raises
        :class:`~fxpsim.errors.ConfigError` (no silent substitute). With ``hardware: false``
        no rounding may be stochastic (:mod:`fxpsim.config.compat`).
        Hardware rounding names (rne, rna, rtz) are accepted for the ``rounding_*`` args.
        A rounding the requantizer does not list (``mac_array.requantizer.rounding_modes``),
        or stochastic rounding when ``stochastic_rounding.hardware`` is false, is a
        :class:`~fxpsim.errors.ConfigError` naming the run option and the config key.
        """
        ma = hw.mac_array
        sr = ma.stochastic_rounding
        key = "mac_array.stochastic_rounding"
        check_roundings((rounding_w, rounding_a, rounding_g), hw, source)
        if not sr.hardware:
            rng = RngSpec("philox", hw_seed=sr.seed, reseed=sr.reseed)
        elif sr.rng == "lfsr":
            if sr.rng_width_bits > 32:
                raise ConfigError(source, f"{key}.rng_width_bits",
                                  f"LFSRs of at most 32 bits are modelled, got {sr.rng_width_bits}")
            rng = RngSpec("lfsr", sr.rng_width_bits, sr.rng_polynomial, sr.rng_instances,
                          sr.seed, sr.reseed)
        elif sr.rng == "philox":
            rng = RngSpec("philox", hw_seed=sr.seed, reseed=sr.reseed)
        else:
            raise ConfigError(source, f"{key}.rng",
                              f"rng {sr.rng!r} is not modelled by the value plane "
                              "(use lfsr or philox)")
        if rng.kind == "lfsr" and sr.random_bits_per_rounding > rng.width:
            raise ConfigError(source, f"{key}.random_bits_per_rounding",
                              f"{sr.random_bits_per_rounding} exceeds rng_width_bits "
                              f"{rng.width}")
        acc = ma.accumulator
        w_round, a_round, g_round = (HW_ROUNDING.get(r, r)
                                     for r in (rounding_w, rounding_a, rounding_g))
        return cls(
            weights=TensorNumerics(w_bits, w_round, w_granularity, scale),
            activations=TensorNumerics(a_bits, a_round, "per_tensor", scale),
            gradients=TensorNumerics(g_bits, g_round, "per_tensor", scale),
            grad_interval=grad_interval,
            prc_clip=prc_clip,
            acc_bits=acc.bits,
            acc_overflow=acc.overflow,
            psum_bits=acc.psum_bits,
            psum_overflow=acc.overflow if acc.psum_bits is not None else None,
            dataflow=ma.dataflow,
            rows=ma.rows,
            cols=ma.cols,
            rng=rng,
            random_bits=sr.random_bits_per_rounding,
            scale_format=ma.requantizer.scale_format,
        )

