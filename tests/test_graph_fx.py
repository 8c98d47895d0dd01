"""torch.fx import: user modules written to a temp file, traced into the IR."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

from fxpsim.errors import ConfigError, UnsupportedError
from fxpsim.graph import load_model
from fxpsim.graph.ir import Conv2dAttrs, InputAttrs

SMALL = '''
import torch
import torch.nn as nn
import torch.nn.functional as F


class Small(nn.Module):
    input_shape = (1, 28, 28)

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.pool = nn.MaxPool2d(2)
        self.drop = nn.Dropout(0.5)
        self.fc1 = nn.Linear(8 * 14 * 14, 32)
        self.fc2 = nn.Linear(32, 10, bias=False)

    def forward(self, x):
        x = self.pool(F.relu(self.bn(self.conv(x))))
        x = x.view(x.size(0), -1)
        return self.fc2(self.drop(torch.relu(self.fc1(x))))
'''

RESNETISH = '''
import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                          nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += self.shortcut(x)
        return F.relu(out)


class TinyResNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16),
                                  nn.ReLU(inplace=True))
        self.layer1 = Block(16, 16, 1)
        self.layer2 = Block(16, 32, 2)
        self.dw = nn.Conv2d(32, 32, 3, 1, 1, groups=32, bias=False)
        self.act = nn.ReLU6()
        self.avg = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(32, 7)

    def forward(self, x):
        x = self.layer2(self.layer1(self.stem(x)))
        x = self.avg(self.act(self.dw(x)))
        return self.fc(torch.flatten(x, 1))
'''


def _write(tmp_path: Path, text: str, name: str = "model.py") -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


def _torch_counts(model: nn.Module, shape: tuple[int, ...]) -> tuple[int, int]:
    macs = 0

    def hook(m: nn.Module, inp: tuple, out: torch.Tensor) -> None:
        nonlocal macs
        if isinstance(m, nn.Conv2d):
            macs += out[0].numel() * m.in_channels // m.groups * m.kernel_size[0] \
                * m.kernel_size[1]
        elif isinstance(m, nn.Linear):
            macs += m.in_features * m.out_features

    for m in model.modules():
        m.register_forward_hook(hook)
    model.eval()
    with torch.no_grad():
        model(torch.zeros((1, *shape)))
    return sum(p.numel() for p in model.parameters()), macs


def _instantiate(path: Path, cls: str) -> nn.Module:
    import importlib.util

    spec = importlib.util.spec_from_file_location("_fx_test_ref", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return getattr(mod, cls)()


def test_small_module(tmp_path: Path) -> None:
    p = _write(tmp_path, SMALL)
    path_before = list(sys.path)
    g = load_model(f"{p}:Small")
    assert sys.path == path_before
    assert [n.op for n in g.nodes] == ["input", "conv2d", "batchnorm", "relu", "maxpool",
                                       "flatten", "linear", "relu", "linear"]
    assert g.input_shape == (1, 28, 28) and g.num_classes == 10
    params, macs = _torch_counts(_instantiate(p, "Small"), (1, 28, 28))
    assert (g.params, g.macs) == (params, macs)
    assert (g.params, g.macs) == (
        8 * 9 + 8 + 2 * 8 + 8 * 14 * 14 * 32 + 32 + 32 * 10,
        8 * 28 * 28 * 9 + 8 * 14 * 14 * 32 + 32 * 10,
    )
    assert g.node("conv").attrs == Conv2dAttrs(8, (3, 3), (1, 1), (1, 1), 1, True)
    assert g.node("fc2").inputs == ("relu_1",)  # the dropout is dropped
    # the class attribute is the native size: a smaller request pads, channels follow
    g2 = load_model(f"{p}:Small", input_shape=(1, 20, 20))
    assert g2.input_shape == (1, 28, 28) and g2.input.attrs == InputAttrs(pad_to=(20, 20))


def test_resnet_like_module(tmp_path: Path) -> None:
    p = _write(tmp_path, RESNETISH)
    with pytest.raises(ConfigError, match="input_shape"):
        load_model(f"{p}:TinyResNet")
    g = load_model(f"{p}:TinyResNet", input_shape=(3, 16, 16))
    params, macs = _torch_counts(_instantiate(p, "TinyResNet"), (3, 16, 16))
    assert (g.params, g.macs) == (params, macs)
    assert g.num_classes == 7
    adds = [n for n in g.nodes if n.op == "add"]
    assert [a.inputs for a in adds] == [("layer1.bn2", "stem.2"),
                                        ("layer2.bn2", "layer2.shortcut.1")]
    assert g.node("layer2.shortcut.0").shape == (32, 8, 8)
    assert g.node("dw").attrs.groups == 32 and g.node("act").op == "relu6"
    assert g.node("avg").op == "global_avgpool" and g.node("avg").shape == (32, 1, 1)
    with pytest.raises(ConfigError, match="num_classes"):
        load_model(f"{p}:TinyResNet", input_shape=(3, 16, 16), num_classes=10)


def test_unsupported_op_names_op_and_node(tmp_path: Path) -> None:
    p = _write(tmp_path, '''
        import torch
        import torch.nn as nn

        class Net(nn.Module):
            input_shape = (4,)

            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(4, 2)

            def forward(self, x):
                return torch.sigmoid(self.fc(x))
    ''')
    with pytest.raises(UnsupportedError) as e:
        load_model(f"{p}:Net")
    assert str(e.value) == f"{p}:Net: unsupported op 'torch.sigmoid' at node 'sigmoid'"


@pytest.mark.parametrize("body, op", [
    ("return self.fc(x).tanh()", "Tensor.tanh"),
    ("return nn.functional.gelu(self.fc(x))", "F.gelu"),
    ("return self.act(self.fc(x))", "nn.Sigmoid"),
])
def test_unsupported_variants(tmp_path: Path, body: str, op: str) -> None:
    p = _write(tmp_path, f'''
        import torch
        import torch.nn as nn

        class Net(nn.Module):
            input_shape = (4,)

            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(4, 2)
                self.act = nn.Sigmoid()

            def forward(self, x):
                {body}
    ''')
    with pytest.raises(UnsupportedError, match=f"unsupported op '{op}' at node"):
        load_model(f"{p}:Net")


def test_bad_references(tmp_path: Path) -> None:
    p = _write(tmp_path, SMALL)
    with pytest.raises(ConfigError, match="no nn.Module class 'Nope'.*found: Small"):
        load_model(f"{p}:Nope")
    with pytest.raises(ConfigError, match="no such file"):
        load_model(f"{tmp_path}/missing.py:Net")
    bad = _write(tmp_path, "import nonexistent_module_xyz\n", "bad.py")
    with pytest.raises(ConfigError, match="importing bad.py failed: ModuleNotFoundError"):
        load_model(f"{bad}:Net")
    with pytest.raises(ConfigError, match="input_shape"):
        load_model(f"{p}:Small", input_shape=(1, 28))


def test_functional_pools_and_identity_adaptive_pool(tmp_path: Path) -> None:
    p = _write(tmp_path, '''
        import torch.nn as nn
        import torch.nn.functional as F

        class Net(nn.Module):
            input_shape = (3, 32, 32)

            def __init__(self):
                super().__init__()
                self.c = nn.Conv2d(3, 8, 3, padding=1)
                self.ap = nn.AdaptiveAvgPool2d((16, 16))  # identity at 16x16, as in torchvision VGG
                self.fc = nn.Linear(8 * 4 * 4, 10)

            def forward(self, x):
                x = self.ap(F.max_pool2d(self.c(x), 2))
                x = F.avg_pool2d(x.add(x), 4)
                return self.fc(x.reshape(x.size(0), -1))
    ''')
    g = load_model(f"{p}:Net")
    assert [(n.op, n.shape) for n in g.nodes] == [
        ("input", (3, 32, 32)), ("conv2d", (8, 32, 32)), ("maxpool", (8, 16, 16)),
        ("add", (8, 16, 16)), ("avgpool", (8, 4, 4)), ("flatten", (128,)), ("linear", (10,))]
    assert g.node("add").inputs == ("max_pool2d", "max_pool2d")
