"""User-facing errors: the CLI prints them as one line and exits with code 2 (no traceback)."""

from __future__ import annotations


class FxpsimError(Exception):
    """An error caused by the user's input (file, option, model), not by a bug in fxpsim."""

    exit_code = 2


class ConfigError(FxpsimError, ValueError):
    """A bad value in a config file or an override.

    ``source`` is the file (or ``"command line"``), ``key_path`` the dotted path of the
    offending key (``mac_array.rows``, ``memory[1].size_kib``), ``message`` what was expected
    and what was found.
    """

    def __init__(self, source: str, key_path: str, message: str) -> None:
        self.source = source
        self.key_path = key_path
        self.message = message
        where = f"{clip(source)}: {clip(key_path)}" if key_path else clip(source)
        super().__init__(f"{where}: {message}")


class UnsupportedError(FxpsimError):
    """A model op, dataflow or mode the simulator does not support (named in the message)."""


def clip(text: str, limit: int = 160) -> str:
    """``text`` shortened to about ``limit`` characters (head ... tail) for an error line:
    an error quotes what the user gave, never a whole 100 KB value."""
    if len(text) <= limit:
        return text
    head = limit * 2 // 3
    tail = limit - head - 5
    return f"{text[:head]}...[{len(text) - head - tail} more characters]...{text[-tail:]}"
