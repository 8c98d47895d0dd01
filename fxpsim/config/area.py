"""Silicon area of an accelerator, by component, from the hwconfig's ``area`` price table.

Components (mm², sources and node scaling in docs/area.md):

* ``pe_array``     rows x cols x the sum of ``area.pe_um2[mode]`` over the supported precision
  modes (the widest mode is the multiplier and accumulate adder; the others add their
  split or compose logic);
* ``pe_regs``      rows x cols x ``per_pe_bits`` x ``register_um2_per_bit`` for each PE
  register entry;
* ``sram.<name>``  ``size_kib`` x ``sram_um2_per_kib[<ports>]`` for each SRAM (an
  accumulator SRAM is one of them);
* ``rng``          ``rng_instances`` x ``rng_width_bits`` x ``rng_um2_per_bit`` when the
  stochastic-rounding RNG is in hardware;
* ``requantizer``  requantizer lanes x ``requant_lane_um2``;
* ``vector_unit``  vector lanes x ``vector_lane_um2``;
* ``dram_phy``     ``dram_phy_mm2`` (a stated assumption, see the docs).

The total is the sum of the components. Prices the config lacks are rejected when the config
is validated (:class:`fxpsim.config.hw.HwConfig`), as missing energy prices are.
"""

from __future__ import annotations

from dataclasses import dataclass

from fxpsim.config.hw import HwConfig

UM2_PER_MM2 = 1e6


@dataclass(frozen=True)
class AreaBreakdown:
    """Area in mm² by component (ordered as listed in the module docstring)."""

    by_component: tuple[tuple[str, float], ...]
    reference: str

    @property
    def total_mm2(self) -> float:
        return sum(v for _, v in self.by_component)

    def as_dict(self) -> dict[str, object]:
        """The ``area`` entry of summary.json (rounded to 1e-6 mm² = 1 um²)."""
        return {
            "total_mm2": round(self.total_mm2, 6),
            "by_component_mm2": {k: round(v, 6) for k, v in self.by_component},
            "reference": self.reference,
        }


def area_of(hw: HwConfig) -> AreaBreakdown:
    a = hw.area
    pes = hw.mac_array.rows * hw.mac_array.cols
    parts: list[tuple[str, float]] = [
        ("pe_array", pes * sum(a.pe_um2[m.name] for m in hw.mac_array.precision_modes)),
    ]
    regs = sum(m.per_pe_bits or 0 for m in hw.memory if not m.is_sram)
    parts.append(("pe_regs", pes * regs * a.register_um2_per_bit))
    for m in hw.memory:
        if m.is_sram:
            parts.append((f"sram.{m.name}", (m.size_kib or 0.0) * a.sram_um2_per_kib[m.ports_key]))
    sr = hw.mac_array.stochastic_rounding
    rng_bits = sr.rng_instances * sr.rng_width_bits if sr.hardware else 0
    parts.append(("rng", rng_bits * a.rng_um2_per_bit))
    parts.append(("requantizer", hw.mac_array.requantizer.lanes * a.requant_lane_um2))
    parts.append(("vector_unit", hw.vector_unit.lanes * a.vector_lane_um2))
    mm2 = [(k, v / UM2_PER_MM2) for k, v in parts]
    mm2.append(("dram_phy", a.dram_phy_mm2))
    return AreaBreakdown(tuple(mm2), a.reference)
