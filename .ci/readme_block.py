"""Print a fenced code block of README.md that follows a ``<!-- ci:NAME ... -->`` marker.

``python3 .ci/readme_block.py setup`` prints the README's setup-and-run command, so that CI runs
exactly what a new user copies (the two cannot drift apart). Standard library only: it runs before
any venv exists.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_block(name: str, text: str | None = None) -> str:
    """The body of the first fenced block after the ``<!-- ci:NAME`` marker."""
    text = README.read_text() if text is None else text
    match = re.search(rf"<!-- ci:{re.escape(name)}\b[^>]*-->\s*\n```[a-z]*\n(.*?)\n```", text, re.S)
    if match is None:
        raise SystemExit(f"README.md has no code block marked <!-- ci:{name} -->")
    return match.group(1)


if __name__ == "__main__":
    print(readme_block(sys.argv[1]))
