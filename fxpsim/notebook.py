"""The notebook API: typed keyword arguments in, typed results (pandas) out.

>>> import fxpsim
>>> r = fxpsim.run(hw="edge_npu", model="lenet5", batch=1, phase="infer")
>>> r.totals["cycles"], r.layers[["layer", "pass", "cycles"]].head()
>>> df = fxpsim.compare(model="lenet5", steps=0, rounding_g=["half_even", "stochastic"])

Keyword arguments are the run options of ``fxpsim run`` with Python values: ints as ints,
``format=("json", "csv")``, ``input_shape=(1, 28, 28)``. A dotted option is spelled with
underscores where the CLI has one dot (``rounding_g``, ``fb_a``, ``laq_rounds``) and
hardware overrides with a double underscore (``mac_array__rows=32``), or all of them go in
``options={"mac_array.rows": 32}``. ``hw`` is a name, a path, an
:class:`~fxpsim.config.hw.HwConfig` or a dict in the hwconfig schema. Bad input raises
:class:`~fxpsim.errors.FxpsimError` with the same one-line message the CLI prints.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from fxpsim.config.hw import HwConfig
    from fxpsim.config.load import LoadedHw
    from fxpsim.outcome import RunOutcome


def cli_key(name: str) -> str:
    """A Python keyword -> the option key: ``rounding_g`` -> ``rounding.g``,
    ``mac_array__rows`` -> ``mac_array.rows``; run keys and unknown names pass through."""
    from fxpsim.config.run import RUN_KEYS

    if "__" in name:
        return name.replace("__", ".")
    if name in RUN_KEYS:
        return name
    by_field = {f: k for k, (f, _) in RUN_KEYS.items()}
    return by_field.get(name, name)


def _options(hw: Any, model: str, extra: Mapping[str, Any] | None,
             kwargs: Mapping[str, Any]) -> dict[str, Any]:
    opts: dict[str, Any] = {"model": model}
    if isinstance(hw, str | Path):
        opts["hw"] = str(hw)
    for key, value in (extra or {}).items():
        opts[key] = value
    for name, value in kwargs.items():
        key = cli_key(name)
        if key in opts:
            from fxpsim.errors import ConfigError

            raise ConfigError("arguments", key, "given twice")
        opts[key] = value
    return opts


def load_hw_object(hw: HwConfig | Mapping[str, Any], overrides: Mapping[str, str]
                   ) -> LoadedHw:
    """A HwConfig or a hwconfig-schema dict, with dotted overrides applied, validated."""
    from fxpsim.config.hw import HwConfig
    from fxpsim.config.load import LoadedHw, config_digest, validate_raw
    from fxpsim.config.overrides import apply_overrides_tracked
    from fxpsim.errors import ConfigError

    if isinstance(hw, HwConfig):
        raw, source = hw.model_dump(mode="json"), f"HwConfig {hw.name}"
    elif isinstance(hw, Mapping):
        raw, source = dict(hw), "hw dict"
    else:
        raise ConfigError("arguments", "hw", "expected a name, a path, a HwConfig or a dict, "
                          f"got {type(hw).__name__}")
    new_raw, paths = apply_overrides_tracked(raw, overrides)
    config = validate_raw(new_raw, source, paths)
    return LoadedHw(config=config, source=source, digest=config_digest(config))


@dataclass(frozen=True)
class Result:
    """One simulated (and possibly trained) step.

    ``totals``: summary.json's totals (cycles, seconds, energy_pj, macs, dram_bytes, ...);
    ``per_pass``: a DataFrame, one row per pass in run order; ``layers``: the layers.csv
    rows as a DataFrame (one row per layer x pass); ``accuracy``: final test/train accuracy
    and the per-epoch history, or None when the run did not train; ``summary``: the whole
    summary.json data; ``warnings``: what the run warned about.
    """

    name: str
    totals: dict[str, Any]
    per_pass: pd.DataFrame
    layers: pd.DataFrame
    accuracy: dict[str, Any] | None
    summary: dict[str, Any]
    warnings: tuple[str, ...]
    outcome: RunOutcome = field(repr=False)

    def write(self, folder: str | Path) -> Path:
        """Write the report files (summary.json, layers.csv, report.md/.html, trace.json, as
        the run's ``format`` asks) into ``folder``, atomically; returns the folder."""
        from fxpsim.api import report_files, write_report_folder

        return write_report_folder(Path(folder), report_files(self.outcome))


def result_of(outcome: RunOutcome) -> Result:
    import json

    import pandas as pd

    from fxpsim.report.summary import summary_json
    from fxpsim.report.tables import LAYER_COLUMNS, layer_row

    summary = json.loads(summary_json(outcome))
    scalar = [k for k, v in summary["totals"].items() if not isinstance(v, dict)]
    per_pass = pd.DataFrame([{"pass": p, **{k: summary["per_pass"][p][k] for k in scalar}}
                             for p in summary["pass_order"]])
    layers = pd.DataFrame([layer_row(r) for r in outcome.timing.records],
                          columns=list(LAYER_COLUMNS))
    return Result(name=outcome.name, totals=summary["totals"], per_pass=per_pass,
                  layers=layers, accuracy=summary.get("accuracy"), summary=summary,
                  warnings=tuple(summary.get("warnings", ())), outcome=outcome)


def run(hw: str | Path | HwConfig | Mapping[str, Any] = "edge_npu", model: str = "vgg16",
        *, options: Mapping[str, Any] | None = None, progress: bool = True,
        **kwargs: Any) -> Result:
    """Simulate one step (and train for accuracy when ``phase="train"`` with a budget), as
    ``fxpsim run`` does, and return a :class:`Result`. Nothing is written until
    :meth:`Result.write`. See the module docstring for the arguments."""
    from fxpsim.api import simulate_run
    from fxpsim.config.run import is_hw_override, option_text
    from fxpsim.numba_cache import use_user_cache

    use_user_cache()
    opts = _options(hw, model, options, kwargs)
    loaded = None
    if not isinstance(hw, str | Path):
        overrides = {k: option_text(k, v) for k, v in opts.items() if is_hw_override(k)}
        loaded = load_hw_object(hw, overrides)
        opts["hw"] = loaded.config.name
    return result_of(simulate_run(opts, progress=progress, loaded_hw=loaded))


def compare(hw: str | Path = "edge_npu", model: str = "vgg16", *,
            options: Mapping[str, Any] | None = None, **kwargs: Any) -> pd.DataFrame:
    """Run every variant, as ``fxpsim compare`` does, and return one row per variant: the
    axis values, cycles, energy, DRAM bytes, RNG bits and energies, accuracy and deltas
    against the first variant. A list value is an axis (``rounding_g=["floor",
    "stochastic"]``); a hw list value such as ``rounding_modes`` is an axis when given as a
    list of lists."""
    import pandas as pd

    from fxpsim.compare import run_compare
    from fxpsim.compare_report import rows
    from fxpsim.config.run import option_text
    from fxpsim.numba_cache import use_user_cache

    use_user_cache()
    text: dict[str, str] = {}
    for key, value in _options(hw, model, options, kwargs).items():
        if isinstance(value, list) and key not in ("format", "input_shape"):
            text[key] = ",".join(option_text(key, v) for v in value)
        else:
            text[key] = option_text(key, value)
    return pd.DataFrame(rows(run_compare(text)))
