"""Run options: defaults, parsing of CLI strings, the run/hw split, rounding-name agreement."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from fxpsim.config.run import RUN_KEYS, RunConfig, parse_run_options
from fxpsim.errors import ConfigError
from fxpsim.vocab import ROUNDING_ALIASES, ROUNDING_NAMES, canonical_rounding


def test_defaults():
    run, hw = parse_run_options({})
    assert hw == {}
    assert run == RunConfig()
    assert (run.hw, run.model, run.phase, run.algo, run.batch) == (
        "edge_npu", "vgg16", "train", "sgd", 32)
    assert (run.w_bits, run.a_bits, run.g_bits) == (8, 8, 8)
    assert (run.rounding_w, run.rounding_a, run.rounding_g) == (
        "half_even", "half_even", "stochastic")
    assert run.format == ("json", "csv", "md", "html", "trace") and run.timing == "native"
    assert run.fb_a == 0.6 and run.seed == 0 and run.epochs is None and run.lr is None


def test_parse_and_split():
    run, hw = parse_run_options({
        "hw": "edge_npu.yaml", "model": "resnet20", "phase": "infer", "batch": "4",
        "mac_array.rows": "32", "rounding.w": "rne", "fb.a": "0.25", "w_bits": "float",
        "memory[0].size_kib": "512", "epochs": "none", "steps": "10", "format": "md,json,md",
        "fb.trial_updates_moments": "true", "lr": "0.01", "algo": "fb", "timing": "scalesim",
    })
    assert hw == {"mac_array.rows": "32", "memory[0].size_kib": "512"}
    assert list(hw) == ["mac_array.rows", "memory[0].size_kib"]
    assert (run.hw, run.model, run.phase, run.batch) == ("edge_npu.yaml", "resnet20", "infer", 4)
    assert run.rounding_w == "half_even"  # alias stored canonical
    assert run.fb_a == 0.25 and run.w_bits == "float" and run.steps == 10 and run.epochs is None
    assert run.format == ("md", "json") and run.fb_trial_updates_moments is True
    assert run.lr == 0.01 and run.algo == "fb" and run.timing == "scalesim"


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("batch", "x", "expected a positive integer, got 'x'"),
        ("batch", "0", "expected a positive integer, got '0'"),
        ("batch", "2.0", "expected a positive integer, got '2.0'"),
        ("seed", "-1", "expected a non-negative integer, got '-1'"),
        ("w_bits", "0", "expected an integer in 1..16 or 'float', got '0'"),
        ("a_bits", "1", "expected an integer in 2..16 or 'float', got '1'"),
        ("g_bits", "17", "expected an integer in 2..16 or 'float', got '17'"),
        ("rounding.g", "up", "expected one of floor, ceil, trunc,"),
        ("phase", "eval", "expected one of train, infer, got 'eval'"),
        ("algo", "adam", "expected one of sgd, laq, fb, lbt, bnrect, metagrad, octo"),
        ("fb.a", "1.5", "expected a number in [0, 1], got '1.5'"),
        ("fb.a", "nan", "expected a number in [0, 1], got 'nan'"),
        ("lr", "0", "expected a positive number, got '0'"),
        ("format", "json,pdf", "expected a comma list of json, csv, md, html, trace, got 'pdf'"),
        ("fb.trial_updates_moments", "maybe", "expected true or false, got 'maybe'"),
        ("model", "", "expected a non-empty string"),
    ],
)
def test_bad_run_option_value(key, value, message):
    with pytest.raises(ConfigError) as info:
        parse_run_options({key: value})
    assert info.value.source == "command line" and info.value.key_path == key
    assert info.value.message.startswith(message), info.value.message
    assert str(info.value).startswith(f"command line: {key}: ")


@pytest.mark.parametrize("key", ["bacth", "rounding.x", "fb", "name.x", "schema_version"])
def test_unknown_run_option(key):
    with pytest.raises(ConfigError) as info:
        parse_run_options({key: "1"})
    assert info.value.key_path == key
    assert info.value.message.startswith("unknown option; valid: hw, model, phase")
    assert "mac_array.*" in info.value.message


def test_runconfig_is_frozen_and_strict():
    run = RunConfig()
    with pytest.raises(ValidationError):
        run.batch = 3  # type: ignore[misc]
    with pytest.raises(ValidationError):
        RunConfig(batch="3")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        RunConfig(rounding_w="nearest")
    assert RunConfig(rounding_g="rtz").rounding_g == "trunc"


def test_every_run_key_maps_to_a_field():
    fields = set(RunConfig.model_fields)
    # layer_formats is filled from the formats.<layer>[.kind] keys
    assert {f for f, _ in RUN_KEYS.values()} | {"layer_formats"} == fields


def test_rounding_names():
    assert set(ROUNDING_ALIASES) == {"rne", "rna", "rtz"}
    assert all(canonical_rounding(n) in ROUNDING_NAMES for n in ROUNDING_NAMES)
    with pytest.raises(ValueError, match="unknown rounding 'nearest'"):
        canonical_rounding("nearest")


def test_every_rounding_name_is_accepted_by_the_kernels():
    """Each name run options accept must be one the fixed-point kernels implement."""
    import numpy as np

    from fxpsim.fixedpoint import QFormat, quantize

    for name in ROUNDING_NAMES:
        assert quantize(np.array([0.25, -1.5]), QFormat(8, 0), name, rng=1).shape == (2,)
