"""The pipeline as plain function calls (the typed notebook API is :mod:`fxpsim.notebook`):

>>> from fxpsim.api import simulate_run
>>> outcome = simulate_run({"hw": "edge_npu", "model": "vgg16", "phase": "infer", "batch": 1})

``run_from_cli`` is what ``fxpsim run`` calls: resolve inputs, simulate, print, write reports.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from fxpsim.errors import ConfigError, FxpsimError
from fxpsim.naming import run_digest, run_name
from fxpsim.outcome import RunOutcome

if TYPE_CHECKING:
    from fxpsim.config.hw import HwConfig
    from fxpsim.config.load import LoadedHw
    from fxpsim.config.run import RunConfig

REPORT_FILES = ("summary.json", "layers.csv", "report.md", "report.html", "trace.json")
#: RunConfig.format item -> the report file it writes
FORMAT_FILES: dict[str, str] = {
    "json": "summary.json", "csv": "layers.csv", "md": "report.md", "html": "report.html",
    "trace": "trace.json",
}


def trains(run: object) -> bool:
    """Whether a run also trains for accuracy: phase=train with a non-zero budget."""
    return getattr(run, "phase", "") == "train" and 0 not in (run.steps, run.epochs)  # type: ignore[attr-defined]


def _blame_bits(key_path: str, run: RunConfig, hw: HwConfig) -> str:
    """`` (asked for by a_bits=16 ...)`` when a missing ``energy.<op>.int<N>`` price is
    needed because of the operand widths the run options chose."""
    import re

    m = re.fullmatch(r"energy\.(\w+)\.int(\d+)", key_path)
    if m is None:
        return ""
    bits = int(m.group(2))
    priced = sorted(int(k[3:]) for k in getattr(hw.energy, m.group(1), {})
                    if k[3:].isdigit())
    # widths are rounded up to a datapath width: a_bits=9 needs the 16-bit price
    lower = max((p for p in priced if p < bits), default=0)
    opts = [f"{k}={v}" for k in ("w_bits", "a_bits", "g_bits")
            if isinstance(v := getattr(run, k), int) and lower < v <= bits]
    if not opts:
        return ""
    have = f" (it prices {', '.join(f'{b}-bit' for b in priced)})" if priced else ""
    return (f"; {' and '.join(opts)} (command line) needs {bits}-bit prices this config "
            f"lacks{have}: add {key_path} to the config or choose other bits")


def simulate_run(options: Mapping[str, object], *, progress: bool = True,
                 loaded_hw: LoadedHw | None = None) -> RunOutcome:
    """Resolve the options (run keys and dotted hw overrides), simulate one step's cycles and
    energy, and, for ``phase=train`` with a non-zero budget, train the same network with the
    same numerics for accuracy. ``loaded_hw``: an accelerator already loaded (the notebook
    API's ``HwConfig``/dict, overrides applied), used instead of loading ``hw=``."""
    from fxpsim.config.compat import check_roundings
    from fxpsim.config.load import load_hwconfig
    from fxpsim.config.run import option_text, parse_run_options
    from fxpsim.graph.layer_formats import float_ends, with_layer_formats
    from fxpsim.graph.resolve import load_model
    from fxpsim.timing.mapping import hw_source
    from fxpsim.timing.ops import TimingRequest
    from fxpsim.timing.simulate import simulate

    run, hw_overrides = parse_run_options(options)
    hw = loaded_hw if loaded_hw is not None else load_hwconfig(run.hw, hw_overrides)
    check_roundings((run.rounding_w, run.rounding_a, run.rounding_g), hw.config, hw.source)
    graph = load_model(run.model, input_shape=run.input_shape, timeout_s=run.model_timeout)
    # float_ends first: an explicit formats.<layer> for an end layer wins
    graph = with_layer_formats(
        graph, (*(float_ends(graph) if run.float_ends else ()), *run.layer_formats))
    if graph.workload_only and trains(run):
        raise ConfigError("command line", "phase",
                          f"model={graph.source} is a SCALE-Sim topology: it lists layer sizes "
                          f"only and has no classifier, so it can be timed but not trained on "
                          f"{run.dataset}; add steps=0 (or phase=infer)")
    if trains(run) and graph.num_classes == 0:
        raise ConfigError("command line", "model",
                          f"{run.model} has no classifier (a SCALE-Sim topology lists layers "
                          "only), so it cannot be trained for accuracy: use a model with one, "
                          "or steps=0 / phase=infer for cycles and energy only")
    if run.algo == "bnrect" and run.phase == "train" and not any(
            n.op == "batchnorm" for n in graph.nodes):
        raise ConfigError("command line", "algo",
                          f"bnrect rectifies BatchNorm layers; model {graph.name} has none")
    notes: tuple[str, ...] = ()
    if graph.workload_only and "batch" not in options:
        # SCALE-Sim has no batch: its topology layers are single images
        run = run.model_copy(update={"batch": 1})
        notes = ("batch 1: a SCALE-Sim topology has no batch (give batch=N to change it)",)
    req = TimingRequest(
        phase=run.phase,
        algo=run.algo,
        batch=run.batch,
        w_bits=None if run.w_bits == "float" else run.w_bits,
        a_bits=None if run.a_bits == "float" else run.a_bits,
        g_bits=None if run.g_bits == "float" else run.g_bits,
        rounding_w=run.rounding_w,
        rounding_a=run.rounding_a,
        rounding_g=run.rounding_g,
        timing=run.timing,
        projection_rounds=run.laq_rounds,
        hypernet_hidden=run.metagrad_hidden,
        octo_backward=run.octo_backward,
        objective=run.mapping_objective,
        schedule=run.schedule,
        forward_scales=run.forward_scales,
        g_granularity=run.g_granularity,
    )
    try:
        timing = simulate(graph, hw.config, req, trace="trace" in run.format)
    except ConfigError as exc:
        if exc.source != hw_source(hw.config):
            raise
        # the time plane names the config by its name; the user wants the file, and the
        # option that asked for what the file lacks
        raise ConfigError(hw.source, exc.key_path,
                          exc.message + _blame_bits(exc.key_path, run, hw.config)) from None
    if notes:
        timing = replace(timing, notes=(*notes, *timing.notes))
    training = inference = None
    if trains(run):
        from fxpsim.numba_cache import CompileNotice
        from fxpsim.training.loop import run_training

        notice = CompileNotice().install()  # says what it compiles when that takes > 1 s
        try:
            training = run_training(graph, hw, run, progress=progress,
                                    target_loss=run.target_loss)
        finally:
            notice.close()
    elif run.phase == "infer" and run.checkpoint:
        from fxpsim.training.infer import evaluate_checkpoint

        inference = evaluate_checkpoint(graph, hw, run)
    name = run.name or run_name(hw.config.name, graph.name, run.phase, run.algo, run.batch,
                                run_digest(run, hw.digest, graph))
    given = tuple((k, option_text(k, v)) for k, v in options.items())
    return RunOutcome(name=name, run=run, hw=hw, graph=graph, timing=timing, training=training,
                      options=given, inference=inference)


def report_files(outcome: RunOutcome) -> dict[str, str]:
    """File name -> text of the reports ``outcome.run.format`` asks for.

    ``report.md``/``report.html`` are rendered from the summary.json and layers.csv texts
    (as ``fxpsim report <folder>`` does), so a re-render gives the same bytes.
    """
    from fxpsim.report.csvmd import layers_csv
    from fxpsim.report.rerender import render_documents
    from fxpsim.report.summary import summary_json

    formats = outcome.run.format
    summary, layers = summary_json(outcome), layers_csv(outcome)
    files = {"summary.json": summary, "layers.csv": layers}
    files.update(render_documents(summary, layers, formats))
    if "trace" in formats:
        from fxpsim.report.perfetto import trace_json

        files["trace.json"] = trace_json(outcome.timing.events, outcome.hw.config.clock.freq_mhz,
                                         run_name=outcome.name,
                                         counters=outcome.timing.counters,
                                         flows=outcome.timing.flows)
    wanted = {FORMAT_FILES[f] for f in formats}
    return {name: text for name, text in files.items() if name in wanted}


def check_out_folder(out: str | Path | None) -> None:
    """``out=`` must name a new folder, or one holding only fxpsim's report files (see
    :mod:`fxpsim.report.outdir`). Called before simulating and training too, so a bad
    ``out=`` fails at once, not after minutes."""
    from fxpsim.report.outdir import check_out_folder as check

    check(out)


def write_report_folder(target: Path, files: Mapping[str, str], *,
                        announce: bool = False) -> Path:
    """Write ``files`` as the folder ``target`` atomically; user-facing errors for a target
    that is an existing file or cannot be written (also used by ``fxpsim compare``)."""
    from fxpsim.report.write import write_folder_atomically

    check_out_folder(target)
    try:
        return write_folder_atomically(target, files, announce=announce)
    except OSError as exc:  # e.g. a parent is a file, a full disk, a name too long
        from fxpsim.errors import clip

        raise FxpsimError(f"{clip(str(target))}: cannot write the report: "
                          f"{exc.strerror or exc}") from None


def write_reports(outcome: RunOutcome) -> Path:
    from fxpsim.report.outdir import default_folder

    target = Path(outcome.run.out) if outcome.run.out else default_folder(outcome.name)
    return write_report_folder(target, report_files(outcome), announce=True)


def run_from_cli(options: Mapping[str, str]) -> int:
    from fxpsim.guard import quiet_stdout
    from fxpsim.report.terminal import print_run

    check_out_folder(options.get("out"))
    outcome = simulate_run(options)
    # the report never depends on the terminal: write it first, then print (a closed pipe
    # or a full stdout ends the printing quietly)
    folder = write_reports(outcome)
    names = [FORMAT_FILES[f] for f in outcome.run.format]
    with quiet_stdout():
        print_run(outcome)
        print(f"reports written to {folder}/ ({', '.join(names)})")
    return 0
