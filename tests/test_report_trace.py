"""``trace.json``: Chrome/Perfetto trace-event JSON of the schedule timeline.

Checks the document shape Perfetto needs (a JSON object with ``traceEvents``, ``"X"`` slices
with numeric ``ts``/``dur``, ``"M"`` thread names), that the slices are the simulator's own
events (cycles exact, hand-checked time conversion), that no thread has overlapping slices,
and that the whole timeline spans exactly the step's cycle count.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest

from fxpsim.cli import main
from fxpsim.report.perfetto import cycles_to_us, trace_events, trace_json
from fxpsim.timing.trace import TRACKS, TraceEvent

REPO = Path(__file__).resolve().parents[1]
ARGS = ["hw=tiny", "model=lenet5", "phase=train", "batch=2", "steps=0"]


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("trace") / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(REPO)
        assert main(["run", *ARGS, "format=json,trace", f"out={out}"]) == 0
    return out


def _threads(doc: dict) -> dict[int, str]:
    return {e["tid"]: e["args"]["name"] for e in doc["traceEvents"]
            if e["ph"] == "M" and e["name"] == "thread_name"}


def test_document_shape_perfetto_accepts(run_folder: Path) -> None:
    assert sorted(p.name for p in run_folder.iterdir()) == ["summary.json", "trace.json"]
    doc = json.loads((run_folder / "trace.json").read_text())
    assert isinstance(doc, dict) and doc["displayTimeUnit"] == "ns"
    events = doc["traceEvents"]
    procs = [e for e in events if e["ph"] == "M" and e["name"] == "process_name"]
    assert procs == [{"ph": "M", "pid": 1, "tid": 0, "name": "process_name",
                      "args": {"name": "accelerator"}}]
    names = set(_threads(doc).values())
    assert {"dma_read", "dma_write", "mac_array", "requantizer", "vector_unit", "pass",
            "layer"} <= names
    for e in events:
        assert e["ph"] in ("M", "X", "C", "s", "f") and e["pid"] == 1
        if e["ph"] == "X":
            assert isinstance(e["ts"], int | float) and isinstance(e["dur"], int | float)
            assert e["dur"] >= 0 and e["ts"] >= 0 and e["name"]
            a = e["args"]
            assert a["cycles"] == a["end_cycle"] - a["start_cycle"]
            # tiny runs at 1000 MHz: 1 cycle = 0.001 us
            assert e["ts"] == round(a["start_cycle"] / 1000, 6)


def test_slices_are_the_schedule_and_span_the_step(run_folder: Path) -> None:
    """Overlapped (default): engine threads hold work and stall slices that never overlap,
    work slices add up to each engine's work in summary.json, the timeline ends at the
    step's cycles; counters and flow arrows are there."""
    doc = json.loads((run_folder / "trace.json").read_text())
    summary = json.loads((run_folder / "summary.json").read_text())
    total = summary["totals"]["cycles"]
    threads = _threads(doc)
    work: dict[str, int] = defaultdict(int)
    stalls: set[str] = set()
    ends = []
    for e in doc["traceEvents"]:
        if e["ph"] != "X":
            continue
        name, a = threads[e["tid"]], e["args"]
        ends.append(a["end_cycle"])
        if e["cat"] == "stall":
            stalls.add(e["name"])
            assert name in ("mac_array", "vector_unit")
        elif name in summary["schedule"]["engine_work_cycles"]:
            work[name] += a["cycles"]
    want = summary["schedule"]["engine_work_cycles"]
    # dma_read also counts each stream's first-request latency, which is a slice too
    assert {k: v for k, v in work.items()} == {k: v for k, v in want.items() if v}
    assert max(ends) == total and stalls <= {"wait_input", "wait_dram", "wait_buffer",
                                             "wait_engine", "preempted", "idle",
                                             "wait_sram", "wait_requant", "weight_load",
                                             "fill_drain"}
    assert "wait_input" in stalls
    for name, slices in _engine_slices(doc).items():
        spans = sorted(slices)
        for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
            assert start >= end, f"overlap on {name}"
    kinds = {e["ph"] for e in doc["traceEvents"]}
    assert {"C", "s", "f"} <= kinds
    counters = {e["name"] for e in doc["traceEvents"] if e["ph"] == "C"}
    assert counters == {"dram_bw_in_use", "buffer global_sram"}
    starts = sorted(e["id"] for e in doc["traceEvents"] if e["ph"] == "s")
    assert starts == sorted(e["id"] for e in doc["traceEvents"] if e["ph"] == "f")


def _engine_slices(doc: dict) -> dict[str, list[tuple[int, int]]]:
    threads = _threads(doc)
    out: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for e in doc["traceEvents"]:
        if e["ph"] == "X" and threads[e["tid"]] not in ("pass", "layer") \
                and " #" not in threads[e["tid"]]:
            out[threads[e["tid"]]].append((e["args"]["start_cycle"], e["args"]["end_cycle"]))
    return out


def test_sequential_slices_run_back_to_back(tmp_path: Path) -> None:
    out = tmp_path / "seq"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(REPO)
        assert main(["run", *ARGS, "schedule=sequential", "format=json,trace",
                     f"out={out}"]) == 0
    doc = json.loads((out / "trace.json").read_text())
    total = json.loads((out / "summary.json").read_text())["totals"]["cycles"]
    threads = _threads(doc)
    by_thread: dict[str, list[dict]] = defaultdict(list)
    for e in doc["traceEvents"]:
        if e["ph"] == "X":
            by_thread[threads[e["tid"]]].append(e["args"])
    for name, slices in by_thread.items():
        spans = sorted((a["start_cycle"], a["end_cycle"]) for a in slices)
        for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
            assert start >= end, f"overlap on {name}"
    # passes run back to back from cycle 0 to the step's last cycle
    passes = sorted((a["start_cycle"], a["end_cycle"]) for a in by_thread["pass"])
    assert passes[0][0] == 0 and passes[-1][1] == total
    assert all(a[1] == b[0] for a, b in zip(passes, passes[1:], strict=False))
    # every layer x pass slice lies inside its pass
    pass_span = {a["pass"]: (a["start_cycle"], a["end_cycle"]) for a in by_thread["pass"]}
    for a in by_thread["layer"]:
        lo, hi = pass_span[a["pass"]]
        assert lo <= a["start_cycle"] <= a["end_cycle"] <= hi


def test_hand_built_events_lanes_and_units() -> None:
    ev = [
        TraceEvent("dma", "tile", 0, 800, "conv1", "forward"),
        TraceEvent("dma", "tile", 400, 1200, "conv1", "forward"),  # overlaps: second lane
        TraceEvent("mac_array", "2 tiles", 800, 2400, "conv1", "forward"),
    ]
    out = trace_events(ev, 800.0)
    threads = {e["tid"]: e["args"]["name"] for e in out if e.get("name") == "thread_name"}
    assert [threads[t] for t in sorted(threads)] == ["dma", "dma #2", "mac_array", "pass",
                                                     "layer"]
    x = [e for e in out if e["ph"] == "X"]
    dma = [e for e in x if threads[e["tid"]].startswith("dma")]
    assert [(e["ts"], e["dur"]) for e in dma] == [(0.0, 1.0), (0.5, 1.0)]
    assert {threads[e["tid"]] for e in dma} == {"dma", "dma #2"}
    (layer,) = [e for e in x if threads[e["tid"]] == "layer"]
    assert (layer["args"]["start_cycle"], layer["args"]["end_cycle"]) == (0, 2400)
    assert layer["ts"] == 0.0 and layer["dur"] == 3.0
    assert cycles_to_us(1, 3.0) == 0.333333 and cycles_to_us(7, 1000.0) == 0.007
    assert set(TRACKS) == {"dma", "dma_read", "dma_write", "mac_array", "requantizer",
                           "vector_unit"}


def test_trace_bytes_are_deterministic() -> None:
    ev = [TraceEvent("vector_unit", "relu", 5, 9, "relu1", "forward"),
          TraceEvent("mac_array", "tile", 0, 5, "conv1", "forward")]
    a = trace_json(ev, 1000.0, run_name="r")
    assert a == trace_json(list(ev), 1000.0, run_name="r")
    assert json.loads(a)["otherData"]["run"] == "r"


def test_counters_stalls_and_flows_hand_built() -> None:
    """Two ops at 1000 MHz: a stall slice keeps its cause as name and ``stall`` as cat; a
    counter set twice at one cycle keeps the last value; the flow starts on the producer's
    slice and ends (bound to the enclosing slice) on the consumer's."""
    from fxpsim.timing.trace import Counter

    ev = [TraceEvent("mac_array", "wait_dram", 0, 15, "l1", "forward", 0, stall=True),
          TraceEvent("mac_array", "tiles", 15, 213, "l1", "forward", 0),
          TraceEvent("vector_unit", "vector", 213, 245, "relu", "forward", 1)]
    counters = [Counter("dram_bw_in_use", 0, 100), Counter("dram_bw_in_use", 106, 0),
                Counter("dram_bw_in_use", 106, 100), Counter("buffer sram", 0, 304)]
    doc = json.loads(trace_json(ev, 1000.0, counters=counters, flows=[(0, 1)]))
    threads = _threads(doc)
    x = [(threads[e["tid"]], e["name"], e["cat"]) for e in doc["traceEvents"] if e["ph"] == "X"
         and threads[e["tid"]] in ("mac_array", "vector_unit")]
    assert x == [("mac_array", "wait_dram", "stall"), ("mac_array", "l1 forward: tiles", "forward"),
                 ("vector_unit", "relu forward: vector", "forward")]
    c = [(e["name"], e["ts"], e["args"]) for e in doc["traceEvents"] if e["ph"] == "C"]
    assert c == [("buffer sram", 0.0, {"bytes": 304}), ("dram_bw_in_use", 0.0, {"percent": 100}),
                 ("dram_bw_in_use", 0.106, {"percent": 100})]
    s, f = [e for e in doc["traceEvents"] if e["ph"] in "sf"]
    assert (s["ph"], threads[s["tid"]], s["ts"], s["id"]) == ("s", "mac_array", 0.015, 1)
    assert (f["ph"], threads[f["tid"]], f["ts"], f["bp"]) == ("f", "vector_unit", 0.213, "e")
    # the pass/layer summaries leave stalls out
    layers = [e["args"] for e in doc["traceEvents"] if e["ph"] == "X"
              and threads[e["tid"]] == "layer"]
    assert [(a["layer"], a["start_cycle"]) for a in layers] == [("l1", 15), ("relu", 213)]


def test_counter_text_is_json_dumps() -> None:
    from fxpsim.report.perfetto import _counter_text, counter_events
    from fxpsim.timing.trace import Counter

    cs = counter_events([Counter("buffer a\"b", 3, 7), Counter("dram_bw_in_use", 5, 100)], 3.0)
    assert [_counter_text(c) for c in cs] == [
        json.dumps(c, sort_keys=True, separators=(",", ":")) for c in cs]
