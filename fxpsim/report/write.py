"""Write a run's report folder atomically: everything goes to a temporary sibling folder that
is renamed into place at the end, so an error, Ctrl-C or SIGTERM never leaves a half-written
report. An older folder at the same place is replaced only when it holds nothing but
fxpsim's own report files (see :mod:`fxpsim.report.outdir`); only those files are deleted."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

from fxpsim import guard
from fxpsim.report.outdir import OWN_FILES, resolve_out


def _remove_own(folder: Path) -> None:
    """Delete fxpsim's files in ``folder`` and the folder if that empties it (a file someone
    added meanwhile stays, and so does the folder)."""
    for name in OWN_FILES:
        try:
            os.unlink(folder / name)
        except FileNotFoundError:
            pass
    try:
        os.rmdir(folder)
    except OSError:
        pass


def write_folder_atomically(target: Path, files: Mapping[str, str], *,
                            announce: bool = False) -> Path:
    """Create ``target`` holding exactly ``files`` (name -> text); replace an older report
    folder. A link as ``target`` is followed (the link itself is left alone). Returns the
    folder written. ``announce``: this is the command's report, so an interrupt that comes
    after the rename says it was written (recorded while signals are held back)."""
    real = resolve_out(target)
    real.parent.mkdir(parents=True, exist_ok=True)
    stem = real.name[:40]  # short sibling names: a long run name must not overflow NAME_MAX
    tmp = Path(tempfile.mkdtemp(prefix=f".{stem}.tmp-", dir=real.parent))
    old: Path | None = None
    try:
        tmp.chmod(0o755)  # mkdtemp makes it private; a report folder is an ordinary folder
        for name, text in files.items():
            with open(tmp / name, "w", encoding="utf-8", newline="\n") as fh:
                fh.write(text)
        with guard.signals_blocked():  # both renames happen, or neither
            resolve_out(real)  # still only our files (checked again right before replacing)
            if real.exists():
                old = real.with_name(f".{stem}.old-{os.getpid()}")
                os.replace(real, old)
            os.replace(tmp, real)
            if announce:
                guard.note_written(Path(target))
    except BaseException:
        with guard.signals_blocked():
            shutil.rmtree(tmp, ignore_errors=True)
            if old is not None and not real.exists():
                os.replace(old, real)  # put the previous report back
        raise
    if old is not None:
        with guard.signals_blocked():
            _remove_own(old)
    return Path(target)
