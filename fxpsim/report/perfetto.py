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

Output is deterministic: events in schedule order, keys sorted, no timestamps.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from fxpsim.report import strict_json
from fxpsim.timing.trace import TRACKS, TraceEvent

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


def trace_events(events: Sequence[TraceEvent], freq_mhz: float,
                 title: str = "accelerator") -> list[dict[str, object]]:
    """The ``traceEvents`` list (metadata first, then slices track by track)."""
    rows: list[tuple[str, str, int, int, dict[str, object]]] = []  # (thread, name, s, e, args)
    extra = sorted({e.track for e in events} - set(TRACKS))
    for track in (*TRACKS, *extra):
        for e in sorted((e for e in events if e.track == track), key=lambda e: e.start):
            rows.append((track, f"{e.layer} {e.pass_name}: {e.name}", e.start, e.end,
                         {"layer": e.layer, "pass": e.pass_name, "work": e.name}))
    ordered = sorted(events, key=lambda e: (e.start, e.end))
    for k, s, t in _spans(ordered, lambda e: e.pass_name):
        rows.append(("pass", str(k), s, t, {"pass": k}))
    for (layer, pass_name), s, t in _spans(ordered, lambda e: (e.layer, e.pass_name)):
        rows.append(("layer", f"{layer} {pass_name}", s, t, {"layer": layer, "pass": pass_name}))

    # threads: each base track, split into lanes where slices overlap
    thread_ids: dict[str, int] = {}
    slices: list[dict[str, object]] = []
    for base in dict.fromkeys(r[0] for r in rows):
        mine = [r for r in rows if r[0] == base]
        lanes = _assign_lanes([(r[2], r[3]) for r in mine])
        for (_, name, s, t, args), lane in zip(mine, lanes, strict=True):
            thread = base if lane == 0 else f"{base} #{lane + 1}"
            tid = thread_ids.setdefault(thread, len(thread_ids) + 1)
            slices.append({
                "ph": "X", "pid": PID, "tid": tid, "name": name,
                "cat": str(args.get("pass", base)),
                "ts": cycles_to_us(s, freq_mhz), "dur": cycles_to_us(t - s, freq_mhz),
                "args": {**args, "start_cycle": s, "end_cycle": t, "cycles": t - s},
            })
    meta: list[dict[str, object]] = [
        {"ph": "M", "pid": PID, "tid": 0, "name": "process_name", "args": {"name": title}},
        {"ph": "M", "pid": PID, "tid": 0, "name": "process_sort_index", "args": {"sort_index": 0}},
    ]
    for thread, tid in thread_ids.items():
        meta.append({"ph": "M", "pid": PID, "tid": tid, "name": "thread_name",
                     "args": {"name": thread}})
        meta.append({"ph": "M", "pid": PID, "tid": tid, "name": "thread_sort_index",
                     "args": {"sort_index": tid}})
    return meta + slices


def trace_json(events: Sequence[TraceEvent], freq_mhz: float, *, run_name: str = "",
               title: str = "accelerator") -> str:
    """The whole ``trace.json`` document (a JSON object, deterministic bytes)."""
    doc = {
        "traceEvents": trace_events(events, freq_mhz, title),
        "displayTimeUnit": "ns",
        "otherData": {"schema": TRACE_SCHEMA, "run": run_name, "freq_mhz": freq_mhz,
                      "time_unit": "ts/dur in microseconds = cycles / freq_mhz"},
    }
    return strict_json.dumps(doc, "trace.json", sort_keys=True, separators=(",", ":")) + "\n"
