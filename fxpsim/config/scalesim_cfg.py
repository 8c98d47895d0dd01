"""Import a SCALE-Sim (v2/v3) ``.cfg`` file as a raw fxpsim hwconfig mapping.

SCALE-Sim describes only the array (``ArrayHeight`` x ``ArrayWidth``, ``Dataflow`` os/ws/is),
three double-buffered scratchpads (``IfmapSramSzkB``, ``FilterSramSzkB``, ``OfmapSramSzkB``;
SCALE-Sim's kB are 1024 words of 1 byte) and a DRAM interface ``Bandwidth`` in words per
cycle. Everything else fxpsim needs is filled in here, each choice documented:

* clock: SCALE-Sim counts cycles only; fxpsim assumes **1000 MHz** and **1 byte per word**, so
  ``Bandwidth`` words/cycle becomes ``Bandwidth`` GB/s (efficiency 1, latency 0).
* precision: one mode ``int8`` (1 MAC per PE per cycle), 32-bit saturating accumulator.
* memories: ``ifmap_sram`` holds activations + gradients, ``filter_sram`` weights,
  ``ofmap_sram`` psums + activations; port width = one word per array row (ifmap) or column
  (filter, ofmap) per cycle; ``MemoryBanks`` banks each.
* energies: SCALE-Sim configs carry no energies. **Assumption**: edge_npu's 28 nm table
  (Horowitz ISSCC'14 45 nm anchors x 0.507); SRAM access energy from the same fit,
  10 pJ x sqrt(bank KiB / 8) per 64 bits x 0.507, writes 1.2 x reads; no leakage.

Keys fxpsim does not model (offsets, request buffers, ``[layout]``, ``[sparsity]`` with
sparsity off, Ramulator traces, topology paths) are accepted and ignored; unknown sections or
keys are errors, as is ``SparsitySupport: true``.
"""

from __future__ import annotations

import configparser
import math
from pathlib import PurePath
from typing import Any

from fxpsim.errors import ConfigError

# ---- assumptions (SCALE-Sim configs carry no clock, word size or energies) -----------------
CLOCK_MHZ = 1000.0  # assumption: SCALE-Sim has no clock
BYTES_PER_WORD = 1  # assumption: SCALE-Sim's word is one int8 element
NODE_SCALE = 0.507  # edge_npu: Stillmaker & Baas 45 -> 28 nm, same Vdd
WRITE_OVER_READ = 1.2  # assumption (as edge_npu)
#: assumption: SCALE-Sim configs carry no areas (edge_npu's 28 nm prices, docs/area.md)
EDGE_AREA: dict[str, Any] = {
    "reference": "assumption: edge_npu 28 nm area table (SCALE-Sim configs carry no areas)",
    "scale_from_45nm": 0.387, "pe_um2": {"int8": 162.2}, "register_um2_per_bit": 1.75,
    "sram_um2_per_kib": {"1r1w": 2601.0}, "rng_um2_per_bit": 2.37,
    "requant_lane_um2": 1459.0, "vector_lane_um2": 1683.0, "dram_phy_mm2": 1.5,
}
EDGE_ENERGY: dict[str, Any] = {  # assumption: SCALE-Sim configs carry no energies (edge_npu's)
    "mac": {"int8": 0.152},
    "mul": {"int8": 0.101, "int16": 0.405, "int32": 1.571},
    "add": {"int8": 0.015, "int16": 0.025, "int32": 0.051},
    "cmp": {"int8": 0.015, "int32": 0.051},
    "shift": {"int32": 0.02},
    "requant_rne": 0.015,
    "requant_stochastic": 0.100,
    "rng_per_bit": 0.0053,
    "idle_pe_fraction": 0.1,
}
DRAM_PJ_PER_BYTE = 64.0  # assumption: edge_npu's LPDDR4 8 pJ/bit (Accelergy DRAM model)
PE_REG_PJ_PER_BIT = 0.0053  # assumption: edge_npu's Aladdin register rescaled to 28 nm

_INT, _NUM, _STR, _BOOL = "int", "num", "str", "bool"
# section -> key -> (kind, used by fxpsim)
KEYS: dict[str, dict[str, tuple[str, bool]]] = {
    "general": {"run_name": (_STR, True)},
    "architecture_presets": {
        "ArrayHeight": (_INT, True), "ArrayWidth": (_INT, True),
        "IfmapSramSzkB": (_NUM, True), "FilterSramSzkB": (_NUM, True),
        "OfmapSramSzkB": (_NUM, True),
        "IfmapOffset": (_INT, False), "FilterOffset": (_INT, False), "OfmapOffset": (_INT, False),
        "Dataflow": (_STR, True), "Bandwidth": (_NUM, True),
        "ReadRequestBuffer": (_INT, False), "WriteRequestBuffer": (_INT, False),
        "MemoryBanks": (_INT, True),
    },
    "run_presets": {"InterfaceBandwidth": (_STR, True), "UseRamulatorTrace": (_BOOL, False)},
    "sparsity": {
        "SparsitySupport": (_BOOL, True), "SparseRep": (_STR, False),
        "OptimizedMapping": (_BOOL, False), "BlockSize": (_INT, False),
        "RandomNumberGeneratorSeed": (_INT, False), "NonZeroElems": (_INT, False),
    },
    "layout": {
        f"{op}{k}": (kind, False)
        for op in ("Ifmap", "Filter")
        for k, kind in (("CustomLayout", _BOOL), ("SRAMBankBandwidth", _INT),
                        ("SRAMBankNum", _INT), ("SRAMBankPort", _INT))
    },
    "network_presets": {"TopologyCsvLoc": (_STR, False)},
}
REQUIRED = ("ArrayHeight", "ArrayWidth", "IfmapSramSzkB", "FilterSramSzkB", "OfmapSramSzkB",
            "Dataflow", "Bandwidth")
DATAFLOWS = {"ws": "weight_stationary", "os": "output_stationary", "is": "input_stationary"}


def _convert(source: str, where: str, kind: str, text: str) -> Any:
    text = text.strip().strip('"').strip("'").strip()
    if kind == _STR:
        return text
    if kind == _BOOL:
        low = text.lower()
        if low in ("true", "false"):
            return low == "true"
        raise ConfigError(source, where, f"expected True or False, got {text!r}")
    try:
        value: Any = int(text) if kind == _INT else float(text)
    except ValueError:
        noun = "an integer" if kind == _INT else "a number"
        raise ConfigError(source, where, f"expected {noun}, got {text!r}") from None
    if kind == _NUM and not math.isfinite(value):
        raise ConfigError(source, where, f"expected a finite number, got {text!r}")
    if value < 0 or (value == 0 and not where.endswith("Offset")):
        raise ConfigError(source, where, f"expected a positive number, got {text!r}")
    return value


def read_cfg(text: str, source: str) -> dict[str, dict[str, Any]]:
    """Parse and type-check the INI text; returns ``{section: {CanonicalKey: value}}``.

    Keys are matched case-insensitively (SCALE-Sim reads them through ConfigParser's default
    lower-casing) but reported in their canonical CamelCase spelling.
    """
    parser = configparser.ConfigParser(
        interpolation=None, inline_comment_prefixes=(";", "#"), strict=True
    )
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keep user spelling
    try:
        parser.read_string(text, source=source)
    except configparser.DuplicateOptionError as exc:
        raise ConfigError(source, f"{exc.section}.{exc.option}", "duplicate key") from None
    except configparser.DuplicateSectionError as exc:
        raise ConfigError(source, str(exc.section), "duplicate section") from None
    except configparser.MissingSectionHeaderError as exc:
        raise ConfigError(
            source, f"line {exc.lineno}", "expected a [section] header before any key"
        ) from None
    except configparser.Error as exc:
        raise ConfigError(source, "", f"invalid SCALE-Sim config: {exc.message}") from None
    if parser.defaults():
        raise ConfigError(source, "DEFAULT", "unknown section (SCALE-Sim has no [DEFAULT])")
    by_lower = {s.lower(): s for s in KEYS}
    out: dict[str, dict[str, Any]] = {}
    for section in parser.sections():
        canon = by_lower.get(section.lower())
        if canon is None:
            raise ConfigError(
                source, section, f"unknown section (valid: {', '.join(KEYS)})"
            )
        keys = {k.lower(): k for k in KEYS[canon]}
        for key, raw in parser.items(section):
            name = keys.get(key.lower())
            if name is None:
                raise ConfigError(
                    source, f"{canon}.{key}",
                    f"unknown key (valid: {', '.join(KEYS[canon])})",
                )
            where = f"{canon}.{name}"
            if name == "Bandwidth" and "," in raw:
                raise ConfigError(
                    source, where, f"expected one number (words/cycle), got {raw.strip()!r}"
                )
            out.setdefault(canon, {})[name] = _convert(source, where, KEYS[canon][name][0], raw)
    return out


def _sram(name: str, size_kib: float, banks: int, width_bits: int, holds: list[str]) -> dict:
    # Horowitz fit: a 64-bit read of an S-KiB array costs 10 pJ * sqrt(S / 8) at 45 nm
    read = 10.0 * math.sqrt(size_kib / banks / 8.0) * (width_bits / 64.0) * NODE_SCALE
    return {
        "name": name, "size_kib": float(size_kib), "banks": banks, "width_bits": width_bits,
        "ports": {"read": 1, "write": 1}, "holds": holds, "double_buffered": True,
        "read_energy_pj": round(read, 3), "write_energy_pj": round(read * WRITE_OVER_READ, 3),
        "leakage_mw": 0.0,
    }


def scalesim_to_raw(text: str, source: str) -> dict[str, Any]:
    """The raw hwconfig mapping (schema_version 1) for a SCALE-Sim config text."""
    cfg = read_cfg(text, source)
    arch = cfg.get("architecture_presets", {})
    for key in REQUIRED:
        if key not in arch:
            hint = " (fxpsim needs a DRAM bandwidth even with CALC)" if key == "Bandwidth" else ""
            raise ConfigError(
                source, f"architecture_presets.{key}", f"required key is missing{hint}"
            )
    flow = arch["Dataflow"].lower()
    if flow not in DATAFLOWS:
        raise ConfigError(
            source, "architecture_presets.Dataflow", f"expected one of os, ws, is, got {flow!r}"
        )
    mode = cfg.get("run_presets", {}).get("InterfaceBandwidth", "USER")
    if mode not in ("USER", "CALC"):
        raise ConfigError(
            source, "run_presets.InterfaceBandwidth", f"expected USER or CALC, got {mode!r}"
        )
    if cfg.get("sparsity", {}).get("SparsitySupport", False):
        raise ConfigError(
            source, "sparsity.SparsitySupport", "fxpsim does not model sparsity; set it to false"
        )
    rows, cols = arch["ArrayHeight"], arch["ArrayWidth"]
    banks = arch.get("MemoryBanks", 1)
    word_bits = 8 * BYTES_PER_WORD
    stem = PurePath(source).stem
    name = cfg.get("general", {}).get("run_name") or stem
    ops = {"add": 1, "mul": 1, "max": 1, "shift": 1, "requant": 1, "rsqrt": 8, "exp_lut": 2}
    return {
        "schema_version": 1,
        "name": name,
        "description": f"imported from SCALE-Sim config {PurePath(source).name} "
                       f"({rows}x{cols} {flow}); energies assumed from edge_npu (28 nm)",
        "technology": {"node_nm": 28.0, "vdd_v": 0.9,
                       "energy_reference": "assumption: edge_npu 28 nm table "
                                           "(SCALE-Sim configs carry no energies)",
                       "node_scale_from_45nm": NODE_SCALE},
        "clock": {"freq_mhz": CLOCK_MHZ},
        "mac_array": {
            "rows": rows, "cols": cols, "dataflow": DATAFLOWS[flow], "systolic": True,
            "precision_modes": [
                {"name": "int8", "w_bits": 8, "a_bits": 8, "macs_per_pe_per_cycle": 1.0}],
            "accumulator": {"bits": 32, "overflow": "saturate"},
            "requantizer": {"scale_format": "int32_mult_shift",
                            "rounding_modes": ["rne", "rna", "rtz", "floor", "stochastic"],
                            "default_rounding": "rne", "lanes": cols},
            "stochastic_rounding": {"hardware": True, "rng": "lfsr", "rng_width_bits": 16,
                                    "rng_instances": cols, "random_bits_per_rounding": 8,
                                    "seed": 0xACE1, "reseed": "per_layer"},
        },
        "vector_unit": {
            "lanes": cols, "datapath_bits": 32, "precisions": ["int8", "int16", "int32"],
            "ops_cycles": ops,
            "supports": ["batchnorm_fwd", "batchnorm_bwd", "relu", "relu_bwd", "maxpool",
                         "avgpool", "quantize", "dequantize", "sgd_update", "momentum_update",
                         "loss_scale"],
            "stochastic_rounding": "shared_with_mac_array",
        },
        "memory": [
            _sram("ifmap_sram", arch["IfmapSramSzkB"], banks, rows * word_bits,
                  ["activations", "gradients"]),
            _sram("filter_sram", arch["FilterSramSzkB"], banks, cols * word_bits, ["weights"]),
            _sram("ofmap_sram", arch["OfmapSramSzkB"], banks, cols * word_bits,
                  ["psums", "activations"]),
            {"name": "pe_regs", "per_pe_bits": 48, "energy_pj_per_bit": PE_REG_PJ_PER_BIT},
        ],
        "dram": {
            "type": f"SCALE-Sim interface, {arch['Bandwidth']:g} words/cycle",
            "bandwidth_gb_s": float(arch["Bandwidth"]) * BYTES_PER_WORD * CLOCK_MHZ * 1e6 / 1e9,
            "efficiency": 1.0, "latency_ns": 0.0,
            "read_energy_pj_per_byte": DRAM_PJ_PER_BYTE,
            "write_energy_pj_per_byte": DRAM_PJ_PER_BYTE,
        },
        "energy": {k: (dict(v) if isinstance(v, dict) else v) for k, v in EDGE_ENERGY.items()},
        "area": {**EDGE_AREA, "pe_um2": {"int8": EDGE_AREA["pe_um2"]["int8"]}},
        "leakage": {"logic_mw": 0.0},  # assumption: SCALE-Sim has no leakage
    }
