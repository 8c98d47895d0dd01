"""Where a report folder goes, and whether fxpsim may replace what is there.

fxpsim replaces a folder only when it wrote it itself: an existing ``out=`` folder must be
empty or hold nothing but fxpsim's own report files (regular files with the names below).
Anything else (a user's notes, a sub-folder, a link) makes the run fail before it simulates,
naming the folder, so no user file is ever deleted. A symbolic link given as ``out=`` is
followed: the report replaces the folder it points to and the link stays as it was.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from fxpsim.errors import FxpsimError, clip
from fxpsim.paths import path_problem, safe_component

#: every file name fxpsim writes into a report folder (``fxpsim run`` and ``fxpsim compare``)
OWN_FILES: frozenset[str] = frozenset({
    "summary.json", "layers.csv", "report.md", "report.html", "trace.json",
    "compare.json", "compare.csv", "compare.md", "compare.html",
})
def default_folder(name: str) -> Path:
    """``reports/<name>`` for a run or comparison without ``out=``."""
    return Path("reports") / safe_component(name)


def _entry_is_own(folder: Path, name: str) -> bool:
    if name not in OWN_FILES:
        return False
    try:
        return stat.S_ISREG(os.lstat(folder / name).st_mode)
    except OSError:
        return False


def _fail(out: str | Path, why: str) -> FxpsimError:
    return FxpsimError(f"{clip(str(out))}: {why}")


def resolve_out(out: str | Path) -> Path:
    """The folder a report for ``out=`` goes to (links followed), checked as in
    :func:`check_out_folder`."""
    text = str(out)
    problem = path_problem(text)
    if problem:
        raise FxpsimError(f"command line: out: {problem}")
    try:
        real = Path(os.path.realpath(text))
    except (OSError, ValueError) as exc:
        raise _fail(out, f"cannot use as report folder: {getattr(exc, 'strerror', None) or exc}"
                    ) from None
    if not real.name or real.parent == real:
        raise _fail(out, "the root folder cannot be a report folder")
    try:
        st = os.stat(real)
    except FileNotFoundError:
        if Path(text).is_symlink():
            raise _fail(out, f"is a link to {clip(str(real))}, which does not exist") from None
        return real
    except OSError as exc:
        raise _fail(out, f"cannot use as report folder: {exc.strerror or exc}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise _fail(out, "exists and is not a folder (out= names the report folder)")
    try:
        entries = sorted(os.listdir(real))
    except OSError as exc:
        raise _fail(out, f"cannot read the folder: {exc.strerror or exc}") from None
    foreign = [e for e in entries if not _entry_is_own(real, e)]
    if foreign:
        shown = ", ".join(clip(e, 40) for e in foreign[:3]) + (", ..." if len(foreign) > 3
                                                                 else "")
        raise _fail(out, f"folder exists and holds files fxpsim did not write ({shown}); "
                    "choose another out= or empty it (fxpsim never deletes files it did not "
                    "write)")
    return real


def check_out_folder(out: str | Path | None) -> None:
    """Fail at once (before simulating or training for minutes) when ``out=`` is a file, a
    folder holding anything but fxpsim's own report files, the root, or a dangling link."""
    if out:
        resolve_out(out)
