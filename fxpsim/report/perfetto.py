"""``trace.json``: the schedule timeline in Chrome trace-event format (ui.perfetto.dev,
chrome://tracing).

Layout: one process ``accelerator`` (pid 1); one thread per hardware track of
:data:`fxpsim.timing.trace.TRACKS` (``dma``, ``mac_array``, ``requantizer``,
``vector_unit``) whose slices are the schedule's tiles or tile groups; then two summary
threads, ``pass`` (one slice per pass) and ``layer`` (one slice per layer x pass, spanning
its first to its last event). Slices are ``"X"`` (complete) events; threads and the process
are named by ``"M"`` metadata events.

Time unit: the trace-event format counts ``ts``/``dur`` in microseconds, so a cycle ``c`` is
written as ``c / freq_mhz`` us, rounded to 1e-6 us (1 ps). ``displayTimeUnit`` is ``"ns"``,
so the UI shows nanoseconds. The exact cycle numbers are kept in each slice's ``args``
(``start_cycle``, ``end_cycle``, ``cycles``). Slices that would overlap on one thread (not
expected on a hardware track: each is one resource) go to an extra lane ``<track> #2`` so
the viewer never has to nest slices that do not nest.

With the overlapped schedule (the default) the engine threads also carry **stall slices**
(``cat`` ``stall``, named by what the engine waited for: ``wait_input``, ``wait_dram``,
``wait_buffer``, ``wait_engine``, ``preempted``, ``idle``) between their work slices, so
work / elapsed per engine can be read off the timeline; **counter tracks** (``"C"`` events)
give the DRAM bandwidth in use (percent of the configured bandwidth) and each buffer's
occupancy (bytes); **flow arrows** (``"s"``/``"f"`` events, ``cat`` ``dataflow``) go from
each producer op's last work slice to its consumer's first.

Output is deterministic: events in schedule order, keys sorted, no timestamps.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Sequence
from json.encoder import encode_basestring_ascii as _str

from fxpsim.report import strict_json
from fxpsim.timing.trace import TRACKS, Counter, TraceEvent

PID = 1
TRACE_SCHEMA = "fxpsim.trace/1"


def cycles_to_us(cycles: int, freq_mhz: float) -> float:
    """Cycles at ``freq_mhz`` as microseconds, rounded to 1e-6 us."""
    return round(cycles / freq_mhz, 6)


def _assign_lanes(spans: Sequence[tuple[int, int]]) -> list[int]:
    """Greedy interval partitioning: a lane index per span so that no lane overlaps."""
    lane_end: list[int] = []
    lanes: list[int] = []
    for start, end in spans:
        for i, last in enumerate(lane_end):
            if start >= last:
                lane_end[i] = end
                lanes.append(i)
                break
        else:
            lane_end.append(end)
            lanes.append(len(lane_end) - 1)
    return lanes


def _spans(events: Iterable[TraceEvent], key) -> list[tuple[object, int, int]]:
    """(key, first start, last end) per distinct ``key(event)``, in first-seen order."""
    out: dict[object, list[int]] = {}
    for e in events:
        k = key(e)
        if k in out:
            out[k][0] = min(out[k][0], e.start)
            out[k][1] = max(out[k][1], e.end)
        else:
            out[k] = [e.start, e.end]
    return [(k, s, t) for k, (s, t) in out.items()]


#: one slice before it becomes JSON: (tid, name, start cycle, end cycle, layer, pass, work);
#: ``layer``/``work`` are None on the summary threads
_Row = tuple[int, str, int, int, "str | None", str, "str | None"]
_Pre = tuple[str, int, int, "str | None", str, "str | None"]


def _slice_rows(events: Sequence[TraceEvent]) -> tuple[dict[str, int], list[_Row]]:
    """Thread ids (by name, in first-use order) and the slices, track by track."""
    by_track: dict[str, list[TraceEvent]] = {}
    for e in events:  # one pass (filtering the events once per track would scan them 4x)
        by_track.setdefault(e.track, []).append(e)
    grouped: dict[str, list[_Pre]] = {}
    for track in (*TRACKS, *sorted(set(by_track) - set(TRACKS))):
        mine = sorted(by_track.get(track, ()), key=lambda e: e.start)
        if mine:
            grouped[track] = [(f"{e.name}" if e.stall else f"{e.layer} {e.pass_name}: {e.name}",
                               e.start, e.end, e.layer, "stall" if e.stall else e.pass_name,
                               e.name) for e in mine]
    ordered = sorted((e for e in events if not e.stall), key=lambda e: (e.start, e.end))
    passes: list[_Pre] = [(str(k), s, t, None, str(k), None)
                          for k, s, t in _spans(ordered, lambda e: e.pass_name)]
    if passes:
        grouped["pass"] = passes
    layers: list[_Pre] = []
    for key, s, t in _spans(ordered, lambda e: (e.layer, e.pass_name)):
        lay, pas = str(key[0]), str(key[1])  # type: ignore[index]  # the (layer, pass) key
        layers.append((f"{lay} {pas}", s, t, lay, pas, None))
    if layers:
        grouped["layer"] = layers
    # threads: each base track, split into lanes where slices overlap
    thread_ids: dict[str, int] = {}
    rows: list[_Row] = []
    for base, mine_rows in grouped.items():
        lanes = _assign_lanes([(r[1], r[2]) for r in mine_rows])
        for row, lane in zip(mine_rows, lanes, strict=True):
            thread = base if lane == 0 else f"{base} #{lane + 1}"
            tid = thread_ids.setdefault(thread, len(thread_ids) + 1)
            rows.append((tid, *row))
    return thread_ids, rows


def _meta(thread_ids: dict[str, int], title: str) -> list[dict[str, object]]:
    meta: list[dict[str, object]] = [
        {"ph": "M", "pid": PID, "tid": 0, "name": "process_name", "args": {"name": title}},
        {"ph": "M", "pid": PID, "tid": 0, "name": "process_sort_index", "args": {"sort_index": 0}},
    ]
    for thread, tid in thread_ids.items():
        meta.append({"ph": "M", "pid": PID, "tid": tid, "name": "thread_name",
                     "args": {"name": thread}})
        meta.append({"ph": "M", "pid": PID, "tid": tid, "name": "thread_sort_index",
                     "args": {"sort_index": tid}})
    return meta


def _slice(row: _Row, freq_mhz: float) -> dict[str, object]:
    tid, name, s, t, layer, pass_name, work = row
    args: dict[str, object] = {} if layer is None else {"layer": layer}
    args["pass"] = pass_name
    if work is not None:
        args["work"] = work
    return {"ph": "X", "pid": PID, "tid": tid, "name": name, "cat": pass_name,
            "ts": cycles_to_us(s, freq_mhz), "dur": cycles_to_us(t - s, freq_mhz),
            "args": {**args, "start_cycle": s, "end_cycle": t, "cycles": t - s}}


def trace_events(events: Sequence[TraceEvent], freq_mhz: float,
                 title: str = "accelerator") -> list[dict[str, object]]:
    """The ``traceEvents`` list (metadata first, then slices track by track)."""
    thread_ids, rows = _slice_rows(events)
    return _meta(thread_ids, title) + [_slice(r, freq_mhz) for r in rows]


def _slice_text(row: _Row, freq_mhz: float) -> str:
    """``json.dumps(_slice(row), sort_keys=True, separators=(",", ":"))``, written out
    directly (keys in sorted order): a 10,000-layer trace has 300,000 slices, and a dict per
    slice encoded generically cost most of the report's time. A test compares the two."""
    tid, name, s, t, layer, pass_name, work = row
    ts, dur = cycles_to_us(s, freq_mhz), cycles_to_us(t - s, freq_mhz)
    if not (math.isfinite(ts) and math.isfinite(dur)):
        raise ValueError(ts)  # as json.dumps(allow_nan=False) would
    p = _str(pass_name)
    lay = "" if layer is None else f'"layer":{_str(layer)},'
    wrk = "" if work is None else f',"work":{_str(work)}'
    return (f'{{"args":{{"cycles":{t - s},"end_cycle":{t},{lay}"pass":{p},'
            f'"start_cycle":{s}{wrk}}},"cat":{p},"dur":{dur!r},"name":{_str(name)},'
            f'"ph":"X","pid":{PID},"tid":{tid},"ts":{ts!r}}}')


def counter_events(counters: Sequence[Counter], freq_mhz: float) -> list[dict[str, object]]:
    """``"C"`` events: one per counter and cycle (the last value set at that cycle)."""
    last: dict[tuple[str, int], int] = {}
    for c in counters:
        last[(c.name, c.at)] = c.value
    unit = {True: "percent", False: "bytes"}
    return [{"ph": "C", "pid": PID, "name": name, "ts": cycles_to_us(at, freq_mhz),
             "args": {unit[name.startswith("dram")]: value}}
            for (name, at), value in sorted(last.items(), key=lambda kv: (kv[0][1], kv[0][0]))]


def _counter_text(c: dict[str, object]) -> str:
    """``json.dumps(c, sort_keys=True, separators=(",", ":"))`` of a counter event, written
    out directly (a 10,000-layer trace has 50,000 of them)."""
    (unit, value), = c["args"].items()  # type: ignore[attr-defined]
    ts = c["ts"]
    if not math.isfinite(ts):  # type: ignore[arg-type]
        raise ValueError(ts)
    return (f'{{"args":{{"{unit}":{value}}},"name":{_str(str(c["name"]))},"ph":"C",'
            f'"pid":{PID},"ts":{ts!r}}}')


def flow_events(events: Sequence[TraceEvent], flows: Sequence[tuple[int, int]],
                thread_ids: dict[str, int], freq_mhz: float) -> list[dict[str, object]]:
    """Flow arrows producer -> consumer: from the producer's last work slice (bound at its
    start) to the consumer's first (``bp: e``: bound to the slice it lands in)."""
    first: dict[int, TraceEvent] = {}
    last: dict[int, TraceEvent] = {}
    for e in events:
        if e.stall or e.op < 0 or e.track not in ("mac_array", "vector_unit"):
            continue
        if e.op not in first or e.start < first[e.op].start:
            first[e.op] = e
        if e.op not in last or e.start > last[e.op].start:
            last[e.op] = e
    out: list[dict[str, object]] = []
    for k, (src, dst) in enumerate(flows):
        a, b = last.get(src), first.get(dst)
        if a is None or b is None or a.track not in thread_ids or b.track not in thread_ids:
            continue
        common = {"pid": PID, "cat": "dataflow", "name": f"{a.layer} -> {b.layer}", "id": k + 1}
        out.append({"ph": "s", "tid": thread_ids[a.track],
                    "ts": cycles_to_us(a.start, freq_mhz), **common})
        out.append({"ph": "f", "bp": "e", "tid": thread_ids[b.track],
                    "ts": cycles_to_us(b.start, freq_mhz), **common})
    return out


def trace_json(events: Sequence[TraceEvent], freq_mhz: float, *, run_name: str = "",
               title: str = "accelerator", counters: Sequence[Counter] = (),
               flows: Sequence[tuple[int, int]] = ()) -> str:
    """The whole ``trace.json`` document (a JSON object, deterministic bytes): exactly
    ``json.dumps({"traceEvents": trace_events(...) + counters + flows, ...},
    sort_keys=True, separators=(",", ":"))``."""
    thread_ids, rows = _slice_rows(events)
    other = {"schema": TRACE_SCHEMA, "run": run_name, "freq_mhz": freq_mhz,
             "time_unit": "ts/dur in microseconds = cycles / freq_mhz"}
    dump = functools.partial(strict_json.dumps, file_name="trace.json", sort_keys=True,
                             separators=(",", ":"))
    try:
        texts = [dump(m) for m in _meta(thread_ids, title)]
        texts += [_slice_text(r, freq_mhz) for r in rows]
        texts += [_counter_text(c) for c in counter_events(counters, freq_mhz)]
        texts += [dump(f) for f in flow_events(events, flows, thread_ids, freq_mhz)]
    except ValueError:  # a non-finite time: name it like every other report
        dump(trace_events(events, freq_mhz, title))
        raise
    return (f'{{"displayTimeUnit":"ns","otherData":{dump(other)},"traceEvents":['
            + ",".join(texts) + "]}\n")
