"""Command-line tokens in any order: ``--key value`` and ``--key=value`` are ``key=value``.

argparse stops collecting ``key=value`` positionals at the first flag, so
``fxpsim run steps=0 --format json out=X`` used to fail on ``out=X``. Before parsing, every
``--key value`` / ``--key=value`` after the command becomes ``key=value`` (``--format`` and
``format=`` are then the same thing, and ``--steps 0`` works like ``steps=0``); only
``-h``/``--help``/``--version`` stay flags. A key given twice is still an error, reported
by the option parser.
"""

from __future__ import annotations

from collections.abc import Sequence

KEEP = ("-h", "--help", "--version")
#: commands whose first plain (non key=value) token is a positional argument
_POSITIONAL_FIRST = ("report", "bench")


def normalize_argv(argv: Sequence[str]) -> list[str]:
    """``["run", "--steps", "0", "--format=json", "out=X"]`` ->
    ``["run", "steps=0", "format=json", "out=X"]`` (see the module docstring)."""
    args = list(argv)
    command_at = next((i for i, a in enumerate(args) if not a.startswith("-")), None)
    if command_at is None:
        return args
    head, rest = args[:command_at + 1], args[command_at + 1:]
    out: list[str] = []
    i = 0
    while i < len(rest):
        tok = rest[i]
        if tok.startswith("--") and tok not in KEEP and len(tok) > 2:
            key, eq, value = tok[2:].partition("=")
            key = key.replace("-", "_")
            if not eq:
                if i + 1 >= len(rest) or rest[i + 1].startswith("--"):
                    out.append(f"{key}")  # no value: reported as "expected key=value"
                    i += 1
                    continue
                value = rest[i + 1]
                i += 1
            out.append(f"{key}={value}")
        else:
            out.append(tok)
        i += 1
    if head[-1] in _POSITIONAL_FIRST:  # the folder / bench target first, options after
        plain = [t for t in out if "=" not in t or t.startswith("-")]
        out = plain + [t for t in out if t not in plain]
    return head + out
