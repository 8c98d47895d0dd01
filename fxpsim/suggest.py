""""Did you mean" hints for unknown keys, names and values (difflib, no dependencies)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def close_matches(word: object, choices: Iterable[object], n: int = 3) -> list[str]:
    """Up to ``n`` choices that look like ``word`` (best first)."""
    names = [str(c) for c in choices]
    return difflib.get_close_matches(str(word), names, n=n, cutoff=0.6)


def did_you_mean(word: object, choices: Iterable[object]) -> str:
    """``"; did you mean 'rows'?"`` for the closest choice, or ``""`` when none is close."""
    best = close_matches(word, choices, n=2)
    if not best:
        return ""
    return "; did you mean " + " or ".join(f"'{b}'" for b in best) + "?"
