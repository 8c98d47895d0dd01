"""Print one of the README's two commands (``main`` or ``test``) exactly as written there,
so CI runs what a user copies: the fenced bash blocks of the section "The two commands"."""

from __future__ import annotations

import re
import sys
from pathlib import Path


def commands(readme: str) -> dict[str, str]:
    section = readme.split("## The two commands", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, flags=re.S)
    if len(blocks) != 2:
        raise SystemExit(f"README: expected 2 bash blocks in 'The two commands', found {len(blocks)}")
    return {"main": blocks[0].strip(), "test": blocks[1].strip()}


if __name__ == "__main__":
    text = Path(__file__).resolve().parent.parent.joinpath("README.md").read_text("utf-8")
    print(commands(text)[sys.argv[1]])
