"""Where Numba keeps its compiled kernels, and telling the user when it compiles.

Numba's ``cache=True`` writes ``.nbi``/``.nbc`` files next to the source, in the package's
``__pycache__`` folders. For an installed package that is ``site-packages/fxpsim/*/``,
and ``pip uninstall`` leaves those folders behind; they then form a namespace package
``fxpsim`` that shadows a later editable install. So the entry points (the CLI and the
notebook API) point Numba at a per-user cache folder before any kernel module is imported:
``$FXPSIM_CACHE_DIR``, else ``$XDG_CACHE_HOME/fxpsim/numba``, else ``~/.cache/fxpsim/numba``.
A ``NUMBA_CACHE_DIR`` set by the user wins. Nothing here runs at import.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

#: compile time after which the user is told what is being compiled (seconds)
ANNOUNCE_AFTER_S = 1.0


def default_cache_dir() -> Path:
    """The per-user folder for fxpsim's Numba cache (see the module docstring)."""
    own = os.environ.get("FXPSIM_CACHE_DIR")
    if own:
        return Path(own).expanduser() / "numba"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "fxpsim" / "numba"


def use_user_cache() -> Path:
    """Point Numba's on-disk cache at :func:`default_cache_dir` (unless ``NUMBA_CACHE_DIR``
    is set) and return the folder in use. Call before importing any fxpsim kernel module;
    if Numba is already imported its config is updated too (kernels decorated after this
    call use the folder)."""
    chosen = os.environ.get("NUMBA_CACHE_DIR") or str(default_cache_dir())
    os.environ["NUMBA_CACHE_DIR"] = chosen
    numba_mod = sys.modules.get("numba")
    if numba_mod is not None:
        numba_mod.config.CACHE_DIR = chosen  # config was read when numba was imported
    return Path(chosen)


class CompileNotice:
    """Listens to Numba's ``numba:compile`` events (fired only on a real compile, not on a
    cache hit). When compiling has taken more than :data:`ANNOUNCE_AFTER_S`, says once
    which kernel it is compiling and where the cache lives; :meth:`close` then prints the
    total compile time. Installed only when Numba is imported by the run anyway."""

    def __init__(self, stream: TextIO | None = None, after_s: float = ANNOUNCE_AFTER_S,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.stream = stream or sys.stderr
        self.after_s = after_s
        self.clock = clock
        self.compiled: list[str] = []
        self.seconds = 0.0
        self.announced = False
        self._current: str | None = None
        self._started = 0.0
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()
        self._listener: Any = None

    # numba event API: on_start/on_end receive an Event whose data has the dispatcher
    def _name(self, event: Any) -> str:
        disp = (getattr(event, "data", None) or {}).get("dispatcher")
        py = getattr(disp, "py_func", None)
        mod = getattr(py, "__module__", "") or ""
        return f"{mod.rpartition('.')[2]}.{getattr(py, '__name__', '?')}" if py else "a kernel"

    def on_start(self, event: Any) -> None:
        with self._lock:
            if self._current is not None:  # nested compile (a kernel calling a kernel)
                return
            self._current = self._name(event)
            self._started = self.clock()
            if not self.announced:
                left = max(self.after_s - self.seconds, 0.0)
                self._timer = threading.Timer(left, self._announce)
                self._timer.daemon = True
                self._timer.start()

    def on_end(self, event: Any) -> None:
        with self._lock:
            if self._current is None or self._name(event) != self._current:
                return
            self.seconds += self.clock() - self._started
            self.compiled.append(self._current)
            self._current = None
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    def _announce(self) -> None:
        with self._lock:
            if self.announced:
                return
            self.announced = True
            what = self._current or (self.compiled[-1] if self.compiled else "kernels")
            cache = os.environ.get("NUMBA_CACHE_DIR", "the package folders")
        print(f"first run: compiling Numba kernels ({what}, ...); they are cached in "
              f"{cache} and later runs skip this", file=self.stream, flush=True)

    def install(self) -> CompileNotice:
        from numba.core import event

        notice = self

        class _Listener(event.Listener):
            def on_start(self, ev: Any) -> None:
                notice.on_start(ev)

            def on_end(self, ev: Any) -> None:
                notice.on_end(ev)

        self._listener = _Listener()
        event.register("numba:compile", self._listener)
        return self

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._listener is not None:
            from numba.core import event

            event.unregister("numba:compile", self._listener)
            self._listener = None
        if self.announced:
            print(f"compiled {len(self.compiled)} Numba kernels in {self.seconds:.1f} s",
                  file=self.stream, flush=True)
