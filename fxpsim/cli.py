"""Command line: ``fxpsim run|check|list|bench ...`` with ``key=value`` options.

Heavy libraries (torch, numba, simpy) are imported inside the command that needs them, so
``fxpsim --help`` and timing-only runs start fast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from fxpsim.errors import FxpsimError

_EPILOG = """\
examples:
  fxpsim run hw=edge_npu.yaml model=vgg16
  fxpsim run hw=edge_npu model=resnet20 phase=infer batch=1 mac_array.rows=32
  fxpsim check hw=hwconfigs/edge_npu.yaml dram.bandwidth_gb_s=25.6
  fxpsim list
  fxpsim bench arith
"""


def parse_options(items: Sequence[str]) -> dict[str, str]:
    """``["a=1", "b.c=x"]`` -> ``{"a": "1", "b.c": "x"}`` (order kept; a repeated key is an error)."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise FxpsimError(f"command line: {item!r}: expected key=value")
        if key in out:
            raise FxpsimError(f"command line: {key}: given twice")
        out[key] = value.strip()
    return out


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fxpsim",
        description="Fixed-point DNN accelerator simulator: cycles, energy and accuracy.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from fxpsim import __version__

    parser.add_argument("--version", action="version", version=f"fxpsim {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    run = sub.add_parser("run", help="simulate a training or inference step (key=value options)")
    run.add_argument("options", nargs="*", metavar="key=value")
    check = sub.add_parser("check", help="validate a hwconfig and print the resolved config")
    check.add_argument("options", nargs="*", metavar="key=value")
    sub.add_parser("list", help="list built-in hwconfigs and models")
    bench = sub.add_parser("bench", help="benchmarks: arith | schedule")
    bench.add_argument("target", choices=["arith", "schedule"])
    bench.add_argument("options", nargs="*", metavar="key=value")
    return parser


def _dispatch(ns: argparse.Namespace) -> int:
    if ns.command == "run":
        from fxpsim.api import run_from_cli

        return run_from_cli(parse_options(ns.options))
    if ns.command == "check":
        from fxpsim.config.cli import check

        return check(parse_options(ns.options))
    if ns.command == "list":
        from fxpsim.config.cli import list_all

        return list_all()
    if ns.command == "bench":
        from fxpsim.bench.cli import bench

        return bench(ns.target, parse_options(ns.options))
    raise AssertionError(ns.command)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _build_parser()
    ns = parser.parse_args(argv)
    if ns.command is None:
        parser.print_help()
        return 0
    try:
        return _dispatch(ns)
    except FxpsimError as exc:
        print(f"fxpsim: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("fxpsim: interrupted; no report was written", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
