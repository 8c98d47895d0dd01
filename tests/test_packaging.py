"""The wheel must contain every subpackage: ``pyproject.toml`` lists packages explicitly (so
that hwconfigs/ and models/ can ship inside the package), and a missing entry only shows up
in a non-editable install."""

from __future__ import annotations

import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_every_subpackage_is_listed_in_pyproject() -> None:
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
                 ["packages"])
    found = {
        ".".join(p.parent.relative_to(REPO).parts)
        for p in (REPO / "fxpsim").rglob("__init__.py")
    }
    assert found <= listed, sorted(found - listed)
    assert {"fxpsim.hwconfigs", "fxpsim.builtin_models"} <= listed
