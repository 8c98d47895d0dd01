"""JSON as the reports write it: never ``NaN`` or ``Infinity`` (not JSON, and a sign that a
number overflowed). The config schema keeps every input in a physical range, so a
non-finite number here is a bug or an unforeseen extreme; it becomes an error naming the
key path instead of a silently broken ``summary.json``."""

from __future__ import annotations

import json
import math
from typing import Any

from fxpsim.errors import FxpsimError


def non_finite_path(obj: Any, path: str = "") -> str | None:
    """Dotted key path of the first NaN/inf in ``obj`` (dicts, lists, numbers), or None."""
    if isinstance(obj, float):
        return None if math.isfinite(obj) else (path or "<top>")
    if isinstance(obj, dict):
        for k, v in sorted(obj.items(), key=lambda kv: str(kv[0])):
            found = non_finite_path(v, f"{path}.{k}" if path else str(k))
            if found:
                return found
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            found = non_finite_path(v, f"{path}[{i}]")
            if found:
                return found
    return None


def dumps(obj: Any, file_name: str, **kwargs: Any) -> str:
    """``json.dumps(obj, allow_nan=False, **kwargs)``; a NaN/inf is a one-line error."""
    try:
        return json.dumps(obj, allow_nan=False, **kwargs)
    except ValueError:
        where = non_finite_path(obj) or "?"
        raise FxpsimError(f"{file_name}: {where}: the simulation produced a non-finite number "
                          "(NaN or infinity); the inputs are too extreme for this config, no "
                          "report was written") from None
