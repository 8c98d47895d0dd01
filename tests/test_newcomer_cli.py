"""The first-hour experience: options in any order, did-you-mean hints, help that lists
every key, schema references in docs/, run names that never clash, list-valued axes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fxpsim.cli import main
from fxpsim.cli_args import normalize_argv
from fxpsim.cli_help import MEANING, key_rows
from fxpsim.compare import grid, split_top_level
from fxpsim.config.run import RUN_KEYS, option_text, parse_run_options
from fxpsim.errors import ConfigError
from fxpsim.schema_doc import DOC_FILES, reference

REPO = Path(__file__).resolve().parent.parent
FAST = ["hw=tiny", "model=lenet5", "batch=2", "steps=0"]


@pytest.fixture()
def in_repo(monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(REPO)
    return REPO


def test_normalize_argv_turns_flags_into_options() -> None:
    assert normalize_argv(["run", "model=x", "--steps", "0", "--format=json", "out=o"]) == [
        "run", "model=x", "steps=0", "format=json", "out=o"]
    assert normalize_argv(["run", "--eval-samples", "5"]) == ["run", "eval_samples=5"]
    assert normalize_argv(["run", "--help"]) == ["run", "--help"]
    assert normalize_argv(["--version"]) == ["--version"]
    # the folder of `report` stays the positional argument wherever options are written
    assert normalize_argv(["report", "--format", "md", "dir"]) == ["report", "dir", "format=md"]


def test_flags_and_options_in_any_order(in_repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "r"
    assert main(["run", *FAST[:2], "--format", "json,csv", f"out={out}", "--batch", "2",
                 "steps=0"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["layers.csv", "summary.json"]


def test_format_given_both_ways_is_an_error(in_repo: Path, capsys: pytest.CaptureFixture[str]
                                           ) -> None:
    assert main(["run", *FAST, "--format", "json", "format=csv"]) == 2
    assert "format: given twice" in capsys.readouterr().err


@pytest.mark.parametrize(("args", "hint"), [
    (["model=vgg61"], "did you mean 'vgg16'"),
    (["rounding.g=stochastc"], "did you mean 'stochastic'"),
    (["mac_array.row=32"], "did you mean 'rows'"),
    (["bacth=2"], "did you mean 'batch'"),
    (["hw=edge_np"], "did you mean 'edge_npu'"),
    (["mac_array.dataflow=weight_stationery"], "did you mean 'weight_stationary'"),
    (["algo=lbq"], "did you mean 'lbt'"),
])
def test_did_you_mean(in_repo: Path, capsys: pytest.CaptureFixture[str], args: list[str],
                      hint: str) -> None:
    base = [a for a in FAST if a.split("=")[0] not in {x.split("=")[0] for x in args}]
    assert main(["run", *base, *args]) == 2
    err = capsys.readouterr().err
    assert hint in err and err.count("\n") == 1


def test_help_lists_every_run_key_with_type_and_default(capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    assert set(MEANING) == set(RUN_KEYS)  # every key has its one line
    for command in ("run", "compare", "check"):
        assert main([command, "--help"]) == 0
        text = capsys.readouterr().out
        flat = " ".join(text.split())
        for key, typ, default, meaning in key_rows():
            assert f"  {key} " in text
            assert " ".join(f"{key} {meaning} {typ}; default {default}".split()) in flat
    batch = next(r for r in key_rows() if r[0] == "batch")
    assert batch[1] == "an integer in 1..1048576" and batch[2] == "32"


@pytest.mark.parametrize("which", ["hw", "model"])
def test_schema_reference_and_docs_agree(which: str, capsys: pytest.CaptureFixture[str]
                                         ) -> None:
    assert main(["schema", which]) == 0
    printed = capsys.readouterr().out
    assert printed == reference(which)
    doc = (REPO / DOC_FILES[which]).read_text(encoding="utf-8")
    assert doc == printed, f"{DOC_FILES[which]} is stale: run fxpsim schema {which} > it"


def test_hw_reference_covers_every_key() -> None:
    text = reference("hw")
    for key in ("`mac_array.rows`", "`mac_array.accumulator.overflow`", "`dram.bandwidth_gb_s`",
                "`memory[0].size_kib`", "`energy.rng_per_bit`"):
        assert key in text
    assert "an integer in 1..4096" in text


def test_model_reference_lists_ops_torch_ops_and_input_shape() -> None:
    text = reference("model")
    for op in ("conv2d", "linear", "batchnorm", "global_avgpool", "add", "flatten"):
        assert f"`{op}`" in text
    assert "nn.Conv2d" in text and "input_shape=3x32x32" in text


def _summary(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text())


def test_run_names_carry_a_config_digest(in_repo: Path, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["run", *FAST, "--format", "json"]) == 0
    assert main(["run", *FAST, "--format", "json", "mac_array.rows=8"]) == 0
    assert main(["run", *FAST, "--format", "json", "rounding.g=half_even"]) == 0
    folders = sorted(p.name for p in (tmp_path / "reports").iterdir())
    assert len(folders) == 3 and all(f.startswith("tiny-lenet5-train-sgd-b2-") for f in folders)
    # the same configuration replaces its own folder; out/format and how the hwconfig is
    # referred to do not change the name
    assert main(["run", *FAST, "--format", "json,csv", "mac_array.rows=8"]) == 0
    assert main(["run", "hw=tiny.yaml", *FAST[1:], "--format", "json"]) == 0
    assert len(list((tmp_path / "reports").iterdir())) == 3
    named = [f for f in folders if _summary(tmp_path / "reports" / f)["overrides"]["hw"]]
    assert len(named) == 1
    s = _summary(tmp_path / "reports" / named[0])
    assert s["overrides"] == {"hw": {"mac_array.rows": "8"},
                              "run": {"hw": "tiny", "model": "lenet5", "batch": "2",
                                      "steps": "0"}}


def test_typed_values_in_the_python_api() -> None:
    from fxpsim.api import simulate_run

    o = simulate_run({"hw": "tiny", "model": "lenet5", "batch": 2, "steps": 0,
                      "format": ("json",), "fb.trial_updates_moments": True,
                      "mac_array.requantizer.rounding_modes": ["rne", "stochastic"]},
                     progress=False)
    assert o.run.batch == 2 and o.run.format == ("json",) and o.run.fb_trial_updates_moments
    assert option_text("input_shape", (3, 32, 32)) == "3x32x32"
    assert option_text("x", None) == "none"


def test_input_shape_option() -> None:
    run, _ = parse_run_options({"input_shape": "3x32x32"})
    assert run.input_shape == (3, 32, 32)
    assert parse_run_options({"input_shape": "[1, 28, 28]"})[0].input_shape == (1, 28, 28)
    with pytest.raises(ConfigError, match="input_shape: expected a shape"):
        parse_run_options({"input_shape": "3xx"})


def test_torch_class_without_input_shape_attribute_uses_the_option(tmp_path: Path) -> None:
    from fxpsim.api import simulate_run

    f = tmp_path / "net.py"
    f.write_text("import torch.nn as nn\n"
                 "class Net(nn.Module):\n"
                 "    def __init__(self):\n"
                 "        super().__init__()\n"
                 "        self.c = nn.Conv2d(1, 4, 3)\n"
                 "        self.f = nn.Flatten()\n"
                 "        self.l = nn.Linear(4 * 6 * 6, 10)\n"
                 "    def forward(self, x):\n"
                 "        return self.l(self.f(self.c(x)))\n")
    with pytest.raises(ConfigError, match="input_shape"):
        simulate_run({"hw": "tiny", "model": f"{f}:Net", "steps": 0}, progress=False)
    o = simulate_run({"hw": "tiny", "model": f"{f}:Net", "steps": 0,
                      "input_shape": "1x8x8"}, progress=False)
    assert o.graph.input_shape == (1, 8, 8)


def test_compare_keeps_bracketed_lists_whole() -> None:
    assert split_top_level("[rne,stochastic],[rne,floor]") == ["[rne,stochastic]", "[rne,floor]"]
    assert split_top_level("[rne,stochastic]") == ["[rne,stochastic]"]
    assert split_top_level("a,b") == ["a", "b"]
    axes, variants = grid({"model": "lenet5",
                           "mac_array.requantizer.rounding_modes": "[rne,stochastic],[rne]"})
    assert [a.values for a in axes] == [("[rne,stochastic]", "[rne]")]
    one_axes = grid({"mac_array.requantizer.rounding_modes": "[rne,stochastic]",
                     "rounding.g": "floor,stochastic"})[0]
    assert [a.key for a in one_axes] == ["rounding.g"]
    assert len(variants) == 2


def test_topology_without_classifier_says_training_needs_one(
        in_repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "hw=scalesim_example", "model=scalesim_vgg16_cifar", "steps=3"]) == 2
    err = capsys.readouterr().err
    assert "has no classifier" in err and "steps=0" in err


def test_documented_torch_ops_trace(tmp_path: Path) -> None:
    """Every module and function the model reference lists as supported is accepted."""
    from fxpsim.graph.resolve import load_model

    f = tmp_path / "allops.py"
    f.write_text(
        "import torch\nimport torch.nn as nn\nimport torch.nn.functional as F\n"
        "class Net(nn.Module):\n"
        "    input_shape = (3, 16, 16)\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.c1 = nn.Conv2d(3, 8, 3, padding=1)\n"
        "        self.bn = nn.BatchNorm2d(8)\n"
        "        self.r = nn.ReLU()\n"
        "        self.r6 = nn.ReLU6()\n"
        "        self.c2 = nn.Conv2d(8, 8, 3, padding=1, groups=8)\n"
        "        self.mp = nn.MaxPool2d(2)\n"
        "        self.ap = nn.AvgPool2d(2)\n"
        "        self.gap = nn.AdaptiveAvgPool2d((1, 1))\n"
        "        self.drop = nn.Dropout(0.1)\n"
        "        self.id = nn.Identity()\n"
        "        self.flat = nn.Flatten()\n"
        "        self.fc = nn.Linear(8, 10)\n"
        "    def forward(self, x):\n"
        "        y = self.r(self.bn(self.c1(x)))\n"
        "        y = y + F.relu(self.c2(y))\n"
        "        y = torch.add(self.r6(y), torch.relu(y))\n"
        "        y = F.relu6(self.mp(y))\n"
        "        y = F.max_pool2d(F.avg_pool2d(self.ap(y), 1), 1)\n"
        "        y = self.id(self.drop(self.gap(y).contiguous()))\n"
        "        z = F.adaptive_avg_pool2d(y, 1)\n"
        "        return self.fc(torch.flatten(z, 1)) + self.fc(self.flat(y).view(y.size(0), -1))\n")
    g = load_model(f"{f}:Net")
    ops = {n.op for n in g.nodes}
    assert {"conv2d", "batchnorm", "relu", "relu6", "maxpool", "avgpool", "global_avgpool",
            "add", "flatten", "linear"} <= ops
