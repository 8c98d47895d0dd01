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
import os
import re
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
