"""Energy = counted actions x the hwconfig's price table + leakage x time (pJ).

Components (``Metrics.energy_by_component`` keys):

* ``mac.<mode>``   MACs run in precision mode ``<mode>`` x ``energy.mac.<mode>``;
* ``mac_idle``     idle PE-cycles x ``energy.idle_pe_fraction`` x ``energy.mac.<mode>``, where
  idle PE-cycles = cycles x rows x cols - MACs / (MACs per PE per cycle) over a GEMM record;
* ``sram.<name>``  reads x ``read_energy_pj`` + writes x ``write_energy_pj`` (accesses of
  ``width_bits``);
* ``pe_regs``      ``per_pe_bits`` x ``energy_pj_per_bit`` per MAC (each MAC moves its operand
  and psum registers once; an INT4-split PE counts once per MAC, not per PE-cycle);
* ``dram``         read bytes x ``read_energy_pj_per_byte`` + write bytes x write price;
* ``requant``      requantized elements x the price of the rounding's hardware:
  ``requant_stochastic`` for stochastic modes (LFSR step + add), ``requant_floor`` for modes
  that only drop or force bits (floor, jam, jam_unbiased: no adder; default 0), and
  ``requant_rne`` (a rounding adder) for every other mode;
* ``rng``          random bits drawn x ``rng_per_bit``;
* ``vector.<alu>`` vector ALU operations x ``energy.<add|mul|cmp|shift>.int<bits>`` (``sub``
  is priced as add, ``max``/``min`` as cmp; ``rsqrt`` and ``exp_lut`` have no table of their
  own and are priced as ``vector_unit.ops_cycles.<op>`` multiplies, i.e. an iterative unit
  that uses the multiplier every cycle); a missing price is a ConfigError naming the key.
  The vector ALU op ``requant`` is a rounding and lands in ``requant``;
* ``leakage``      ``leakage_mw_total`` x cycles / f  (mW x s = 1e9 pJ).

The energy of a record is the sum of its components.
"""

from __future__ import annotations

from collections.abc import Iterable
from fractions import Fraction

from fxpsim.config.hw import HwConfig
from fxpsim.errors import ConfigError
from fxpsim.results import Tally
from fxpsim.vocab import is_stochastic

#: vector ALU op name -> energy table it is priced from
ALU_PRICE_TABLE: dict[str, str] = {
    "add": "add", "sub": "add", "mul": "mul", "cmp": "cmp", "max": "cmp", "min": "cmp",
    "shift": "shift",
}
#: ALU ops priced as ``ops_cycles[op]`` operations of another table
COMPOSITE_ALU: dict[str, str] = {"rsqrt": "mul", "exp_lut": "mul"}


#: roundings that drop the discarded bits (or force the LSB) without an increment
TRUNCATING = frozenset({"floor", "jam", "jam_unbiased", "none"})


def requant_price(hw: HwConfig, rounding: str) -> float:
    """pJ of one requantized element rounded with ``rounding`` (see the module docstring)."""
    e = hw.energy
    if is_stochastic(rounding):
        return e.requant_stochastic
    return e.requant_floor if rounding.lower() in TRUNCATING else e.requant_rne


def alu_price(hw: HwConfig, alu: str, bits: int) -> float:
    """pJ of one vector ALU op ``alu`` on ``bits``-bit elements (ConfigError if unpriced)."""
    src = f"hwconfig {hw.name}"
    if alu in COMPOSITE_ALU:
        if alu not in hw.vector_unit.ops_cycles:
            raise ConfigError(src, f"vector_unit.ops_cycles.{alu}",
                              f"needed to price {alu} (as that many {COMPOSITE_ALU[alu]} ops)")
        return hw.vector_unit.ops_cycles[alu] * alu_price(hw, COMPOSITE_ALU[alu], bits)
    table = ALU_PRICE_TABLE.get(alu)
    if table is None:
        raise ConfigError(src, f"energy.{alu}",
                          f"no price for vector ALU op {alu!r} (priced ops: "
                          f"{', '.join(sorted(ALU_PRICE_TABLE))})")
    prices = getattr(hw.energy, table)
    key = f"int{bits}"
    if key not in prices:
        raise ConfigError(src, f"energy.{table}.{key}",
                          f"missing price for {alu} on {bits}-bit data")
    return prices[key]


def leakage_pj(hw: HwConfig, cycles: int) -> float:
    return hw.leakage_mw_total * cycles / hw.freq_hz * 1e9


def energy_components(
    hw: HwConfig,
    *,
    cycles: int,
    mode: str | None = None,
    macs: int = 0,
    idle_pe_cycles: Fraction | int = 0,
    sram_accesses: Tally | None = None,
    dram_read_bytes: int = 0,
    dram_write_bytes: int = 0,
    requant_events: int = 0,
    rounding: str = "half_even",
    rng_bits: int = 0,
    vector_alu: Iterable[tuple[str, int, int]] = (),
) -> Tally:
    """Energy by component in pJ for one record's counted actions (see module docstring).

    ``vector_alu`` items are ``(alu, bits, operations)``.
    """
    e = hw.energy
    out: dict[str, float] = {}
    if mode is not None:
        out[f"mac.{mode}"] = macs * e.mac[mode]
        out["mac_idle"] = float(idle_pe_cycles) * e.idle_pe_fraction * e.mac[mode]
    mems = {m.name: m for m in hw.memory}
    for key, count in (sram_accesses or Tally()).items:
        name, _, rw = key.rpartition(".")
        mem = mems[name]
        price = mem.read_energy_pj if rw == "read" else mem.write_energy_pj
        out[f"sram.{name}"] = out.get(f"sram.{name}", 0.0) + count * (price or 0.0)
    regs = sum((m.per_pe_bits or 0) * (m.energy_pj_per_bit or 0.0) for m in hw.memory
               if not m.is_sram)
    out["pe_regs"] = macs * regs
    out["dram"] = (dram_read_bytes * hw.dram.read_energy_pj_per_byte
                   + dram_write_bytes * hw.dram.write_energy_pj_per_byte)
    out["requant"] = requant_events * requant_price(hw, rounding)
    out["rng"] = rng_bits * e.rng_per_bit
    for alu, bits, ops in vector_alu:
        out[f"vector.{alu}"] = out.get(f"vector.{alu}", 0.0) + ops * alu_price(hw, alu, bits)
    out["leakage"] = leakage_pj(hw, cycles)
    return Tally.of(out)
