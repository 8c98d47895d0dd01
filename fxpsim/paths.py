"""What a user-given name or path may look like (shared by option parsing and the writers).

A run name (``name=``) becomes one folder name under ``reports/``: it is a name, not a path.
Paths (``hw=``, ``model=``, ``out=``, ``data_dir=``) are checked against the limits of POSIX
file systems up front, so a 100 KB value gives a one-line error naming the option instead
of an ``OSError`` from deep inside.
"""

from __future__ import annotations

import re

PATH_MAX = 4096  # bytes, Linux
NAME_MAX = 255  # bytes per path component
#: a run name is one path component; longer names are refused (file systems allow 255
#: bytes, and the temporary sibling folder adds a suffix)
MAX_NAME = 120
_UNSAFE = re.compile(r"[^A-Za-z0-9._+=,@-]")


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a run (folder) name, or None when it can."""
    if not name:
        return "expected a non-empty name"
    if len(name) > MAX_NAME:
        return f"expected at most {MAX_NAME} characters ({len(name)} given)"
    if "/" in name or "\\" in name:
        return "a name is not a path: '/' and '\\' are not allowed (use out= for a folder)"
    if name in (".", "..") or name.startswith("."):
        return "a name cannot start with '.'"
    if any(not c.isprintable() for c in name):
        return "control characters are not allowed"
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return "not valid UTF-8"
    return None


def safe_component(name: str) -> str:
    """``name`` as one harmless folder name: a default run name is built from config and
    model names that may hold any character, so everything unusual becomes ``_``."""
    text = _UNSAFE.sub("_", name).lstrip(".") or "run"
    return text[:MAX_NAME]




def path_problem(path: str) -> str | None:
    """Why ``path`` can never name a file here, or None."""
    if "\x00" in path:
        return "a path cannot contain a NUL character"
    try:
        raw = path.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return "not valid UTF-8"
    if len(raw) > PATH_MAX:
        return f"path too long ({len(raw)} bytes; at most {PATH_MAX})"
    longest = max((len(c) for c in raw.split(b"/")), default=0)
    if longest > NAME_MAX:
        return f"a path component is too long ({longest} bytes; at most {NAME_MAX})"
    return None
