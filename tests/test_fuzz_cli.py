"""Fuzz the command line and the config/model loaders with bad input (hypothesis, bounded).

Every case goes through ``fxpsim.cli.main`` and must end in one of two ways:

* exit code 0 (the mutation happened to be valid): the report folder exists;
* exit code 2: exactly one stderr line ``fxpsim: error: <file or "command line">: ...``,
  no traceback, no report folder and no temporary folder left next to where it would be.

Anything else (an uncaught exception, a second line, a leftover folder) is a bug.
About 150 examples in all; runs use ``phase=infer steps=0`` and no HTML (the HTML writer is
tested elsewhere), so the file stays well under a minute.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fxpsim.cli import main

REPO = Path(__file__).resolve().parents[1]
TINY_TEXT = (REPO / "hwconfigs" / "tiny.yaml").read_text()
TINY = yaml.safe_load(TINY_TEXT)
LENET_TEXT = (REPO / "models" / "lenet5.yaml").read_text()
LENET = yaml.safe_load(LENET_TEXT)
RUN = ["phase=infer", "batch=1", "steps=0", "format=json,csv,md,trace"]
FUZZ = settings(max_examples=30, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])

BAD_VALUES = [-1, 0, -4096, 10**30, 2**64, 1e308, -1e-9, 0.5, "abc", "", "1e999", [], {}, None,
              True, [1, "x"], {"x": 1}, "\u00e9\u0000", 3.7]
BOMB = "a: &a [x, x, x, x]\nb: &b [*a, *a, *a, *a]\nc: &c [*b, *b, *b, *b]\nd: [*c, *c]\n"
TEXT_CASES = [b"", b"   \n", b"# only a comment\n", b"\xff\xfe\x00bad", b"- a\n- b\n",
              b"just a string", BOMB.encode(), b"x:\n" + b"  " * 40 + b"[[[[[[[[[[[[[[[[[[[[[[",
              ("{" * 200).encode(), b"name: a\nname: b\n", b"\tname: tab\n",
              b"schema_version: 1\n", b"nodes: !!python/object:os.system [ls]\n",
              ("k: " + "9" * 5000).encode()]


def key_paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for k, v in node.items():
            out += key_paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += key_paths(v, (*prefix, i))
    return out


def mutate(doc: Any, path: tuple, action: str, value: Any) -> Any:
    parent = doc
    for p in path[:-1]:
        parent = parent[p]
    last = path[-1]
    if action == "delete":
        del parent[last]
    elif action == "set":
        parent[last] = value
    elif action == "unknown_key":
        target = parent[last]
        if isinstance(target, dict):
            target["frobnicate"] = value
        else:
            parent[last] = {"frobnicate": value}
    return doc


@contextlib.contextmanager
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as d:
        yield Path(d)


def check(argv: list[str], capsys: pytest.CaptureFixture[str], root: Path, out: Path,
          source: str | None, want_key: str = "") -> int:
    """Run ``argv``; assert a clean success or a clean one-line error (see module doc)."""
    before = set(os.listdir(root))
    rc = main(argv)
    cap = capsys.readouterr()
    assert "Traceback" not in cap.err and "Traceback" not in cap.out
    if rc == 0:
        assert (out / "summary.json").is_file(), argv
        return rc
    assert rc == 2, (rc, argv, cap.err)
    assert cap.err.startswith("fxpsim: error: ") and cap.err.count("\n") == 1, cap.err
    assert len(cap.err.splitlines()) == 1, cap.err
    line = cap.err.rstrip("\n")
    if source is not None:
        assert source in line or "command line" in line, line
    if want_key and source is not None and source in line:  # want_key: the mutated section
        # "<file>: <key path or line N>: <message>" unless it is about the whole file
        rest = line.split(source + ": ", 1)[1]
        whole_file = re.match(r"(file is|not UTF-8|expected a mapping|invalid YAML|"
                              r"expected a mapping with)", rest)
        assert whole_file or re.match(r"[A-Za-z_0-9][\w\[\]. -]*: ", rest), line
    assert not out.exists(), argv
    assert set(os.listdir(root)) == before, sorted(set(os.listdir(root)) - before)
    return rc


# ---- hwconfig files ----------------------------------------------------------------------------
@FUZZ
@given(data=st.data())
def test_mutated_hwconfig_structure(data: st.DataObject, capsys) -> None:
    doc = yaml.safe_load(TINY_TEXT)
    path = data.draw(st.sampled_from(key_paths(doc)))
    action = data.draw(st.sampled_from(["delete", "set", "set", "unknown_key"]))
    value = data.draw(st.one_of(st.sampled_from(BAD_VALUES), st.integers(-10**20, 10**20),
                                st.text(max_size=6)))
    mutate(doc, path, action, value)
    with workdir() as root:
        hw = root / "hw.yaml"
        hw.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
        out = root / "out" / "run"  # parent created by the writer only
        # a cross-field check may blame another key than the mutated one: a key path it is
        check(["run", f"hw={hw}", "model=lenet5", *RUN, f"out={out}"], capsys, root, out,
              str(hw), want_key=str(path[0]))


@FUZZ
@given(cut=st.integers(0, len(TINY_TEXT)), junk=st.binary(max_size=12),
       case=st.sampled_from([None, *TEXT_CASES]))
def test_mutated_hwconfig_text(cut: int, junk: bytes, case: bytes | None, capsys) -> None:
    data = case if case is not None else TINY_TEXT.encode()[:cut] + junk + \
        TINY_TEXT.encode()[cut:]
    with workdir() as root:
        hw = root / "hw.yaml"
        hw.write_bytes(data)
        out = root / "run"
        check(["run", f"hw={hw}", "model=lenet5", *RUN, f"out={out}"], capsys, root, out,
              str(hw))


# ---- model files -------------------------------------------------------------------------------
@FUZZ
@given(data=st.data())
def test_mutated_model_file(data: st.DataObject, capsys) -> None:
    if data.draw(st.booleans()):
        doc = yaml.safe_load(LENET_TEXT)
        path = data.draw(st.sampled_from(key_paths(doc)))
        action = data.draw(st.sampled_from(["delete", "set", "unknown_key"]))
        mutate(doc, path, action, data.draw(st.sampled_from(BAD_VALUES)))
        raw = yaml.safe_dump(doc, allow_unicode=True).encode()
    else:
        raw = data.draw(st.sampled_from(TEXT_CASES))
    with workdir() as root:
        model = root / "m.yaml"
        model.write_bytes(raw)
        out = root / "run"
        check(["run", "hw=tiny", f"model={model}", *RUN, f"out={out}"], capsys, root, out,
              str(model))


# ---- command-line options ----------------------------------------------------------------------
HW_KEYS = [".".join(str(p) if isinstance(p, str) else f"[{p}]" for p in path).replace(".[", "[")
           for path in key_paths(TINY) if path[0] not in ("schema_version", "name",
                                                           "description")]
RUN_KEYS = ["batch", "w_bits", "a_bits", "g_bits", "rounding.w", "rounding.g", "algo", "phase",
            "seed", "model", "hw", "timing", "fb.a", "lr", "format", "epochs", "name"]


@FUZZ
@given(key=st.one_of(st.sampled_from(HW_KEYS + RUN_KEYS),
                     st.text(st.characters(blacklist_characters="=\x00"), min_size=1,
                             max_size=12)),
       value=st.one_of(st.sampled_from([str(v) for v in BAD_VALUES] + ["[1,2", "{a: 1}", "-5",
                                                                       "nosuch", "1e400"]),
                       st.text(st.characters(blacklist_characters="\x00"), max_size=10)))
def test_bad_overrides(key: str, value: str, capsys) -> None:
    with workdir() as root:
        out = root / "run"
        argv = ["run", "hw=tiny", "model=lenet5", *RUN, f"out={out}", f"{key}={value}"]
        if key.strip() in ("out", "phase", "batch", "steps", "format", "model", "hw"):
            argv = ["run", f"out={out}", f"{key}={value}"]  # no duplicate key
        if key.strip() == "out" or key.strip() == "name":
            argv.append("format=json")
        check(argv, capsys, root, out, None)


@FUZZ
@given(model=st.text(max_size=12), rounding=st.text(max_size=10),
       which=st.sampled_from(["model", "rounding.g", "rounding.w", "hw", "algo"]))
def test_unknown_names(model: str, rounding: str, which: str, capsys) -> None:
    with workdir() as root:
        out = root / "run"
        text = model if which in ("model", "hw") else rounding
        opts = {"hw": "tiny", "model": "lenet5", which: text.replace("\x00", "")}
        argv = ["run", *[f"{k}={v}" for k, v in opts.items()], *RUN, f"out={out}"]
        check(argv, capsys, root, out, None)


def test_unreadable_and_odd_paths(capsys, monkeypatch) -> None:
    monkeypatch.chdir(REPO)
    with workdir() as root:
        out = root / "run"
        (root / "adir.yaml").mkdir()
        afile = root / "plain.txt"
        afile.write_text("x")
        cases = [
            (["run", f"hw={root / 'adir.yaml'}"], str(root / "adir.yaml")),
            (["run", f"hw={root / 'missing.yaml'}"], None),
            (["run", "hw=tiny", f"model={root / 'adir.yaml'}"], None),
            (["run", "hw=tiny", f"model={root / 'missing.yaml'}"], None),
            (["run", "hw=tiny", "model=lenet5", "hw\x00=1"], None),
            (["run", "hw=tiny\x00x", "model=lenet5"], None),
            (["compare", "hw=tiny", "model=lenet5", "w_bits=4,8", f"out={afile}"], str(afile)),
            (["run", "hw=tiny", "model=lenet5", f"out={afile / 'sub'}"], None),
            (["report", str(root / "nowhere")], None),
        ]
        if os.geteuid() != 0:  # root reads a chmod-000 file anyway
            locked = root / "locked.yaml"
            locked.write_text(TINY_TEXT)
            locked.chmod(0)
            cases.append((["run", f"hw={locked}"], str(locked)))
        for argv, source in cases:
            full = [*argv, *RUN, f"out={out}"] if argv[0] == "run" and not any(
                a.startswith("out=") for a in argv) else argv
            if argv[0] == "run" and any(a.startswith("out=") for a in argv):
                full = [*argv, *RUN]
            assert check(full, capsys, root, out, source) == 2, full
        assert afile.read_text() == "x"


# ---- issue 12 classes: every class of hostile input keeps a fuzz test -------------------------
# (regression tests with one reproducer each are in test_robust.py)
from fxpsim.report.outdir import OWN_FILES  # noqa: E402

TINY_PATH = str(REPO / "hwconfigs" / "tiny.yaml")
JSON_RUN = ["model=lenet5", "phase=infer", "batch=1", "steps=0", "format=json"]
SMALL = settings(max_examples=20, deadline=None, derandomize=True, database=None,
                 suppress_health_check=[HealthCheck.function_scoped_fixture,
                                        HealthCheck.too_slow])
FEW = settings(SMALL, max_examples=4)


def tree(root: Path) -> dict[str, bytes | str]:
    """Every entry under ``root``: file bytes, link targets, folders (for "nothing changed")."""
    out: dict[str, bytes | str] = {}
    for p in sorted(root.rglob("*")):
        key = str(p.relative_to(root))
        out[key] = (f"-> {os.readlink(p)}" if p.is_symlink() else
                    "<dir>" if p.is_dir() else p.read_bytes())
    return out


def strict_json_file(path: Path) -> Any:
    def refuse(token: str) -> None:
        raise AssertionError(f"{path}: non-finite {token}")

    return json.loads(path.read_text(), parse_constant=refuse)


ENTRY = st.tuples(st.sampled_from(sorted(OWN_FILES) + ["notes.txt", "summary.json.bak",
                                                       ".hidden", "sub", "Summary.json"]),
                  st.sampled_from(["file", "file", "dir", "link"]))


@SMALL
@given(entries=st.lists(ENTRY, max_size=4, unique_by=lambda e: e[0]), via_link=st.booleans())
def test_fuzz_out_folder_never_loses_a_user_file(entries, via_link: bool, capsys) -> None:
    """Data loss: an existing out= folder is replaced only when it holds nothing but
    fxpsim's own report files; otherwise every entry survives byte for byte."""
    with workdir() as root:
        folder = root / "out"
        folder.mkdir()
        (root / "elsewhere.txt").write_text("keep")
        for name, kind in entries:
            if kind == "file":
                (folder / name).write_text(f"user {name}")
            elif kind == "dir":
                (folder / name).mkdir()
                (folder / name / "inner.txt").write_text("inner")
            else:
                (folder / name).symlink_to(root / "elsewhere.txt")
        out = root / "link" if via_link else folder
        if via_link:
            out.symlink_to(folder, target_is_directory=True)
        before = tree(root)
        rc = main(["run", f"hw={TINY_PATH}", *JSON_RUN, f"out={out}"])
        err = capsys.readouterr().err
        assert "Traceback" not in err
        ours = all(name in OWN_FILES and kind == "file" for name, kind in entries)
        if ours:
            assert rc == 0, err
            assert sorted(os.listdir(folder)) == ["summary.json"]
            assert out.is_symlink() == via_link and (root / "elsewhere.txt").read_text() == "keep"
            assert sorted(os.listdir(root)) == sorted(["elsewhere.txt", "out"]
                                                      + (["link"] if via_link else []))
        else:
            assert rc == 2 and err.count("\n") == 1 and "did not write" in err, err
            assert tree(root) == before


NAME_CHARS = st.characters(codec="utf-8", exclude_characters="\x00")
ODD_TEXT = st.one_of(
    st.text(NAME_CHARS, min_size=1, max_size=12),
    st.sampled_from([".", "..", "/", "../escaped", "a/b", "\\x", ".hidden", "-", "\x7f",
                     "\u2028", "é" * 130, "n" * 121, "n" * 120, "n" * 20_000]),
    st.builds(lambda c, n: c * n, st.sampled_from(["a", "ab/", "é"]),
              st.integers(1, 5000)))


@SMALL
@given(which=st.sampled_from(["name", "out", "hw", "model"]), text=ODD_TEXT)
def test_fuzz_names_and_paths(which: str, text: str, capsys, monkeypatch) -> None:
    """Paths: a name is a name (nothing outside reports/), a path within the file-system
    limits or a clean error; no traceback, nothing half-written, a short error line."""
    with workdir() as root:
        monkeypatch.chdir(root)
        opts = {"hw": TINY_PATH, **dict(a.split("=", 1) for a in JSON_RUN), which: text}
        rc = main(["run", *(f"{k}={v}" for k, v in opts.items())])
        err = capsys.readouterr().err
        assert "Traceback" not in err and len(err) < 1300, err[:300]
        if rc == 0:
            made = os.listdir(root)
            if which == "out":
                assert (Path(text) / "summary.json").is_file() or (root / text).exists()
            else:
                assert made == ["reports"] and len(os.listdir(root / "reports")) == 1
        else:
            assert rc == 2 and err.count("\n") == 1, err[:300]
            assert os.listdir(root) == [] or which == "out" and text.strip("/") == ""


NUMERIC_KEYS = [k for k in HW_KEYS if isinstance(
    functools.reduce(lambda d, t: d[t], [int(t) if t.isdigit() else t for t in
                                         re.split(r"[.\[\]]+", k) if t], TINY),
    (int, float)) and not isinstance(functools.reduce(
        lambda d, t: d[t], [int(t) if t.isdigit() else t for t in re.split(r"[.\[\]]+", k)
                            if t], TINY), bool)]
EXTREMES = ["5e-324", "1e-300", "1e-12", "1e-3", "0.0009765625", "0", "-0.0", "1", "1e5",
            "1e6", "1e9", "1e12", "1e300", str(2**63), "4096", "4097", "1.7976931348623157e308"]


@SMALL
@given(pairs=st.lists(st.tuples(st.sampled_from(NUMERIC_KEYS), st.sampled_from(EXTREMES)),
                      min_size=1, max_size=3, unique_by=lambda p: p[0]))
def test_fuzz_numeric_extremes(pairs, capsys) -> None:
    """Numbers the schema accepts give finite reports; the others are range errors."""
    with workdir() as root:
        out = root / "run"
        rc = check(["run", "hw=tiny", *JSON_RUN[:-1], "format=json,trace",
                    *(f"{k}={v}" for k, v in pairs), f"out={out}"], capsys, root, out, None)
        if rc == 0:
            strict_json_file(out / "summary.json")
            strict_json_file(out / "trace.json")


CELL = st.one_of(st.integers(-3, 70).map(str), st.text(max_size=8),
                 st.sampled_from(["x" * 140_000, "9" * 5000, "\x00", '"a\nb"', "1e3", " 7 "]))


@SMALL
@given(gemm=st.booleans(), rows=st.lists(st.lists(CELL, min_size=3, max_size=10), max_size=4))
def test_fuzz_topology_csv(gemm: bool, rows, capsys) -> None:
    """Encodings and sizes: any SCALE-Sim topology text is a run or one error line."""
    head = "Layer, M, N, K" if gemm else ("Layer name, IFMAP Height, IFMAP Width, Filter "
                                          "Height, Filter Width, Channels, Num Filter, Strides")
    text = head + "\n" + "".join(",".join(r) + "\n" for r in rows)
    with workdir() as root:
        topo = root / "t.csv"
        topo.write_text(text)
        out = root / "run"
        check(["run", f"model={topo}", "hw=tiny", "phase=infer", "format=json", f"out={out}"],
              capsys, root, out, str(topo))
        assert len(capsys.readouterr().err) < 1300


JSON_LEAF = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                      st.text(max_size=5))
JSON_DOC = st.recursive(JSON_LEAF, lambda kids: st.lists(kids, max_size=3)
                        | st.dictionaries(st.text(max_size=5), kids, max_size=3), max_leaves=8)


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report") / "run"
    assert main(["run", f"hw={TINY_PATH}", *JSON_RUN[:-1], "format=json,csv",
                 f"out={out}"]) == 0
    return out


@SMALL
@given(case=st.sampled_from(["deep", "doc", "fifo", "dir", "bytes", "csv", "schema_only"]),
       depth=st.integers(1, 200_000), doc=JSON_DOC, junk=st.binary(max_size=40))
def test_fuzz_report_inputs(case: str, depth: int, doc, junk: bytes, run_folder: Path,
                            capsys) -> None:
    """fxpsim report: any summary.json/layers.csv (deeply nested, a FIFO, junk) re-renders
    or gives one error line, and never hangs."""
    import shutil
    import threading

    with workdir() as root:
        folder = root / "run"
        shutil.copytree(run_folder, folder)
        summary, layers = folder / "summary.json", folder / "layers.csv"
        if case == "deep":
            summary.write_text("[" * depth + "]" * depth)
        elif case == "doc":
            summary.write_text(json.dumps(doc))
        elif case == "schema_only":
            summary.write_text(json.dumps({"schema": "fxpsim.summary/1", "x": doc}))
        elif case == "fifo":
            summary.unlink()
            os.mkfifo(summary)
        elif case == "dir":
            layers.unlink()
            layers.mkdir()
        elif case == "bytes":
            summary.write_bytes(junk)
        else:
            layers.write_text(layers.read_text() + "a," + "x" * 140_000 + "\n")
        result: list[int] = []
        t = threading.Thread(target=lambda: result.append(main(["report", str(folder)])),
                             daemon=True)
        t.start()
        t.join(60)
        assert not t.is_alive(), f"fxpsim report hung on {case}"
        err = capsys.readouterr().err
        assert "Traceback" not in err
        assert result[0] in (0, 2) and (result[0] == 0 or err.count("\n") == 1), err


RAISES = ["SystemExit(0)", "SystemExit(3)", "SystemExit('msg')", "KeyboardInterrupt",
          "GeneratorExit", "BaseException('b')", "ValueError('v' * 100000)",
          "RecursionError", "MemoryError"]


@SMALL
@given(where=st.sampled_from(["import", "init", "forward"]), what=st.sampled_from(RAISES),
       noise=st.booleans())
def test_fuzz_user_model_code(where: str, what: str, noise: bool, capsys) -> None:
    """User model files: whatever the code raises, wherever, one line naming the file."""
    say = "import sys; print('noise ' * 50, file=sys.stderr)\n" if noise else ""
    body = f"{say}raise {what}"
    pad = "        "
    src = (f"{body if where == 'import' else ''}\n"
           "import torch.nn as nn\n"
           "class Net(nn.Module):\n"
           "    input_shape = (1, 8, 8)\n"
           "    def __init__(self):\n"
           "        super().__init__()\n"
           f"{pad + body.replace(chr(10), chr(10) + pad) if where == 'init' else ''}\n"
           "        self.f = nn.Flatten()\n"
           "        self.l = nn.Linear(64, 10)\n"
           "    def forward(self, x):\n"
           "        y = self.l(self.f(x))\n"
           "        if y.sum() > -1e30:\n"
           f"{pad}    {'raise ' + what if where == 'forward' else 'pass'}\n"
           "        return y\n")
    with workdir() as root:
        (root / "m.py").write_text(src)
        out = root / "run"
        check(["run", f"model={root / 'm.py'}:Net", "hw=tiny", "phase=infer", "format=json",
               f"out={out}"], capsys, root, out, None)


@SMALL
@given(key=st.sampled_from(HW_KEYS + RUN_KEYS + ["out", "data_dir", "laq.rounds"]),
       value=st.sampled_from(["", " ", "\t", os.fsdecode(b"\xff\xfe"), "x" * 500_000]))
def test_fuzz_empty_non_utf8_and_huge_values(key: str, value: str, capsys) -> None:
    """Empty values, bytes that are not UTF-8 and 500 KB values: one short line naming the
    key."""
    with workdir() as root:
        rc = main(["run", f"{key}={value}"])
        err = capsys.readouterr().err
        assert rc == 2 and err.count("\n") == 1 and len(err) < 1300, err[:300]
        assert f": {key}:" in err or key in err, err[:300]
        assert os.listdir(root) == []


@SMALL
@given(w=st.integers(2, 16), a=st.integers(2, 16), g=st.integers(2, 16),
       phase=st.sampled_from(["infer", "train"]))
def test_fuzz_bits_blame_the_option(w: int, a: int, g: int, phase: str, capsys) -> None:
    """Errors that blame the wrong thing: a missing energy price names the bits option."""
    with workdir() as root:
        out = root / "run"
        rc = main(["run", "hw=tiny", "model=lenet5", f"phase={phase}", "batch=1", "steps=0",
                   "format=json", f"w_bits={w}", f"a_bits={a}", f"g_bits={g}", f"out={out}"])
        err = capsys.readouterr().err
        assert "Traceback" not in err
        if rc == 2:
            assert err.count("\n") == 1 and "(command line) needs" in err, err
            bits = re.search(r"energy\.\w+\.int(\d+)", err)
            blamed = re.findall(r"([wag])_bits=(\d+)", err)
            assert bits and blamed and all(int(v) <= int(bits.group(1)) for _, v in blamed)
            assert not out.exists()
        else:
            assert rc == 0 and (out / "summary.json").is_file()


@SMALL
@given(rows=st.sampled_from([1, 2, 16, 255, 1024, 4096]),
       cols=st.sampled_from([1, 3, 16, 512, 4096]), acc=st.sampled_from([1, 16, 32, 64]))
def test_fuzz_big_arrays_fit_or_are_refused_up_front(rows: int, cols: int, acc: int,
                                                    capsys) -> None:
    """Big-but-valid configs: they run, or the schema names the psum buffer and what fits."""
    with workdir() as root:
        out = root / "run"
        rc = check(["run", "hw=edge_npu", "model=lenet5", "phase=infer", "batch=1",
                    "format=json", f"mac_array.rows={rows}", f"mac_array.cols={cols}",
                    f"memory.acc_sram.size_kib={acc}", f"out={out}"], capsys, root, out, None)
        fits = (acc * 1024 // 2) * 8 >= max(rows, cols) * 32
        assert rc == (0 if fits else 2)


@FEW
@given(n=st.integers(61, 200))
def test_fuzz_big_topologies_print_bounded_tables(n: int, capsys) -> None:
    """Scale: the terminal table stays bounded, every layer is in layers.csv (the HTML
    charts' bound is tested in test_robust.py: drawing is slow)."""
    with workdir() as root:
        topo = root / "t.csv"
        topo.write_text("Layer, M, N, K\n" + "".join(f"L{i}, {1 + i % 9}, 8, {4 + i % 5}\n"
                                                     for i in range(n)))
        out = root / "run"
        assert main(["run", f"model={topo}", "hw=tiny", "phase=infer", "format=csv",
                     f"out={out}"]) == 0
        printed = capsys.readouterr().out
        assert sum(line.startswith("│ L") for line in printed.splitlines()) == 60
        assert len((out / "layers.csv").read_text().splitlines()) == n + 1


# ---- processes: signals and stdout (few examples: each is a real process) ------------------
@FEW
@given(sig=st.sampled_from([signal.SIGINT, signal.SIGTERM, signal.SIGHUP]),
       delay=st.floats(0.3, 6.0))
def test_fuzz_signals_at_any_moment(sig: signal.Signals, delay: float) -> None:
    """Signals: exit 0 (finished first) or 128+N with one line; the report folder is
    complete or absent, nothing left beside it."""
    import subprocess
    import sys
    import time

    with workdir() as root:
        proc = subprocess.Popen([sys.executable, "-m", "fxpsim", "run", "hw=edge_npu",
                                 "model=vgg16", "phase=infer", "out=run"], cwd=root,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        time.sleep(delay)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=180)
        assert "Traceback" not in err and err.count("\n") <= 1, err
        assert proc.returncode in (0, 128 + sig), (proc.returncode, err)
        if proc.returncode == 0 or "after the report was written" in err:
            assert os.listdir(root) == ["run"] and len(os.listdir(root / "run")) == 5
        else:
            assert os.listdir(root) == [] and err.startswith("fxpsim: interrupted"), err


@FEW
@given(command=st.sampled_from([["run", "hw=tiny", *JSON_RUN, "out=r"], ["list"], ["--help"],
                                ["compare", "hw=tiny", *JSON_RUN[:-1], "w_bits=4,8",
                                 "format=json", "out=r"]]),
       how=st.sampled_from(["full", "closed"]))
def test_fuzz_broken_stdout(command: list[str], how: str) -> None:
    """stdout on /dev/full or a closed pipe: exit 0, nothing on stderr, reports written."""
    import subprocess
    import sys

    with workdir() as root:
        full = open("/dev/full", "w")  # noqa: SIM115
        try:
            proc = subprocess.Popen([sys.executable, "-m", "fxpsim", *command], cwd=root,
                                    stdout=full if how == "full" else subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)
            if proc.stdout is not None:
                proc.stdout.close()
            err = proc.stderr.read() if proc.stderr else ""
            rc = proc.wait(180)
        finally:
            full.close()
        assert rc == 0 and err == "", (rc, err)
        if "out=r" in command:
            assert len(os.listdir(root / "r")) >= 1
