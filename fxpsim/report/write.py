"""Write a run's report folder atomically: everything goes to a temporary sibling folder that
is renamed into place at the end, so an error or Ctrl-C never leaves a half-written report."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path


def write_folder_atomically(target: Path, files: Mapping[str, str]) -> Path:
    """Create ``target`` holding exactly ``files`` (name -> text); replace an older folder."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; a report folder is an ordinary folder
    old: Path | None = None
    try:
        for name, text in files.items():
            with open(tmp / name, "w", encoding="utf-8", newline="\n") as fh:
                fh.write(text)
        if target.exists():
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            os.replace(target, old)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and not target.exists():
            os.replace(old, target)  # put the previous report back
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return target
