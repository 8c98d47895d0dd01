"""Bad model files give one clear error naming the file and the key path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from fxpsim.errors import ConfigError
from fxpsim.graph import NodeSpec, build_graph, load_model

HEAD = "input: {shape: [3, 8, 8]}\nnum_classes: 4\nnodes:\n"
TAIL = ("  - {name: gap, op: global_avgpool}\n  - {name: flat, op: flatten}\n"
        "  - {name: fc, op: linear, attrs: {out_features: num_classes}}\n")


def _load(tmp_path: Path, nodes: str, head: str = HEAD, tail: str = TAIL):
    p = tmp_path / "m.yaml"
    p.write_text(head + nodes + tail)
    return load_model(str(p))


def test_good_file_loads(tmp_path: Path) -> None:
    g = _load(tmp_path, "  - {name: c, op: conv2d, attrs: {out_channels: 8, kernel: [3, 1], "
                        "padding: [1, 0]}, formats: {w_bits: 8}}\n")
    assert g.node("c").shape == (8, 8, 8) and g.node("c").formats.w_bits == 8
    assert g.macs == 8 * 8 * 8 * 3 * 3 + 8 * 4 and g.name == "m"


@pytest.mark.parametrize("nodes, key, msg", [
    ("  - {name: c, op: conv3d}\n", "nodes[0].op", "unknown op 'conv3d'"),
    ("  - {name: c, op: conv2d, attrs: {out_channels: 8, kernel: three}}\n",
     "nodes[0].attrs.kernel", "expected an integer or [h, w], got 'three'"),
    ("  - {name: c, op: conv2d, attrs: {out_channels: 8.5, kernel: 3}}\n",
     "nodes[0].attrs.out_channels", "expected an integer >= 1"),
    ("  - {name: c, op: conv2d, attrs: {out_channels: 8, kernel: 3, bias: 1}}\n",
     "nodes[0].attrs.bias", "expected true or false"),
    ("  - {name: c, op: conv2d, attrs: {out_channels: 8, kernel: 3, dilation: 2}}\n",
     "nodes[0].attrs.dilation", "unknown attribute for op 'conv2d'"),
    ("  - {name: c, op: conv2d, attrs: {kernel: 3}}\n",
     "nodes[0].attrs.out_channels", "required"),
    ("  - {name: c, op: conv2d, attrs: {out_channels: 8, kernel: 11, padding: 1}}\n",
     "nodes[0].attrs.kernel", "larger than the padded input 10x10"),
    ("  - {name: c, op: conv2d, attrs: {out_channels: 8, kernel: 3, groups: 2}}\n",
     "nodes[0].attrs.groups", "must divide in_channels=3"),
    ("  - {name: c, op: conv2d, attrs: {out_channels: 8, kernel: 1}}\n"
     "  - {name: a, op: add, inputs: [c, input]}\n",
     "nodes[1].inputs", "add: input shapes differ: [(8, 8, 8), (3, 8, 8)]"),
    ("  - {name: r, op: relu, inputs: [nope]}\n", "nodes[0].inputs[0]", "unknown input 'nope'"),
    ("  - {name: r, op: relu}\n  - {name: r, op: relu}\n", "nodes[1].name",
     "duplicate node name 'r'"),
    ("  - {name: r, op: relu, kernel: 3}\n", "nodes[0].kernel", "attributes go under 'attrs'"),
    ("  - {name: f, op: linear, attrs: {out_features: 3}}\n", "nodes[0].inputs",
     "linear needs a 1-D input"),
    ("  - {name: r, op: relu, formats: {w_bits: 0}}\n", "nodes[0].formats.w_bits",
     "expected bits in 1..16"),
])
def test_yaml_errors(tmp_path: Path, nodes: str, key: str, msg: str) -> None:
    with pytest.raises(ConfigError) as e:
        _load(tmp_path, nodes)
    assert e.value.source == str(tmp_path / "m.yaml")
    assert e.value.key_path == key
    assert msg in e.value.message


def test_yaml_top_level_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"m.yaml: input.shape: expected \[C, H, W\]"):
        _load(tmp_path, "", head="input: {shape: [3, 8]}\nnum_classes: 4\nnodes:\n")
    with pytest.raises(ConfigError, match="m.yaml: num_classes: expected a positive integer"):
        _load(tmp_path, "", head="input: {shape: [3, 8, 8]}\nnum_classes: 0\nnodes:\n")
    with pytest.raises(ConfigError, match="m.yaml: layers: unknown key"):
        _load(tmp_path, "", head="layers: []\n" + HEAD)
    with pytest.raises(ConfigError, match=r"m.yaml: nodes\[2\]: the last node must output"):
        _load(tmp_path, "", tail=TAIL.replace("num_classes}", "5}"))
    with pytest.raises(ConfigError, match="m.yaml: invalid YAML"):
        _load(tmp_path, "  - {name: [\n")


def test_input_shape_too_small_for_larger_requests_is_shape_error(tmp_path: Path) -> None:
    """A request larger than native rebuilds; an impossible native size is still caught."""
    with pytest.raises(ConfigError, match="kernel"):
        _load(tmp_path, "  - {name: p, op: maxpool, attrs: {kernel: 16}}\n")


def test_unknown_model_lists_builtins() -> None:
    with pytest.raises(ConfigError) as e:
        load_model("vgg17")
    assert e.value.key_path == "model"
    assert "unknown model 'vgg17'" in e.value.message and "resnet20" in e.value.message
    with pytest.raises(ConfigError, match="no such model file"):
        load_model("nowhere/model.yaml")
    with pytest.raises(ConfigError, match="ClassName"):
        load_model("net.py")


def test_build_graph_direct() -> None:
    specs = [NodeSpec("c", "conv2d", None, {"out_channels": 4, "kernel": 3, "stride": 2}),
             NodeSpec("p", "avgpool", None, {"kernel": 3, "stride": 1, "padding": 1}),
             NodeSpec("f", "flatten"), NodeSpec("l", "linear", None, {"out_features": 2})]
    g = build_graph("t", (2, 9, 9), specs, 2, "test")
    assert [n.shape for n in g.nodes] == [(2, 9, 9), (4, 4, 4), (4, 4, 4), (64,), (2,)]
    assert [n.in_shape for n in g.nodes[1:]] == [(2, 9, 9), (4, 4, 4), (4, 4, 4), (64,)]
    assert g.node("l").inputs == ("f",)
    with pytest.raises(ConfigError, match=r"test: nodes\[0\].op: only the model's single input"):
        build_graph("t", (2, 9, 9), [NodeSpec("i", "input", None, {"shape": [1, 2, 2]})], 2,
                    "test")
    with pytest.raises(ConfigError, match=r"nodes\[0\].attrs.padding: padding must be at most"):
        build_graph("t", (2, 9, 9), [NodeSpec("p", "maxpool", None,
                                              {"kernel": 2, "padding": 2})], 2, "test")


def test_import_graph_does_not_import_torch() -> None:
    code = ("import sys, fxpsim.graph as g; g.load_model('resnet20'); "
            "print('torch' in sys.modules, 'numba' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.split() == ["False", "False"]
