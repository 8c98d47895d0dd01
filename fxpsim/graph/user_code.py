"""Running a user's model file (``model=file.py:Class``): user code, isolated.

Whatever the file does while it is imported, constructed, traced or run forward once, fxpsim
answers with one line naming the file and the step (and the fx node where known), exit 2:

* any exception *and* ``SystemExit`` (``sys.exit()`` in the file), ``KeyboardInterrupt``
  raised by the code itself, ``GeneratorExit`` or a bare ``BaseException`` become a
  :class:`~fxpsim.errors.ConfigError`. A real Ctrl-C or SIGTERM (the CLI's
  :class:`~fxpsim.guard.Interrupted`) passes through as an interruption;
* what libraries print to stderr meanwhile (torch.fx prints a traceback before re-raising)
  is swallowed: the error line says what happened;
* code that does not finish within ``timeout_s`` seconds is stopped by a SIGALRM timer; if it
  is stuck where Python cannot interrupt it, the command-line process reports the error and
  ends itself a few seconds later (:func:`fxpsim.guard.exit_now` also ends the process
  without waiting for threads the file left running).
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import sys
import threading
from collections.abc import Iterator

from fxpsim import guard
from fxpsim.errors import ConfigError, clip

DEFAULT_TIMEOUT_S = 300.0
#: after the timer fired, how long Python code may take to notice before the process ends
HARD_EXIT_GRACE_S = 5.0


class _Timeout(BaseException):
    """Internal: the SIGALRM timer of :func:`user_code` fired."""


def _on_alarm(_signum: int, _frame: object) -> None:
    raise _Timeout


def _real_ctrl_c_possible() -> bool:
    """True outside the CLI (a notebook): Python's own SIGINT handler raises
    KeyboardInterrupt, so one cannot tell it from the user's code raising it."""
    return signal.getsignal(signal.SIGINT) is signal.default_int_handler


def describe(exc: BaseException) -> str:
    """``Type: message`` of what user code raised (``sys.exit`` spelled out)."""
    if isinstance(exc, SystemExit):
        return f"called sys.exit({exc.code!r})"
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {clip(text[0], 300)}" if text else type(exc).__name__


@contextlib.contextmanager
def _alarm(timeout_s: float) -> Iterator[bool]:
    usable = (threading.current_thread() is threading.main_thread()
              and hasattr(signal, "setitimer"))
    if not usable:
        yield False
        return
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout_s)
    try:
        yield True
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _hard_exit(line: str) -> None:
    """Last resort (a thread): the code ignores the timer; report and end the process."""
    try:
        sys.__stderr__.write(line + "\n")  # type: ignore[union-attr]
        sys.__stderr__.flush()  # type: ignore[union-attr]
    finally:
        os._exit(2)


@contextlib.contextmanager
def user_code(source: str, key: str, step: str, timeout_s: float = DEFAULT_TIMEOUT_S
              ) -> Iterator[None]:
    """Run the ``with`` body as user code: see the module docstring. ``step`` says what ran
    ("importing m.py", "Net()", ...), ``key`` is the key path the error names."""
    message = f"{step} did not finish within {timeout_s:g} s (model_timeout=)"
    backstop = None
    if guard.may_exit():
        error = ConfigError(source, key, message)
        backstop = threading.Timer(timeout_s + HARD_EXIT_GRACE_S, _hard_exit,
                                   args=(f"fxpsim: error: {error}",))
        backstop.daemon = True
        backstop.start()
    noise = io.StringIO()
    try:
        with _alarm(timeout_s), contextlib.redirect_stderr(noise):
            yield
    except _Timeout:
        raise ConfigError(source, key, message) from None
    except guard.Interrupted:
        raise
    except KeyboardInterrupt:
        if _real_ctrl_c_possible():
            raise
        raise ConfigError(source, key, f"{step} raised KeyboardInterrupt") from None
    except BaseException as exc:  # noqa: BLE001 (user code: anything at all becomes one line)
        raise ConfigError(source, key, f"{step} failed: {describe(exc)}") from None
    finally:
        if backstop is not None:
            backstop.cancel()
    signum = guard.received()
    if signum is not None:  # the code swallowed the signal's exception: stop anyway
        raise guard.Interrupted(signum)
