"""Documents rendered from a run's data files, and ``fxpsim report <folder>``.

``report.md`` and ``report.html`` are functions of ``summary.json`` and ``layers.csv`` only
(:func:`render_documents`). ``fxpsim run`` renders them from the texts it is about to write,
and ``fxpsim report`` from the files in a run folder, so both give the same bytes and a
re-render never re-simulates. ``trace.json`` needs the schedule's events, so a re-render
keeps the one in the folder.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from fxpsim.errors import FxpsimError

#: document format -> file name (the data files summary.json / layers.csv are inputs)
DOCUMENTS: dict[str, str] = {"md": "report.md", "html": "report.html"}


def parse_layers_csv(text: str) -> list[dict[str, str]]:
    """``layers.csv`` rows; a malformed file (a field over the csv module's limit, a NUL)
    raises ValueError like any other schema mismatch."""
    try:
        return list(csv.DictReader(io.StringIO(text)))
    except csv.Error as exc:
        raise ValueError(f"layers.csv: {exc}") from None


def _md_table(header: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _schedule_lines(s: Mapping[str, Any]) -> list[str]:
    """The schedule under the totals: what overlap saved, each engine's utilisation
    (summaries written before the overlapped schedule have none)."""
    sc = s.get("schedule")
    if not sc:
        return []
    util = ", ".join(f"{k} {v:.0%}" for k, v in sc["utilization"].items())
    seq = sc["sequential_cycles"]
    saved = f"{sc['overlap_saved_cycles'] / seq:.1%}" if seq else "0.0%"
    return ["", f"Schedule `{sc['mode']}`: {sc['cycles']:,} cycles, {saved} less than "
                f"{seq:,} one op at a time; engine utilisation (work / elapsed): {util}."]


def report_md(s: Mapping[str, Any], rows: Sequence[Mapping[str, str]]) -> str:
    """``report.md``: run description, totals, per pass, energy by component, per layer;
    an accuracy section when the run trained (``summary["accuracy"]``)."""
    from fxpsim.report.html import area_rows, layer_pass_sums, pass_names

    hw, model, run, t = s["hw"], s["model"], s["run"], s["totals"]
    parts = [
        f"# fxpsim run `{s['name']}`",
        "",
        f"- accelerator: **{hw['name']}** ({hw['source']}), {hw['array']}, "
        f"{hw['freq_mhz']:g} MHz, config digest `{hw['digest'][:16]}`",
        f"- model: **{model['name']}** ({model['source']}),"
        f" {model['macs_per_sample']:,} MACs/sample, {model['params']:,} parameters",
        f"- step: phase `{run['phase']}`, algo `{run['algo']}`, batch {run['batch']},"
        f" W/A/G bits {run['w_bits']}/{run['a_bits']}/{run['g_bits']}, timing `{run['timing']}`",
        f"- energy table: {hw['energy_table']}",
        *[f"- note: {n}" for n in s.get("notes", [])],
        *[f"- **warning**: {w}" for w in s.get("warnings", [])],
        "",
        "## Totals",
        "",
        _md_table(
            ["cycles", "time (ms)", "energy (uJ)", "MACs", "DRAM bytes", "stall cycles", "bound"],
            [[f"{t['cycles']:,}", f"{t['seconds'] * 1e3:.4f}", f"{t['energy_pj'] / 1e6:.3f}",
              f"{t['macs']:,}", f"{t['dram_bytes']:,}", f"{t['stall_cycles']:,}", t["bound"]]],
        ),
        *_schedule_lines(s),
        "",
        "## Per pass",
        "",
        _md_table(
            ["pass", "cycles", "energy (uJ)", "MACs", "DRAM bytes", "stall cycles"],
            [[p, f"{m['cycles']:,}", f"{m['energy_pj'] / 1e6:.3f}", f"{m['macs']:,}",
              f"{m['dram_bytes']:,}", f"{m['stall_cycles']:,}"]
             for p, m in ((p, s["per_pass"][p]) for p in pass_names(s))],
        ),
        "",
        "## Energy by component",
        "",
        _md_table(
            ["component", "energy (uJ)", "share"],
            [[k, f"{v / 1e6:.3f}", f"{v / t['energy_pj']:.1%}" if t["energy_pj"] else "-"]
             for k, v in sorted(t["energy_by_component"].items(), key=lambda kv: -kv[1])],
        ),
        "",
    ]
    area = s.get("area")
    if isinstance(area, Mapping):
        parts += ["## Area by component", "", f"area table: {area['reference']}", "",
                  _md_table(["component", "area (mm2)", "share"], area_rows(area)), ""]
    acc = s.get("accuracy")
    if isinstance(acc, Mapping):
        scalars = [[k, f"{v:.4f}" if isinstance(v, float) else str(v)] for k, v in acc.items()
                   if isinstance(v, int | float) and not isinstance(v, bool)]
        parts += ["## Accuracy", "", _md_table(["metric", "value"], scalars), ""]
    parts += ["## Per layer (cycles by pass)", ""]
    layers, cycles = layer_pass_sums(rows, "cycles")
    _, energy = layer_pass_sums(rows, "energy_pj")
    present = {(r["layer"], r["pass"]) for r in rows}
    table = []
    for i, layer in enumerate(layers):
        row: list[object] = [layer]
        row += [f"{cycles[p][i]:,.0f}" if (layer, p) in present else "" for p in cycles]
        row.append(f"{round(sum(e[i] for e in energy.values()), 3) / 1e6:.3f}")
        table.append(row)
    parts.append(_md_table(["layer", *cycles, "energy (uJ)"], table))
    parts.append("")
    kinds = t.get("dram_bytes_by_kind", {})
    if kinds:
        parts += ["## DRAM bytes by tensor kind", "",
                  _md_table(["kind", "DRAM bytes"], [[k, f"{v:,}"] for k, v in sorted(kinds.items())]),
                  ""]
    gemms = [r for r in rows if r.get("mapping")]
    if gemms:
        parts += ["## Mappings (GEMM layer x pass)", "",
                  _md_table(["layer", "pass", "binding", "on chip", "mapping"],
                            [[r["layer"], r["pass"], r.get("binding", ""), r.get("on_chip", ""),
                              # a pipe would split the Markdown table cell
                              "`" + r["mapping"].replace("|", "\\|") + "`"] for r in gemms]),
                  ""]
    return "\n".join(parts)


def render_documents(summary_text: str, layers_text: str,
                     formats: Iterable[str] = tuple(DOCUMENTS)) -> dict[str, str]:
    """File name -> text of the documents in ``formats`` (``md``, ``html``; others ignored)."""
    summary = json.loads(summary_text)
    rows = parse_layers_csv(layers_text)
    out: dict[str, str] = {}
    for fmt in formats:
        if fmt == "md":
            out["report.md"] = report_md(summary, rows)
        elif fmt == "html":
            from fxpsim.report.html import report_html

            out["report.html"] = report_html(summary, rows)
    return out


#: a run's summary.json/layers.csv are at most a few MB even for 10,000-layer models
MAX_INPUT_BYTES = 256 << 20


def _read(folder: Path, name: str) -> str:
    """A data file of a run folder as text. Only a regular file is opened (a FIFO or a
    device would block or never end) and at most :data:`MAX_INPUT_BYTES` are read."""
    import stat

    path = folder / name
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            raise FxpsimError(f"{path}: not a regular file (expected fxpsim's {name})")
        if st.st_size > MAX_INPUT_BYTES:
            raise FxpsimError(f"{path}: larger than {MAX_INPUT_BYTES >> 20} MiB; not an "
                              f"fxpsim {name}")
        with open(path, "rb") as fh:
            data = fh.read(MAX_INPUT_BYTES + 1)
        return data.decode("utf-8")
    except FileNotFoundError:
        raise FxpsimError(f"{path}: not found (is {folder} an fxpsim run folder?)") from None
    except UnicodeDecodeError:
        raise FxpsimError(f"{path}: not UTF-8 text") from None
    except OSError as exc:
        raise FxpsimError(f"{path}: cannot read: {exc.strerror or exc}") from None


def load_summary(text: str, path: Path) -> Any:
    """``summary.json`` parsed; malformed or absurdly nested JSON is a one-line error."""
    try:
        return json.loads(text)
    except RecursionError:
        raise FxpsimError(f"{path}: invalid JSON: nested too deeply") from None
    except ValueError as exc:
        raise FxpsimError(f"{path}: invalid JSON: {exc}") from None


def _replace_file(path: Path, text: str) -> None:
    """Write ``text`` to a temporary sibling and rename it over ``path`` (atomic per file)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def rerender(folder: str | os.PathLike[str], formats: Sequence[str] = tuple(DOCUMENTS)
             ) -> list[Path]:
    """Re-write ``report.md``/``report.html`` of a run folder from its ``summary.json`` and
    ``layers.csv`` (no simulation). Every document is rendered before any file is replaced;
    each replacement is an atomic rename. Returns the paths written."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FxpsimError(f"{folder}: not a folder (expected a run folder with summary.json)")
    summary_text = _read(folder, "summary.json")
    layers_text = _read(folder, "layers.csv")
    summary = load_summary(summary_text, folder / "summary.json")
    if not isinstance(summary, dict) or not str(summary.get("schema", "")).startswith(
            "fxpsim.summary/"):
        raise FxpsimError(f"{folder / 'summary.json'}: schema: not an fxpsim summary")
    try:
        docs = render_documents(summary_text, layers_text, formats)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, RecursionError,
            OverflowError, ZeroDivisionError) as exc:
        raise FxpsimError(f"{folder}: summary.json/layers.csv do not match the report "
                          f"schema ({type(exc).__name__}: {exc})") from None
    written = []
    from fxpsim import guard

    with guard.signals_blocked():  # all documents are replaced, or none
        for name, text in docs.items():
            _replace_file(folder / name, text)
            written.append(folder / name)
    return written


def report_from_cli(folder: str, options: Mapping[str, str]) -> int:
    """``fxpsim report <folder> [format=md,html]``."""
    from fxpsim.errors import ConfigError

    unknown = [k for k in options if k != "format"]
    if unknown:
        raise ConfigError("command line", unknown[0], "unknown option; valid: format")
    formats = [f.strip() for f in options.get("format", "md,html").split(",") if f.strip()]
    bad = [f for f in formats if f not in DOCUMENTS]
    if bad or not formats:
        raise ConfigError("command line", "format",
                          f"expected a comma list of {', '.join(DOCUMENTS)}, got "
                          f"{options.get('format', '')!r}")
    written = rerender(folder, formats)
    print(f"re-rendered {', '.join(str(p) for p in written)}")
    return 0
