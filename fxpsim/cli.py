"""Command line: ``fxpsim run|compare|report|check|list|bench ...`` with ``key=value`` options.

Heavy libraries (torch, numba, simpy) are imported inside the command that needs them, so
``fxpsim --help`` and timing-only runs start fast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from types import ModuleType

from fxpsim.errors import FxpsimError, clip

_EPILOG = """\
examples:
  fxpsim run hw=edge_npu.yaml model=vgg16
  fxpsim run hw=edge_npu model=resnet20 phase=infer batch=1 mac_array.rows=32
  fxpsim compare hw=edge_npu.yaml model=vgg16 rounding.g=half_even,stochastic,floor
  fxpsim sweep model=lenet5 steps=0 w_bits=4,8 mac_array.rows=8,16,32 workers=2
  fxpsim sweep sweep=my_sweep.yaml scheduler=tcp://127.0.0.1:8786
  fxpsim report reports/<run folder>
  fxpsim check hw=hwconfigs/edge_npu.yaml dram.bandwidth_gb_s=25.6
  fxpsim list
  fxpsim schema hw
  fxpsim run --help          (every run option with its type and default)
  fxpsim bench arith
"""


MAX_VALUE = 1 << 16

_SWEEP_HELP = """\
Run every point of a design space (run options and dotted hwconfig keys; a comma list is an
axis) on a Dask cluster, store each point as it finishes, resume, report Pareto fronts.

sweep options:
  sweep=FILE.yaml       fixed, axes, constraints, objectives, mode, n_trials, seed
  workers=N             local cluster of N worker processes (default: number of cores)
  scheduler=tcp://H:P   run on an existing Dask scheduler instead
  threads=N             numba/torch threads per worker (default: its share of the cores)
  out=DIR               sweep folder (default reports/sweep-<name>/)
  resume=true|false     skip points already done in out= (default true)
  mode=grid|random|search, n_trials=N, sweep_seed=N
  objectives=accuracy:max,energy_pj:min   constraints=area_mm2<=2,cycles<=1e7
  point_format=json,csv,md                 files in each point's run folder
"""


def parse_options(items: Sequence[str]) -> dict[str, str]:
    """``["a=1", "b.c=x"]`` -> ``{"a": "1", "b.c": "x"}`` (order kept; a repeated key is an error)."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise FxpsimError(f"command line: {clip(repr(item), 80)}: expected key=value")
        if key in out:
            raise FxpsimError(f"command line: {clip(key, 80)}: given twice")
        if len(value) > MAX_VALUE:  # no option needs more; parsing a huge one takes long
            raise FxpsimError(f"command line: {clip(key, 80)}: value too long ({len(value)} "
                              f"characters; at most {MAX_VALUE})")
        if not value.strip():  # `epochs=` must not quietly mean "the default"
            raise FxpsimError(f"command line: {clip(key, 80)}: empty value (give a value, or "
                              "leave the option out for its default)")
        bad = next((c for c in item if "\udc80" <= c <= "\udcff"), None)
        if bad is not None:  # undecodable bytes arrive as surrogates (PEP 383)
            raise FxpsimError(f"command line: {clip(key, 80)}: not valid UTF-8 (byte "
                              f"0x{ord(bad) - 0xDC00:02x})")
        out[key] = value.strip()
    return out


MAX_ERROR_LINE = 1000


def _one_line(text: str) -> str:
    """An error message on one line: line breaks and other control characters that came
    with user input are shown escaped (``\\n``, ``\\x85``); at most about 1000 characters."""
    return clip("".join(c if c.isprintable() else repr(c)[1:-1] for c in text), MAX_ERROR_LINE)


class _Parser(argparse.ArgumentParser):
    """argparse with usage errors on one line, like every other user error (exit code 2)."""

    def error(self, message: str):
        print(f"fxpsim: error: command line: {_one_line(message)} (see fxpsim --help)",
              file=sys.stderr)
        raise SystemExit(2)


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="fxpsim",
        description="Fixed-point DNN accelerator simulator: cycles, energy and accuracy.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from fxpsim import __version__

    parser.add_argument("--version", action="version", version=f"fxpsim {__version__}")
    from fxpsim.cli_help import HelpParser

    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=HelpParser)
    run = sub.add_parser("run", help="simulate a training or inference step (key=value options)",
                         key_help=True)
    run.add_argument("options", nargs="*", metavar="key=value")
    run.add_argument("--format", help="reports to write: comma list of json,csv,md,html,trace "
                     "(same as format=...)")
    compare = sub.add_parser(
        "compare", help="run variants (a comma list value = an axis) and compare them",
        key_help=True, description="Every option whose value is a comma list (outside "
        "brackets) is an axis; the variants are their grid and share everything else.")
    compare.add_argument("options", nargs="*", metavar="key=value")
    compare.add_argument("--format", help="comparison files: comma list of json,csv,md,html")
    sweep = sub.add_parser(
        "sweep", help="design-space sweep on Dask (grid | random | Optuna search), resumable, "
        "with Pareto fronts (comma list = axis, or sweep=file.yaml)",
        formatter_class=argparse.RawDescriptionHelpFormatter, description=_SWEEP_HELP,
        key_help=True)
    sweep.add_argument("options", nargs="*", metavar="key=value")
    report = sub.add_parser("report", help="re-render report.md/report.html of a run folder "
                            "from its summary.json and layers.csv (no simulation)")
    report.add_argument("folder")
    report.add_argument("options", nargs="*", metavar="key=value")
    report.add_argument("--format", help="documents to re-render: comma list of md,html")
    check = sub.add_parser("check", help="validate a hwconfig and print the resolved config",
                           key_help=True)
    check.add_argument("options", nargs="*", metavar="key=value")
    sub.add_parser("list", help="list built-in hwconfigs and models")
    schema = sub.add_parser("schema", help="print the reference of the hwconfig (hw) or model "
                            "IR (model) schema, generated from the code that validates them")
    schema.add_argument("which", choices=["hw", "model"])
    bench = sub.add_parser("bench", help="benchmarks: arith | schedule | train | sweep")
    bench.add_argument("target", choices=["arith", "schedule", "train", "sweep"])
    bench.add_argument("options", nargs="*", metavar="key=value")
    return parser


def _options(ns: argparse.Namespace) -> dict[str, str]:
    """``key=value`` options plus ``--format`` (given both ways is an error)."""
    out = parse_options(ns.options)
    if getattr(ns, "format", None) is not None:
        if "format" in out:
            raise FxpsimError("command line: format: given twice (--format and format=)")
        out["format"] = ns.format
    return out


def _dispatch(ns: argparse.Namespace) -> int:
    if ns.command == "run":
        from fxpsim.api import run_from_cli

        return run_from_cli(_options(ns))
    if ns.command == "compare":
        from fxpsim.compare import compare_from_cli

        return compare_from_cli(_options(ns))
    if ns.command == "sweep":
        from fxpsim.sweeps.cli import sweep_from_cli

        return sweep_from_cli(parse_options(ns.options))
    if ns.command == "report":
        from fxpsim.report.rerender import report_from_cli

        return report_from_cli(ns.folder, _options(ns))
    if ns.command == "check":
        from fxpsim.config.cli import check

        return check(parse_options(ns.options))
    if ns.command == "schema":
        from fxpsim.schema_doc import reference

        print(reference(ns.which), end="")
        return 0
    if ns.command == "list":
        from fxpsim.config.cli import list_all

        return list_all()
    if ns.command == "bench":
        from fxpsim.bench.cli import bench

        return bench(ns.target, parse_options(ns.options))
    raise AssertionError(ns.command)


def _ended_by(exc: BaseException, guard: ModuleType) -> int:
    signum = guard.received()
    if signum is not None:  # whatever the signal turned into inside a library
        _say(guard.interrupted_message(signum))
        return 128 + signum
    if isinstance(exc, KeyboardInterrupt):
        import signal

        _say(guard.interrupted_message(signal.SIGINT))
        return 130
    if isinstance(exc, FxpsimError):
        _say(f"fxpsim: error: {_one_line(str(exc))}")
        return exc.exit_code
    if guard.is_stdout_error(exc):  # output piped into `head` & co.: not an error of ours
        guard.silence_stdout()
        return 0
    if isinstance(exc, SystemExit):
        raise exc
    if isinstance(exc, MemoryError):
        _say("fxpsim: error: out of memory (try a smaller batch, model or training budget)")
        return 2
    if isinstance(exc, OSError):  # the environment: a full disk, a name too long, no access
        where = clip(str(exc.filename), 120) + ": " if exc.filename else ""
        _say(f"fxpsim: error: {_one_line(where + (exc.strerror or str(exc)))}")
        return 2
    if not isinstance(exc, Exception):
        raise exc
    # a bug in fxpsim: one line that says so, instead of a traceback
    _say(f"fxpsim: internal error (please report it): {type(exc).__name__}: "
         f"{_one_line(str(exc))}")
    return 1


def _say(line: str) -> None:
    try:
        print(line, file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass


def _parse_and_dispatch(argv: Sequence[str] | None) -> int:
    from fxpsim.numba_cache import use_user_cache

    use_user_cache()  # compiled kernels go to a user cache folder, never into site-packages
    from fxpsim.cli_args import normalize_argv

    parser = _build_parser()
    try:
        ns = parser.parse_args(normalize_argv(sys.argv[1:] if argv is None else argv))
    except SystemExit as exc:  # --help/--version (0) or a usage error (2, already printed)
        return exc.code if isinstance(exc.code, int) else 2
    if ns.command is None:
        parser.print_help()
        return 0
    return _dispatch(ns)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; every way it can end becomes an exit code and at most one line on
    stderr: 0, 2 (bad input, see :class:`FxpsimError`), 128+N (signal N), 1 (a bug)."""
    from fxpsim import guard

    with guard.signals_as_interrupts():
        try:
            return _parse_and_dispatch(argv)
        except BaseException as exc:  # noqa: BLE001 (sorted out by _ended_by, none is lost)
            return _ended_by(exc, guard)


def entry() -> None:
    """The ``fxpsim`` console script: :func:`main`, then exit without waiting for threads
    a user's model file may have left running."""
    from fxpsim.guard import allow_hard_exit, exit_now, ignore_signals

    allow_hard_exit()
    # outside main() (whose handlers turn signals into a clean exit 128+N) the process has
    # nothing to stop: a signal just after the report was written must not kill it with N
    ignore_signals()
    exit_now(main())


if __name__ == "__main__":
    entry()
