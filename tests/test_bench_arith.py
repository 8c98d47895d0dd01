"""`fxpsim bench arith quick=1` writes a JSON with every case and positive rates (no speed
assertions: speed is judged from the benchmark report, not by tests)."""

from __future__ import annotations

import json

from fxpsim.cli import main


def test_bench_arith_quick_writes_every_case(tmp_path, capsys):
    out = tmp_path / "arith.json"
    assert main(["bench", "arith", "quick=1", f"out={out}", "threads=1"]) == 0
    data = json.loads(out.read_text())
    assert set(data["machine"]) >= {"cpu", "cores", "numba_threads", "torch_threads", "numpy",
                                    "numba", "torch", "python"}
    rows = data["rows"]
    cases = [r["case"] for r in rows]
    for expected in ("int8 128x128x128 acc32 saturate", "int8 128x128x128 acc16 saturate",
                     "int4 128x128x128 acc32 saturate", "int4 128x128x128 acc16 saturate"):
        assert expected in cases
        assert f"{expected} [torch._int_mm]" in cases
    assert sum(r["group"] == "conv_ws16x16" and r["reference"] is not None for r in rows) >= 2
    assert any(r["group"] == "quantize" for r in rows)
    for r in rows:
        assert r["rate"] > 0 and r["seconds"] > 0
        assert r["ratio"] is None or r["ratio"] > 0
    assert "wrote" in capsys.readouterr().out


def test_bench_rejects_unknown_option(tmp_path, capsys):
    assert main(["bench", "arith", "bogus=1", f"out={tmp_path / 'x.json'}"]) == 2
    assert "bogus" in capsys.readouterr().err
