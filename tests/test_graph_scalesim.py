"""SCALE-Sim topology CSVs (convolution and M,N,K GEMM formats) -> GEMM-only graphs."""

from __future__ import annotations

from pathlib import Path

import pytest

from fxpsim.errors import ConfigError
from fxpsim.graph import load_model
from fxpsim.graph.scalesim_topo import parse_scalesim_topology

CONV = """Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,
Conv1, 224, 224, 7, 7, 3, 64, 2,
Conv2 ,56,56,3,3,64,64,1 ,
Conv3, 10, 12, 3, 5, 8, 16, 1, 2,
"""


def test_conv_topology() -> None:
    g = parse_scalesim_topology(CONV, "t.csv", name="t")
    assert g.workload_only and g.num_classes == 0 and g.name == "t"
    assert [n.name for n in g.nodes] == ["Conv1.input", "Conv1", "Conv2.input", "Conv2",
                                         "Conv3.input", "Conv3"]
    assert [n.op for n in g.input_nodes] == ["input"] * 3
    c1, c2, c3 = g.gemm_nodes
    # SCALE-Sim: ofmap = (ifmap - filter) // stride + 1, padding already in the ifmap
    assert c1.shape == (64, 109, 109) and c1.inputs == ("Conv1.input",)
    assert c2.shape == (64, 54, 54)
    assert c3.shape == (16, 8, 4) and c3.attrs.stride == (1, 2)
    assert g.macs == (64 * 109 * 109 * 3 * 49 + 64 * 54 * 54 * 64 * 9
                      + 16 * 8 * 4 * 8 * 15)


def test_gemm_topology(tmp_path: Path) -> None:
    p = tmp_path / "gpt.csv"
    p.write_text("Layer,M,N,K,\nQKT,1024,1024,64,\nFF1,512,3072,768,\n")
    g = load_model(str(p))
    qkt = g.node("QKT")
    assert qkt.in_shape == (64, 1024, 1) and qkt.shape == (1024, 1024, 1)
    assert qkt.macs == 1024 * 1024 * 64 and qkt.params == 1024 * 64
    assert g.macs == 1024 * 1024 * 64 + 512 * 3072 * 768
    with pytest.raises(ConfigError, match="fixed layer sizes"):
        load_model(str(p), num_classes=10)


@pytest.mark.parametrize("row, key, msg", [
    ("Conv2, 56, 56, 3, 3, 64, x, 1,", "line 3, column 'Num Filter'",
     "expected a positive integer, got 'x'"),
    ("Conv2, 56, 56, 3, 3, 64, 64,", "line 3", "expected 8 columns"),
    ("Conv2, 2, 56, 3, 3, 64, 64, 1,", "line 3, column 'Filter Height'", "filter 3 larger"),
    ("Conv1, 56, 56, 3, 3, 64, 64, 1,", "line 3, column 'Layer name'", "unique"),
    ("Conv2, 56, 56, 3, 3, 64, 64, 0,", "line 3, column 'Strides'", "got '0'"),
])
def test_bad_rows(row: str, key: str, msg: str) -> None:
    text = CONV.splitlines()[0] + "\nConv1, 8, 8, 3, 3, 1, 1, 1,\n" + row + "\n"
    with pytest.raises(ConfigError) as e:
        parse_scalesim_topology(text, "x.csv")
    assert (e.value.source, e.value.key_path) == ("x.csv", key)
    assert msg in e.value.message


def test_bad_header() -> None:
    with pytest.raises(ConfigError, match="x.csv: line 1: header must start with"):
        parse_scalesim_topology("name, h, w\n", "x.csv")
    with pytest.raises(ConfigError, match="no layers"):
        parse_scalesim_topology("Layer, M, N, K,\n\n", "x.csv")
