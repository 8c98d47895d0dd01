"""`fxpsim bench train quick=1`: runs both trainings and writes the JSON fields (no speed
assertion: speed is the benchmark's job)."""

from __future__ import annotations

import json
import math

import pytest

from fxpsim.cli import main
from fxpsim.errors import ConfigError


def test_bench_train_quick_writes_json(tmp_path):
    out = tmp_path / "train.json"
    assert main(["bench", "train", "quick=1", "steps=2", "threads=1", f"out={out}"]) == 0
    payload = json.loads(out.read_text())
    res, info = payload["results"], payload["machine"]
    assert res["model"] == "resnet20" and res["batch"] == 16 and res["steps"] == 2
    assert res["data_hw"] == [28, 28] and res["input"] == [1, 32, 32]
    assert res["numerics"]["w_bits"] == res["numerics"]["a_bits"] == 8
    assert res["numerics"]["rounding_g"] == "stochastic" and res["numerics"]["rng"] == "lfsr"
    # 22 GEMM layers x 3 passes, minus the first layer's backward-data, per timed step
    assert res["int8_gemms_timed"] == {"integer": 2 * (22 * 3 - 1), "fp32": 0}
    for run in ("int8", "fp32"):
        assert len(res[f"{run}_step_s"]) == 2
        assert res[f"{run}_images_per_s"] == pytest.approx(16 / res[f"{run}_median_step_s"])
        assert len(res[f"{run}_loss"]) == 3 and all(math.isfinite(v) for v in res[f"{run}_loss"])
    assert res["ratio"] == pytest.approx(res["int8_images_per_s"] / res["fp32_images_per_s"])
    assert res["target"] == 1.0
    assert info["torch_threads"] >= 1 and info["cpu"]
    # same init and data: the two runs start from the same loss (fp32 vs INT8 forward)
    assert res["int8_loss"][0] == pytest.approx(res["fp32_loss"][0], rel=0.05)
    nar = res["narrow"]  # LeNet-5, 32- vs 16-bit saturating accumulator
    assert (nar["model"], nar["wide"], nar["narrow"], nar["target"]) == \
        ("lenet5", "acc32", "acc16", 0.5)
    assert nar["narrow_overflow_events"] > 0  # the 16-bit accumulator did saturate
    assert nar["ratio"] == pytest.approx(nar["narrow_images_per_s"] / nar["wide_images_per_s"])
    assert nar["wide_loss"][0] == nar["narrow_loss"][0] or nar["narrow_overflow_events"]


def test_bench_train_rejects_unknown_option(tmp_path):
    from fxpsim.bench.train import main as train_main

    with pytest.raises(ConfigError, match="bogus"):
        train_main({"bogus": "1", "out": str(tmp_path / "x.json")})
