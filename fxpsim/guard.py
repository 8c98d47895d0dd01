"""Process-level safety for the ``fxpsim`` command: signals, a broken stdout, stray threads.

* SIGINT, SIGTERM and SIGHUP become one :class:`Interrupted` exception raised in the main
  thread. The first signal is recorded *before* anything is raised, so when library code
  turns the exception into another one (import machinery gives ``ImportError``, matplotlib
  ``ValueError``) the CLI still knows the run was interrupted. Later signals are only
  recorded: the clean-up that the first one started is not interrupted again.
* :func:`signals_blocked` holds signals back for a few system calls (the renames that put a
  report folder in place), so a report folder is either complete or absent.
* :func:`quiet_stdout` treats a closed pipe or a full device on stdout as the end of the
  terminal output, not as an error: the reports are written before anything is printed.
* :func:`exit_now` ends the process without waiting for threads a user's model file may have
  started.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

SIGNALS: tuple[signal.Signals, ...] = tuple(
    getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n))
#: errors of a stdout that cannot take more output (closed pipe, full disk, gone terminal)
STDOUT_ERRNOS = frozenset({errno.EPIPE, errno.ENOSPC, errno.EIO, errno.EBADF})


class Interrupted(BaseException):
    """A signal asked fxpsim to stop (a BaseException, like KeyboardInterrupt)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class _State:
    """What happened during one ``fxpsim`` command (reset by :func:`signals_as_interrupts`)."""

    received: list[int] = []
    written: list[Path] = []
    may_exit = False  # True only in the ``fxpsim`` process itself (never in-process callers)


def allow_hard_exit() -> None:
    """Called by the console script: this process may end itself with ``os._exit`` when
    user code cannot be stopped otherwise (never set when fxpsim is used as a library)."""
    _State.may_exit = True


def may_exit() -> bool:
    return _State.may_exit


def received() -> int | None:
    """The first signal received during the current command, if any."""
    return _State.received[0] if _State.received else None


def note_written(folder: Path) -> None:
    """Record a report folder that is complete on disk (for the interrupt message)."""
    _State.written.append(folder)


def written() -> list[Path]:
    return list(_State.written)


def _handler(signum: int, _frame: object) -> None:
    first = not _State.received
    _State.received.append(signum)
    if first:
        raise Interrupted(signum)


@contextlib.contextmanager
def signals_as_interrupts() -> Iterator[None]:
    """Install the signal handlers for one command (main thread only) and restore the
    previous ones afterwards (tests call the CLI in-process)."""
    _State.received, _State.written = [], []
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in SIGNALS}
    for s in SIGNALS:
        signal.signal(s, _handler)
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h if h is not None else signal.SIG_DFL)
        _State.received, _State.written = [], []


@contextlib.contextmanager
def signals_blocked() -> Iterator[None]:
    """Hold SIGINT/SIGTERM/SIGHUP back (delivered when the block ends)."""
    mask = getattr(signal, "pthread_sigmask", None)
    if mask is None or threading.current_thread() is not threading.main_thread():
        yield
        return
    old = mask(signal.SIG_BLOCK, SIGNALS)
    try:
        yield
    finally:
        mask(signal.SIG_SETMASK, old)


def interrupted_message(signum: int) -> str:
    """The one line printed for an interrupted command."""
    done = written()
    name = signal.Signals(signum).name
    how = "interrupted" if signum == signal.SIGINT else f"interrupted by {name}"
    if done:
        return f"fxpsim: {how} after the report was written to {done[-1]}/"
    return f"fxpsim: {how}; no report was written"


def silence_stdout() -> None:
    """Point fd 1 at /dev/null so later writes and the exit-time flush cannot fail."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


def is_stdout_error(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in STDOUT_ERRNOS


@contextlib.contextmanager
def quiet_stdout() -> Iterator[list[OSError]]:
    """Run terminal output; a stdout that cannot take it (closed pipe, ``/dev/full``) ends
    the output quietly. The yielded list receives the error, if one happened."""
    failed: list[OSError] = []
    try:
        yield failed
        sys.stdout.flush()
    except OSError as exc:
        if not is_stdout_error(exc):
            raise
        failed.append(exc)
        silence_stdout()
    except SystemExit:  # rich's Console.on_broken_pipe: stdout went to /dev/null, then exit(1)
        failed.append(BrokenPipeError(errno.EPIPE, "broken pipe"))
        silence_stdout()


def ignore_signals() -> None:
    """SIG_IGN for SIGINT/SIGTERM/SIGHUP (the console script, around :func:`main`, whose own
    handlers replace these while a command runs; exec'd children get them reset there)."""
    for s in SIGNALS:
        signal.signal(s, signal.SIG_IGN)


def exit_now(code: int) -> None:
    """Flush and end the process, even if a user's module left a non-daemon thread running
    (Python would otherwise wait for it at exit, forever)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):
            if stream is sys.stdout:
                silence_stdout()
    if any(t.is_alive() and not t.daemon for t in threading.enumerate()
           if t is not threading.main_thread()):
        os._exit(code)
    sys.exit(code)
