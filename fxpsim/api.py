"""The pipeline as plain function calls (usable from notebooks):

>>> from fxpsim.api import simulate_run
>>> outcome = simulate_run({"hw": "edge_npu", "model": "vgg16", "phase": "infer", "batch": "1"})

``run_from_cli`` is what ``fxpsim run`` calls: resolve inputs, simulate, print, write reports.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from fxpsim.errors import ConfigError, FxpsimError
from fxpsim.outcome import RunOutcome

REPORT_FILES = ("summary.json", "layers.csv", "report.md", "report.html", "trace.json")
#: RunConfig.format item -> the report file it writes
FORMAT_FILES: dict[str, str] = {
    "json": "summary.json", "csv": "layers.csv", "md": "report.md", "html": "report.html",
    "trace": "trace.json",
}


def run_name(hw_name: str, model_name: str, phase: str, algo: str, batch: int) -> str:
    """Deterministic default run name (no timestamps: same inputs, same folder)."""
    algo_part = f"-{algo}" if phase == "train" else ""
    return f"{hw_name}-{model_name}-{phase}{algo_part}-b{batch}"


def trains(run: object) -> bool:
    """Whether a run also trains for accuracy: phase=train with a non-zero budget."""
    return getattr(run, "phase", "") == "train" and 0 not in (run.steps, run.epochs)  # type: ignore[attr-defined]


def simulate_run(options: Mapping[str, str], *, progress: bool = True) -> RunOutcome:
    """Resolve the options (run keys and dotted hw overrides), simulate one step's cycles and
    energy, and, for ``phase=train`` with a non-zero budget, train the same network with the
    same numerics for accuracy."""
    from fxpsim.config.compat import check_roundings
    from fxpsim.config.load import load_hwconfig
    from fxpsim.config.run import parse_run_options
    from fxpsim.graph.layer_formats import with_layer_formats
    from fxpsim.graph.resolve import load_model
    from fxpsim.timing.mapping import hw_source
    from fxpsim.timing.ops import TimingRequest
    from fxpsim.timing.simulate import simulate

    run, hw_overrides = parse_run_options(options)
    hw = load_hwconfig(run.hw, hw_overrides)
    check_roundings((run.rounding_w, run.rounding_a, run.rounding_g), hw.config, hw.source)
    graph = with_layer_formats(load_model(run.model), run.layer_formats)
    if run.algo == "bnrect" and run.phase == "train" and not any(
            n.op == "batchnorm" for n in graph.nodes):
        raise ConfigError("command line", "algo",
                          f"bnrect rectifies BatchNorm layers; model {graph.name} has none")
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
    )
    try:
        timing = simulate(graph, hw.config, req, trace="trace" in run.format)
    except ConfigError as exc:
        if exc.source != hw_source(hw.config):
            raise
        # the time plane names the config by its name; the user wants the file
        raise ConfigError(hw.source, exc.key_path, exc.message) from None
    training = inference = None
    if trains(run):
        from fxpsim.training.loop import run_training

        training = run_training(graph, hw, run, progress=progress, target_loss=run.target_loss)
    elif run.phase == "infer" and run.checkpoint:
        from fxpsim.training.infer import evaluate_checkpoint

        inference = evaluate_checkpoint(graph, hw, run)
    name = run.name or run_name(hw.config.name, graph.name, run.phase, run.algo, run.batch)
    return RunOutcome(name=name, run=run, hw=hw, graph=graph, timing=timing, training=training,
                      inference=inference)


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
                                         run_name=outcome.name)
    wanted = {FORMAT_FILES[f] for f in formats}
    return {name: text for name, text in files.items() if name in wanted}


def check_out_folder(out: str | Path | None) -> None:
    """``out=`` must name a folder (new or existing), never an existing file. Called before
    simulating and training too, so a bad ``out=`` fails at once, not after minutes."""
    if out and Path(out).exists() and not Path(out).is_dir():
        raise FxpsimError(f"{out}: exists and is not a folder (out= names the report folder)")


def write_report_folder(target: Path, files: Mapping[str, str]) -> Path:
    """Write ``files`` as the folder ``target`` atomically; user-facing errors for a target
    that is an existing file or cannot be written (also used by ``fxpsim compare``)."""
    from fxpsim.report.write import write_folder_atomically

    check_out_folder(target)
    try:
        return write_folder_atomically(target, files)
    except OSError as exc:  # e.g. a parent is a file, or a folder we may not write
        raise FxpsimError(f"{target}: cannot write the report: {exc.strerror or exc}") from None


def write_reports(outcome: RunOutcome) -> Path:
    target = Path(outcome.run.out) if outcome.run.out else Path("reports") / outcome.name
    return write_report_folder(target, report_files(outcome))


def run_from_cli(options: Mapping[str, str]) -> int:
    from fxpsim.report.terminal import print_run

    check_out_folder(options.get("out"))
    outcome = simulate_run(options)
    print_run(outcome)
    folder = write_reports(outcome)
    names = [FORMAT_FILES[f] for f in outcome.run.format]
    print(f"reports written to {folder}/ ({', '.join(names)})")
    return 0
