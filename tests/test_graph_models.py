"""Built-in YAML models: exact MACs/params derived by hand, and cross-checked against torch.

The torch networks below are written from the papers / reference code (not generated from
the IR); their leaf modules carry the IR's node names, so every IR node's output shape is
compared with torch's (forward hooks on meta tensors: no arithmetic, fast even at 224x224).
"""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
from torch import nn

from fxpsim.graph import load_model
from fxpsim.graph.ir import BatchNormAttrs, Conv2dAttrs, LinearAttrs

# ---------------------------------------------------------------- hand-derived numbers
# conv MACs = Cout * Hout * Wout * (Cin/groups) * kh * kw; linear MACs = in * out;
# params = weights + biases (+ gamma and beta per BatchNorm channel).

VGG_CH = 2 * 64 + 2 * 128 + 3 * 256 + 6 * 512  # output channels of the 13 convs (= 4224)
VGG16_MACS = (
    9 * (3 * 64 * 32 * 32 + 64 * 64 * 32 * 32 + 64 * 128 * 16 * 16 + 128 * 128 * 16 * 16
         + 128 * 256 * 8 * 8 + 2 * 256 * 256 * 8 * 8 + 256 * 512 * 4 * 4
         + 2 * 512 * 512 * 4 * 4 + 3 * 512 * 512 * 2 * 2)
    + 512 * 10
)
VGG16_PARAMS = (
    9 * (3 * 64 + 64 * 64 + 64 * 128 + 128 * 128 + 128 * 256 + 2 * 256 * 256 + 256 * 512
         + 5 * 512 * 512)
    + 2 * VGG_CH  # BatchNorm gamma, beta
    + 512 * 10 + 10
)
VGG16_IMAGENET_MACS = (
    9 * (3 * 64 * 224**2 + 64 * 64 * 224**2 + 64 * 128 * 112**2 + 128 * 128 * 112**2
         + 128 * 256 * 56**2 + 2 * 256 * 256 * 56**2 + 256 * 512 * 28**2
         + 2 * 512 * 512 * 28**2 + 3 * 512 * 512 * 14**2)
    + 25088 * 4096 + 4096 * 4096 + 4096 * 1000
)
VGG16_IMAGENET_PARAMS = (
    9 * (3 * 64 + 64 * 64 + 64 * 128 + 128 * 128 + 128 * 256 + 2 * 256 * 256 + 256 * 512
         + 5 * 512 * 512)
    + VGG_CH  # conv biases
    + 25088 * 4096 + 4096 + 4096 * 4096 + 4096 + 4096 * 1000 + 1000
)
RESNET20_MACS = (
    3 * 16 * 9 * 32**2
    + 6 * 16 * 16 * 9 * 32**2
    + 32 * 16 * 9 * 16**2 + 5 * 32 * 32 * 9 * 16**2 + 16 * 32 * 16**2  # + 1x1 projection
    + 64 * 32 * 9 * 8**2 + 5 * 64 * 64 * 9 * 8**2 + 32 * 64 * 8**2
    + 64 * 10
)
RESNET20_PARAMS = (
    9 * (3 * 16 + 6 * 16 * 16 + 16 * 32 + 5 * 32 * 32 + 32 * 64 + 5 * 64 * 64)
    + 16 * 32 + 32 * 64  # projections
    + 2 * (16 + 6 * 16 + 7 * 32 + 7 * 64)  # BatchNorms (6 per stage + 1 per projection)
    + 64 * 10 + 10
)
RESNET18_MACS = (
    3 * 64 * 49 * 112**2
    + 4 * 64 * 64 * 9 * 56**2
    + 128 * 64 * 9 * 28**2 + 3 * 128 * 128 * 9 * 28**2 + 64 * 128 * 28**2
    + 256 * 128 * 9 * 14**2 + 3 * 256 * 256 * 9 * 14**2 + 128 * 256 * 14**2
    + 512 * 256 * 9 * 7**2 + 3 * 512 * 512 * 9 * 7**2 + 256 * 512 * 7**2
    + 512 * 1000
)
RESNET18_PARAMS = (
    3 * 64 * 49
    + 9 * (4 * 64 * 64 + 128 * 64 + 3 * 128 * 128 + 256 * 128 + 3 * 256 * 256 + 512 * 256
           + 3 * 512 * 512)
    + 64 * 128 + 128 * 256 + 256 * 512
    + 2 * (64 + 4 * 64 + 5 * 128 + 5 * 256 + 5 * 512)
    + 512 * 1000 + 1000
)
LENET5_MACS = 6 * 25 * 28 * 28 + 16 * 6 * 25 * 10 * 10 + 400 * 120 + 120 * 84 + 84 * 10
LENET5_PARAMS = (6 * 25 + 6) + (16 * 6 * 25 + 16) + (400 * 120 + 120) + (120 * 84 + 84) \
    + (84 * 10 + 10)

# MobileNetV2 (CIFAR): blocks (cin, cout, expansion, stride, input size)
MBV2_BLOCKS = [(32, 16, 1, 1, 32), (16, 24, 6, 1, 32), (24, 24, 6, 1, 32),
               (24, 32, 6, 2, 32), (32, 32, 6, 1, 16), (32, 32, 6, 1, 16),
               (32, 64, 6, 2, 16), (64, 64, 6, 1, 8), (64, 64, 6, 1, 8), (64, 64, 6, 1, 8),
               (64, 96, 6, 1, 8), (96, 96, 6, 1, 8), (96, 96, 6, 1, 8),
               (96, 160, 6, 2, 8), (160, 160, 6, 1, 4), (160, 160, 6, 1, 4),
               (160, 320, 6, 1, 4)]


def _mbv2_block(cin: int, cout: int, e: int, s: int, h: int) -> tuple[int, int]:
    """(MACs, params): 1x1 expand at h, 3x3 depthwise to h/s, 1x1 project, BN after each;
    a 1x1 conv + BN shortcut when stride 1 and the width changes."""
    p, ho = e * cin, h // s
    macs = cin * p * h * h + p * 9 * ho * ho + p * cout * ho * ho
    params = cin * p + p * 9 + p * cout + 2 * (p + p + cout)
    if s == 1 and cin != cout:
        macs += cin * cout * h * h
        params += cin * cout + 2 * cout
    return macs, params


MBV2_MACS = (3 * 32 * 9 * 32**2 + sum(_mbv2_block(*b)[0] for b in MBV2_BLOCKS)
             + 320 * 1280 * 4**2 + 1280 * 10)
MBV2_PARAMS = (3 * 32 * 9 + 2 * 32 + sum(_mbv2_block(*b)[1] for b in MBV2_BLOCKS)
               + 320 * 1280 + 2 * 1280 + 1280 * 10 + 10)

EXPECTED = {
    "vgg16": (VGG16_MACS, VGG16_PARAMS, (3, 32, 32), 10),
    "vgg16_imagenet": (VGG16_IMAGENET_MACS, VGG16_IMAGENET_PARAMS, (3, 224, 224), 1000),
    "resnet20": (RESNET20_MACS, RESNET20_PARAMS, (3, 32, 32), 10),
    "resnet18": (RESNET18_MACS, RESNET18_PARAMS, (3, 224, 224), 1000),
    "mobilenetv2": (MBV2_MACS, MBV2_PARAMS, (3, 32, 32), 10),
    "lenet5": (LENET5_MACS, LENET5_PARAMS, (1, 32, 32), 10),
}


def test_hand_numbers_match_published_counts() -> None:
    """The derivations above reproduce the well-known counts (torchvision, papers)."""
    assert VGG16_IMAGENET_PARAMS == 138_357_544
    assert VGG16_IMAGENET_MACS == 15_470_264_320
    assert RESNET18_PARAMS == 11_689_512
    assert RESNET18_MACS == 1_814_073_344
    assert MBV2_PARAMS == 2_296_922
    assert LENET5_PARAMS == 61_706


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_model_macs_params_exact(name: str) -> None:
    macs, params, shape, ncls = EXPECTED[name]
    g = load_model(name)
    assert (g.macs, g.params) == (macs, params)
    assert g.input_shape == shape and g.num_classes == ncls
    assert g.nodes[-1].shape == (ncls,)


# ---------------------------------------------------------------- torch reference networks
class Add(nn.Module):
    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a + b


def _cbr(c_in: int, c_out: int, k: int, s: int, p: int, tag: str, groups: int = 1,
         relu: bool = True) -> list[tuple[str, nn.Module]]:
    mods: list[tuple[str, nn.Module]] = [
        (f"conv{tag}", nn.Conv2d(c_in, c_out, k, s, p, groups=groups, bias=False)),
        (f"bn{tag}", nn.BatchNorm2d(c_out))]
    if relu:
        mods.append((f"relu{tag}", nn.ReLU()))
    return mods


def torch_vgg16(imagenet: bool) -> nn.Module:
    mods: list[tuple[str, nn.Module]] = []
    c_in = 3
    for s, stage in enumerate([[64, 64], [128, 128], [256] * 3, [512] * 3, [512] * 3], 1):
        for j, c in enumerate(stage, 1):
            mods.append((f"conv{s}_{j}", nn.Conv2d(c_in, c, 3, padding=1, bias=imagenet)))
            if not imagenet:
                mods.append((f"bn{s}_{j}", nn.BatchNorm2d(c)))
            mods.append((f"relu{s}_{j}", nn.ReLU()))
            c_in = c
        mods.append((f"pool{s}", nn.MaxPool2d(2, 2)))
    mods.append(("flatten", nn.Flatten()))
    if imagenet:
        mods += [("fc6", nn.Linear(512 * 7 * 7, 4096)), ("fc6_relu", nn.ReLU()),
                 ("fc7", nn.Linear(4096, 4096)), ("fc7_relu", nn.ReLU()),
                 ("fc8", nn.Linear(4096, 1000))]
    else:
        mods.append(("fc", nn.Linear(512, 10)))
    return nn.Sequential(OrderedDict(mods))


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, sc_name: str) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1, self.relu1 = nn.BatchNorm2d(c_out), nn.ReLU()
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.sc_name = None
        if stride != 1 or c_in != c_out:  # projection shortcut (option B / downsample)
            self.sc_name = sc_name
            self.add_module(sc_name, nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False),
                                                   nn.BatchNorm2d(c_out)))
        self.add, self.relu2 = Add(), nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        sc = x if self.sc_name is None else getattr(self, self.sc_name)(x)
        return self.relu2(self.add(out, sc))


class ResNet(nn.Module):
    def __init__(self, cifar: bool) -> None:
        super().__init__()
        if cifar:
            widths, blocks, c, sc = [16, 32, 64], 3, 16, "shortcut"
            stem = _cbr(3, 16, 3, 1, 1, "1")
        else:
            widths, blocks, c, sc = [64, 128, 256, 512], 2, 64, "downsample"
            stem = _cbr(3, 64, 7, 2, 3, "1")[:2] + [("relu", nn.ReLU()),
                                                    ("maxpool", nn.MaxPool2d(3, 2, 1))]
        for name, m in stem:
            self.add_module(name, m)
        self.stem = [name for name, _ in stem]
        for s, w in enumerate(widths, 1):
            layer = []
            for b in range(blocks):
                layer.append(BasicBlock(c, w, 2 if (b == 0 and s > 1) else 1, sc))
                c = w
            self.add_module(f"layer{s}", nn.Sequential(*layer))
        self.n_stages = len(widths)
        self.add_module("pool" if cifar else "avgpool", nn.AdaptiveAvgPool2d(1))
        self.head = ["pool" if cifar else "avgpool", "flatten", "fc"]
        self.flatten, self.fc = nn.Flatten(), nn.Linear(c, 10 if cifar else 1000)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for name in self.stem:
            x = getattr(self, name)(x)
        for s in range(1, self.n_stages + 1):
            x = getattr(self, f"layer{s}")(x)
        for name in self.head:
            x = getattr(self, name)(x)
        return x


class MBBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, e: int, stride: int) -> None:
        super().__init__()
        p = e * c_in
        for name, m in (_cbr(c_in, p, 1, 1, 0, "1") + _cbr(p, p, 3, stride, 1, "2", groups=p)
                        + _cbr(p, c_out, 1, 1, 0, "3", relu=False)):
            self.add_module(name, m)
        self.residual, self.project = stride == 1, stride == 1 and c_in != c_out
        if self.project:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, bias=False),
                                          nn.BatchNorm2d(c_out))
        if self.residual:
            self.add = Add()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.relu2(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if not self.residual:
            return out
        return self.add(out, self.shortcut(x) if self.project else x)


class MobileNetV2(nn.Module):
    cfg = [(1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
           (6, 160, 3, 2), (6, 320, 1, 1)]

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.bn1, self.relu1 = nn.Conv2d(3, 32, 3, 1, 1, bias=False), \
            nn.BatchNorm2d(32), nn.ReLU()
        blocks, c = [], 32
        for e, out, n, s in self.cfg:
            for i in range(n):
                blocks.append(MBBlock(c, out, e, s if i == 0 else 1))
                c = out
        self.layers = nn.Sequential(*blocks)
        self.conv2, self.bn2, self.relu2 = nn.Conv2d(320, 1280, 1, bias=False), \
            nn.BatchNorm2d(1280), nn.ReLU()
        self.pool, self.flatten, self.linear = nn.AdaptiveAvgPool2d(1), nn.Flatten(), \
            nn.Linear(1280, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layers(self.relu1(self.bn1(self.conv1(x))))
        return self.linear(self.flatten(self.pool(self.relu2(self.bn2(self.conv2(x))))))


def torch_lenet5() -> nn.Module:
    return nn.Sequential(OrderedDict([
        ("conv1", nn.Conv2d(1, 6, 5)), ("relu1", nn.ReLU()), ("pool1", nn.MaxPool2d(2)),
        ("conv2", nn.Conv2d(6, 16, 5)), ("relu2", nn.ReLU()), ("pool2", nn.MaxPool2d(2)),
        ("flatten", nn.Flatten()), ("fc1", nn.Linear(400, 120)), ("relu3", nn.ReLU()),
        ("fc2", nn.Linear(120, 84)), ("relu4", nn.ReLU()), ("fc3", nn.Linear(84, 10))]))


TORCH_MODELS = {
    "vgg16": lambda: torch_vgg16(False),
    "vgg16_imagenet": lambda: torch_vgg16(True),
    "resnet20": lambda: ResNet(cifar=True),
    "resnet18": lambda: ResNet(cifar=False),
    "mobilenetv2": MobileNetV2,
    "lenet5": torch_lenet5,
}


def torch_counts(model: nn.Module, shape: tuple[int, ...]) -> tuple[int, int, dict]:
    """(params, MACs, {leaf module name: output shape}) from one meta-tensor forward."""
    macs = 0
    shapes: dict[str, tuple[int, ...]] = {}

    def hook(name: str):
        def f(m: nn.Module, inp: tuple, out: torch.Tensor) -> None:
            nonlocal macs
            shapes[name] = tuple(out.shape[1:])
            if isinstance(m, nn.Conv2d):
                macs += out[0].numel() * (m.in_channels // m.groups) * m.kernel_size[0] \
                    * m.kernel_size[1]
            elif isinstance(m, nn.Linear):
                macs += m.in_features * m.out_features
        return f

    for name, m in model.named_modules():
        if not list(m.children()) and name:
            m.register_forward_hook(hook(name))
    model.eval()
    model(torch.empty((1, *shape), device="meta"))
    return sum(p.numel() for p in model.parameters()), macs, shapes


@pytest.mark.parametrize("name", sorted(TORCH_MODELS))
def test_model_matches_torch(name: str) -> None:
    g = load_model(name)
    with torch.device("meta"):
        model = TORCH_MODELS[name]()
    params, macs, shapes = torch_counts(model, g.input_shape)
    assert (g.params, g.macs) == (params, macs)
    ir_names = {n.name for n in g.nodes if n.op != "input"}
    assert ir_names == set(shapes), ir_names ^ set(shapes)
    for n in g.nodes[1:]:
        assert n.shape == shapes[n.name], n.name
    # attributes that change arithmetic agree too
    mods = dict(model.named_modules())
    for n in g.nodes[1:]:
        m = mods[n.name]
        if isinstance(n.attrs, Conv2dAttrs):
            assert (n.attrs.kernel, n.attrs.stride, n.attrs.padding, n.attrs.groups,
                    n.attrs.bias) == (m.kernel_size, m.stride, m.padding, m.groups,
                                      m.bias is not None), n.name
        elif isinstance(n.attrs, LinearAttrs):
            assert n.attrs.bias == (m.bias is not None)
        elif isinstance(n.attrs, BatchNormAttrs):
            assert isinstance(m, nn.BatchNorm2d)


def test_num_classes_and_input_overrides() -> None:
    g = load_model("resnet20", num_classes=100)
    assert g.num_classes == 100 and g.nodes[-1].shape == (100,)
    assert g.macs == RESNET20_MACS + 64 * 90 and g.params == RESNET20_PARAMS + 65 * 90
    # MNIST into LeNet-5: native 32x32 kept, data padded by 2 on every side
    g = load_model("lenet5", input_shape=(1, 28, 28))
    assert g.input_shape == (1, 32, 32) and g.pad_to == (28, 28)
    assert g.input_padding == (2, 2, 2, 2) and g.macs == LENET5_MACS
    # grayscale 28x28 into VGG16 (CIFAR): first conv has 1 input channel, graph stays 32x32
    g = load_model("vgg16", input_shape=(1, 28, 28))
    assert g.input_shape == (1, 32, 32) and g.pad_to == (28, 28)
    assert g.macs == VGG16_MACS - 2 * 64 * 9 * 32 * 32
    # odd difference: the extra row/column goes after
    g = load_model("vgg16", input_shape=(3, 29, 32))
    assert g.input_padding == (1, 2, 0, 0)
    # larger than native: the model is rebuilt at that size (64x64 -> 2x2x512 features)
    g = load_model("vgg16", input_shape=(3, 64, 64))
    assert g.pad_to is None and g.node("fc").in_shape == (2048,)
    assert g.macs == 4 * (VGG16_MACS - 512 * 10) + 2048 * 10
    assert load_model("vgg16").pad_to is None


def test_scalesim_vgg16_matches_yaml_vgg16() -> None:
    """The shipped SCALE-Sim topology is VGG16-CIFAR's GEMMs: same MACs, conv+fc weights."""
    topo = load_model("scalesim_vgg16_cifar")
    vgg = load_model("vgg16")
    assert topo.workload_only and topo.num_classes == 0
    assert topo.macs == vgg.macs == VGG16_MACS
    assert topo.params == VGG16_PARAMS - 2 * VGG_CH - 10  # no BatchNorm, no fc bias
    assert [n.shape for n in topo.gemm_nodes] == [n.shape[:1] + (n.shape[1:] or (1, 1))
                                                   for n in vgg.gemm_nodes]


def test_list_models() -> None:
    from fxpsim.graph import list_models

    infos = {m.name: m for m in list_models()}
    assert set(EXPECTED) <= set(infos)
    for name, (macs, params, shape, _) in EXPECTED.items():
        assert (infos[name].macs, infos[name].params, infos[name].input_shape) == \
            (macs, params, shape)
