"""Run options (what to simulate) and the split of CLI ``key=value`` options.

``fxpsim run hw=edge_npu model=vgg16 batch=8 rounding.g=stochastic mac_array.rows=32``:
``hw``, ``model``, ``batch`` and ``rounding.g`` are run options (:class:`RunConfig`);
``mac_array.rows`` starts with a top-level hwconfig section, so it is a hardware override
(see :mod:`fxpsim.config.overrides`). Anything else is an error listing the valid keys.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from fxpsim.errors import ConfigError, clip
from fxpsim.paths import name_problem, path_problem
from fxpsim.suggest import did_you_mean
from fxpsim.vocab import ALGORITHMS, ROUNDING_NAMES, AlgoName, canonical_rounding

Phase = Literal["train", "infer"]
Algo = AlgoName
Timing = Literal["native", "scalesim"]
ReportFormat = Literal["json", "csv", "md", "html", "trace"]
Bits = Annotated[int, Field(ge=2, le=16)] | Literal["float"]
WBits = Annotated[int, Field(ge=1, le=16)] | Literal["float"]  # 1: binary codes ±1 with a scale
LayerFormat = tuple[str, Literal["w", "a", "g"], int | Literal["float"]]

ALGOS: tuple[str, ...] = ALGORITHMS
FORMATS: tuple[ReportFormat, ...] = ("json", "csv", "md", "html", "trace")

# top-level HwConfig sections that may be overridden from the command line
HW_OVERRIDE_ROOTS: tuple[str, ...] = (
    "technology", "clock", "mac_array", "vector_unit", "memory", "dram", "energy", "area", "leakage",
    "scalesim",
)


class RunConfig(BaseModel):
    """What to simulate. Frozen; built by :func:`parse_run_options` or directly.

    ``w_bits``/``a_bits``/``g_bits``: 2..16 or ``"float"`` (no quantization).
    ``rounding_*``: a name of :data:`fxpsim.vocab.ROUNDING_NAMES`, stored canonical
    (``rne`` -> ``half_even``).
    ``epochs``/``steps``: ``None`` lets the training plane choose.
    ``fb_*``: forward-backtrack options (``fb.a`` is the step-size fraction in [0, 1]).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    hw: str = Field("edge_npu", min_length=1)
    model: str = Field("vgg16", min_length=1)
    phase: Phase = "train"
    algo: Algo = "sgd"
    batch: Annotated[int, Field(ge=1, le=1 << 20)] = 32
    epochs: Annotated[int, Field(ge=0, le=1 << 20)] | None = None
    steps: Annotated[int, Field(ge=0, le=1 << 40)] | None = None
    dataset: Literal["fmnist_small", "fashion_mnist", "cifar10"] = "fmnist_small"
    data_dir: str | None = None
    w_bits: WBits = 8
    a_bits: Bits = 8
    g_bits: Bits = 8
    rounding_w: str = "half_even"
    rounding_a: str = "half_even"
    rounding_g: str = "stochastic"
    seed: Annotated[int, Field(ge=0, le=2**63 - 1)] = 0
    out: str | None = None
    name: str | None = None
    timing: Timing = "native"
    fb_a: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)] = 0.6
    fb_coef_on: Literal["trial", "current"] = "trial"
    fb_trial_batch: Literal["same", "next"] = "same"
    fb_trial_updates_moments: bool = False
    lr: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None
    format: tuple[ReportFormat, ...] = Field(FORMATS, min_length=1)
    # algorithm knobs (docs/algorithms.md); the time plane prices laq_rounds and
    # metagrad_hidden too, so both planes always see the same recipe
    laq_rounds: Annotated[int, Field(ge=1, le=100)] = 5
    lbt_alpha: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)] = 1e-3
    bnrect_lambda: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 1e-4
    metagrad_hidden: Annotated[int, Field(ge=1, le=4096)] = 100
    metagrad_update: Literal["hyper", "plain"] = "hyper"
    octo_lambda: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 0.1
    octo_backward: Literal["requant", "reuse"] = "requant"
    target_loss: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None
    eval_samples: Annotated[int, Field(ge=0)] | None = None  # test images; 0 = all
    metagrad_lr: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 1e-3
    metagrad_gain: Literal["keep", "free"] = "keep"
    bnrect_form: Literal["hinge", "square"] = "hinge"
    bnrect_sigma: Literal["batch", "running"] = "batch"
    # training controls
    lr_schedule: Literal["constant", "step", "cosine"] = "constant"
    warmup: Annotated[int, Field(ge=0, le=1 << 40)] = 0  # warm-up steps
    checkpoint: str | None = None  # file: saved after training, loaded by phase=infer
    bn_recalibrate: Annotated[int, Field(ge=0, le=1 << 20)] = 0  # batches before each eval
    zigzag_probe_every: Annotated[int, Field(ge=0, le=1 << 40)] | None = None  # None: auto
    # per-layer formats from ``formats.<layer>[.w|.a|.g]=<bits|float>``
    layer_formats: tuple[LayerFormat, ...] = ()
    # LBT's protocol (docs/algorithms.md §3.5), defaults on for algo=lbt: learned forward
    # clips, unsigned codes after a ReLU, first and last GEMM layers in float
    forward_scales: Literal["minmax", "learned"] = "minmax"
    forward_scales_lr: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 1e-5
    a_codes: Literal["signed", "unsigned"] = "signed"
    float_ends: bool = False
    # gradient (dY) quantizer scales: one per tensor, per channel, or per sample
    g_granularity: Literal["tensor", "channel", "sample"] = "tensor"

    @model_validator(mode="before")
    @classmethod
    def _algo_defaults(cls, data: Any) -> Any:
        # Octo rounds gradients to nearest (its demo's backward quantizer); an explicit
        # rounding.g still wins
        if isinstance(data, dict) and data.get("algo") == "octo" and "rounding_g" not in data:
            data = {**data, "rounding_g": "half_even"}
        if isinstance(data, dict) and data.get("algo") == "lbt":  # explicit options win
            data = {"forward_scales": "learned", "a_codes": "unsigned", "float_ends": True,
                    **data}
        return data
    @model_validator(mode="after")
    def _learned_scales_fit(self) -> RunConfig:
        # parse_run_options reports this with the option's name; this guards direct use
        if self.forward_scales == "learned" and self.algo in ("laq", "fb"):
            raise ValueError(f"forward_scales=learned does not apply to algo={self.algo}")
        return self

    # what the per-layer mapping search minimizes (time plane)
    mapping_objective: Literal["latency", "energy", "edp"] = "latency"
    # time plane: engines work at once (overlap) or one op at a time (sequential)
    schedule: Literal["overlap", "sequential"] = "overlap"
    # seconds a model file's user code may take per step (import, construction, trace,
    # forward); not a simulation input, so not echoed in summary.json
    model_timeout: Annotated[float, Field(gt=0, le=86400, allow_inf_nan=False, exclude=True)
                             ] = 300.0
    # (C, H, W) the model is built for; None: the model's own (a torch class's attribute)
    input_shape: tuple[Annotated[int, Field(ge=1, le=1 << 16)], ...] | None = None

    @field_validator("rounding_w", "rounding_a", "rounding_g")
    @classmethod
    def _known_rounding(cls, v: str) -> str:
        # aliases (rne, rna, rtz) are stored as their canonical name so reports agree
        return canonical_rounding(v)


# ---- parsing CLI strings -------------------------------------------------------------------
def _q(text: str) -> str:
    """A user's value quoted for an error line (long values shortened)."""
    return clip(repr(text), 60)


def _int(lo: int, hi: int, noun: str) -> Callable[[str], Any]:
    def parse(text: str) -> int:
        if not re.fullmatch(r"[+-]?\d{1,19}", text.strip()):
            raise ValueError(f"expected {noun}, got {_q(text)}")
        value = int(text)
        if not lo <= value <= hi:
            raise ValueError(f"expected {noun} (at most {hi}), got {_q(text)}"
                             if value > hi else f"expected {noun}, got {_q(text)}")
        return value

    return parse


def _optional(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    def wrapped(text: str) -> Any:
        return None if text.strip().lower() in ("", "none", "null") else parse(text)

    return wrapped


def _float(lo: float, hi: float, lo_open: bool, noun: str) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"expected {noun}, got {_q(text)}") from None
        if not math.isfinite(value) or value > hi or value < lo or (lo_open and value == lo):
            raise ValueError(f"expected {noun}, got {_q(text)}")
        return value

    return parse


def _choice(choices: tuple[str, ...]) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}, got {_q(text)}"
                             f"{did_you_mean(text, choices)}")
        return text

    return parse


def _bool(text: str) -> bool:
    low = text.strip().lower()
    if low in ("true", "yes", "on", "1"):
        return True
    if low in ("false", "no", "off", "0"):
        return False
    raise ValueError(f"expected true or false, got {_q(text)}")


def _bits_from(lo: int) -> Callable[[str], int | str]:
    def parse(text: str) -> int | str:
        if text.strip() == "float":
            return "float"
        try:
            return _int(lo, 16, f"an integer in {lo}..16")(text)
        except ValueError:
            raise ValueError(f"expected an integer in {lo}..16 or 'float', got {_q(text)}") \
                from None

    return parse


_bits = _bits_from(2)


def _text(text: str) -> str:
    if not text.strip():
        raise ValueError("expected a non-empty string, got ''")
    return text


def _path(text: str) -> str:
    """A file or folder path: non-empty and within the file system's limits."""
    _text(text)
    problem = path_problem(text)
    if problem:
        raise ValueError(problem)
    return text


def _name(text: str) -> str:
    """A run name: one folder name under ``reports/`` (a name, never a path)."""
    problem = name_problem(text)
    if problem:
        raise ValueError(f"{problem}, got {clip(repr(text), 60)}")
    return text


def _formats(text: str) -> tuple[str, ...]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise ValueError(f"expected a comma list of {', '.join(FORMATS)}, got {_q(text)}")
    for t in items:
        if t not in FORMATS:
            raise ValueError(f"expected a comma list of {', '.join(FORMATS)}, got {_q(t)}")
    return tuple(dict.fromkeys(items))


def _shape(text: str) -> tuple[int, ...]:
    """``3x32x32``, ``3,32,32`` or ``[3, 32, 32]`` -> ``(3, 32, 32)``."""
    body = text.strip().strip("[]()")
    parts = [p.strip() for p in re.split(r"\s*[x,]\s*|\s+", body.strip())]
    if not parts or not all(re.fullmatch(r"\d{1,5}", p) for p in parts) \
            or not all(1 <= int(p) <= 1 << 16 for p in parts):
        raise ValueError(f"expected a shape such as 3x32x32 (C x H x W), got {text!r}")
    return tuple(int(p) for p in parts)


_ROUNDING = _choice(ROUNDING_NAMES)

# CLI key -> (RunConfig field, parser)
RUN_KEYS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "hw": ("hw", _path),
    "model": ("model", _path),
    "phase": ("phase", _choice(("train", "infer"))),
    "algo": ("algo", _choice(ALGOS)),
    "batch": ("batch", _int(1, 1 << 20, "a positive integer")),
    "epochs": ("epochs", _optional(_int(0, 1 << 20, "a non-negative integer"))),
    "steps": ("steps", _optional(_int(0, 1 << 40, "a non-negative integer"))),
    "dataset": ("dataset", _choice(("fmnist_small", "fashion_mnist", "cifar10"))),
    "data_dir": ("data_dir", _optional(_path)),
    "w_bits": ("w_bits", _bits_from(1)),
    "a_bits": ("a_bits", _bits),
    "g_bits": ("g_bits", _bits),
    "rounding.w": ("rounding_w", _ROUNDING),
    "rounding.a": ("rounding_a", _ROUNDING),
    "rounding.g": ("rounding_g", _ROUNDING),
    "seed": ("seed", _int(0, 2**63 - 1, "a non-negative integer")),
    "out": ("out", _optional(_path)),
    "name": ("name", _optional(_name)),
    "timing": ("timing", _choice(("native", "scalesim"))),
    "fb.a": ("fb_a", _float(0.0, 1.0, False, "a number in [0, 1]")),
    "fb.coef_on": ("fb_coef_on", _choice(("trial", "current"))),
    "fb.trial_batch": ("fb_trial_batch", _choice(("same", "next"))),
    "fb.trial_updates_moments": ("fb_trial_updates_moments", _bool),
    "lr": ("lr", _optional(_float(0.0, 1e6, True, "a positive number"))),
    "format": ("format", _formats),
    "laq.rounds": ("laq_rounds", _int(1, 100, "an integer in 1..100")),
    "lbt.alpha": ("lbt_alpha", _float(0.0, 1.0, True, "a number in (0, 1]")),
    "bnrect.lambda": ("bnrect_lambda", _float(0.0, 1e6, False, "a non-negative number")),
    "metagrad.hidden": ("metagrad_hidden", _int(1, 4096, "an integer in 1..4096")),
    "metagrad.update": ("metagrad_update", _choice(("hyper", "plain"))),
    "octo.lambda": ("octo_lambda", _float(0.0, 1e6, False, "a non-negative number")),
    "octo.backward": ("octo_backward", _choice(("requant", "reuse"))),
    "eval_samples": ("eval_samples", _optional(_int(0, 1 << 40, "a non-negative integer"))),
    "mapping.objective": ("mapping_objective", _choice(("latency", "energy", "edp"))),
    "schedule": ("schedule", _choice(("overlap", "sequential"))),
    "target_loss": ("target_loss", _optional(_float(0.0, 1e9, True, "a positive number"))),
    "model_timeout": ("model_timeout", _float(0.0, 86400.0, True, "seconds in (0, 86400]")),
    "input_shape": ("input_shape", _optional(_shape)),
    "metagrad.lr": ("metagrad_lr", _float(0.0, 1e6, True, "a positive number")),
    "metagrad.gain": ("metagrad_gain", _choice(("keep", "free"))),
    "bnrect.form": ("bnrect_form", _choice(("hinge", "square"))),
    "bnrect.sigma": ("bnrect_sigma", _choice(("batch", "running"))),
    "lr_schedule": ("lr_schedule", _choice(("constant", "step", "cosine"))),
    "warmup": ("warmup", _int(0, 1 << 40, "a non-negative integer (steps)")),
    "checkpoint": ("checkpoint", _optional(_path)),
    "bn_recalibrate": ("bn_recalibrate", _int(0, 1 << 20, "a non-negative integer (batches)")),
    "zigzag.probe_every": ("zigzag_probe_every",
                           _optional(_int(0, 1 << 40, "a non-negative integer (steps)"))),
    "forward_scales": ("forward_scales", _choice(("minmax", "learned"))),
    "forward_scales.lr": ("forward_scales_lr", _float(0.0, 1e6, True, "a positive number")),
    "a_codes": ("a_codes", _choice(("signed", "unsigned"))),
    "float_ends": ("float_ends", _bool),
    "granularity.g": ("g_granularity", _choice(("tensor", "channel", "sample"))),
}

#: per-layer format keys: ``formats.<layer>`` (all three kinds) or ``formats.<layer>.<kind>``
LAYER_FORMAT_PREFIX = "formats."
_KINDS = {"w": "w", "a": "a", "g": "g", "w_bits": "w", "a_bits": "a", "g_bits": "g"}


def _layer_format(key: str, text: str) -> list[tuple[str, str, int | str]]:
    """``formats.conv1=float`` -> [(conv1, w, float), (conv1, a, float), (conv1, g, float)];
    ``formats.fc.w=1`` -> [(fc, w, 1)]. Bits: 2..16 or float (1 allowed for weights)."""
    rest = key[len(LAYER_FORMAT_PREFIX):]
    layer, _, kind = rest.rpartition(".")
    if not layer or kind not in _KINDS:
        layer, kind = rest, ""
    if not layer:
        raise ValueError("expected formats.<layer>[.w|.a|.g]=<bits|float>")
    kinds = [_KINDS[kind]] if kind else ["w", "a", "g"]
    value: int | str
    if text.strip() == "float":
        value = "float"
    else:
        lo = 1 if kinds == ["w"] else 2
        value = _int(lo, 16, f"an integer in {lo}..16 or 'float'")(text)
    return [(layer, k, value) for k in kinds]


def option_text(key: str, value: object) -> str:
    """A typed option value (from Python: ``1``, ``True``, ``("json", "csv")``, ``(3, 32,
    32)``, ``None``) as the command-line text its parser reads; strings pass through."""
    if isinstance(value, str):
        return value
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, tuple | list) and key == "input_shape":
        return "x".join(str(v) for v in value)
    if isinstance(value, tuple | list) and key == "format":
        return ",".join(str(v) for v in value)
    import yaml  # hw overrides take YAML flow values: lists, mappings

    return yaml.safe_dump(value, default_flow_style=True, width=1 << 20).strip()



def is_hw_override(key: str) -> bool:
    """True when ``key``'s first component (before ``.`` or ``[``) is a hwconfig section."""
    root = re.split(r"[.\[]", key, maxsplit=1)[0]
    return root in HW_OVERRIDE_ROOTS


def parse_run_options(options: Mapping[str, object]) -> tuple[RunConfig, dict[str, str]]:
    """Split CLI ``key=value`` options into a :class:`RunConfig` and hwconfig overrides.

    Run keys are those of :data:`RUN_KEYS` (``batch``, ``rounding.w``, ``fb.a``, ...); keys
    whose first component is one of :data:`HW_OVERRIDE_ROOTS` are returned unparsed, in order,
    for :func:`fxpsim.config.load.load_hwconfig`. Raises :class:`ConfigError` with source
    ``"command line"`` naming the key for an unknown key or an unparsable value.
    """
    fields: dict[str, Any] = {}
    hw_overrides: dict[str, str] = {}
    layer_formats: list[tuple[str, str, int | str]] = []
    for key, given in options.items():
        text = option_text(key, given)
        if key.startswith(LAYER_FORMAT_PREFIX):
            try:
                layer_formats.extend(_layer_format(key, text))
            except ValueError as exc:
                raise ConfigError("command line", key, str(exc)) from None
        elif key in RUN_KEYS:
            field, parse = RUN_KEYS[key]
            try:
                fields[field] = parse(text)
            except ValueError as exc:
                raise ConfigError("command line", key, str(exc)) from None
        elif is_hw_override(key):
            hw_overrides[key] = text
        else:
            valid = ", ".join(list(RUN_KEYS) + ["formats.<layer>"]
                              + [f"{r}.*" for r in HW_OVERRIDE_ROOTS])
            hint = did_you_mean(key, list(RUN_KEYS) + list(HW_OVERRIDE_ROOTS))
            raise ConfigError("command line", key, f"unknown option; valid: {valid} (fxpsim "
                              f"run --help describes each){hint}")
    if layer_formats:
        fields["layer_formats"] = tuple(layer_formats)
    if fields.get("forward_scales") == "learned" and fields.get("algo") in ("laq", "fb"):
        raise ConfigError("command line", "forward_scales",
                          f"learned forward scales do not apply to algo={fields['algo']}: its "
                          "weight codes come from its own projection (use forward_scales=minmax)")
    try:
        run = RunConfig(**fields)
    except ValidationError as exc:  # parsers above should make this unreachable
        err = exc.errors(include_url=False)[0]
        field = str(err["loc"][0]) if err.get("loc") else ""
        cli_key = next((k for k, (f, _) in RUN_KEYS.items() if f == field), field)
        raise ConfigError("command line", cli_key, err["msg"]) from None
    return run, hw_overrides
