"""Read and write the reference project's dataset format.

Each line is ``count|<input prefix><TAB><output prefix>``: ``count`` is how many times the pair
was generated (unused for training), the two sides are space-separated prefix tokens, e.g.::

    3|sub Y' mul INT+ 2 x	pow x INT+ 2

Lines without ``count|`` (the reference's raw ``data.prefix`` export) are read with count 1.
Reading then writing a file reproduces it byte for byte (for a file whose lines all have counts
and end with a newline).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class ReferencePair:
    """One line of a reference-format file (``line``: its 1-based number in the file, 0 if unknown)."""

    count: int
    source: str
    target: str
    line: int = field(default=0, compare=False)


def parse_line(line: str, where: str = "line", number: int = 0) -> ReferencePair:
    """One ``count|input<TAB>output`` line; ``ValueError`` naming ``where`` when malformed."""
    text = line.rstrip("\n").rstrip("\r")
    count = 1
    head, bar, rest = text.partition("|")
    if bar and head.strip().isdigit():
        count, text = int(head), rest
    elif bar:
        raise ValueError(
            f"{where}: expected 'count|input<TAB>output', the part before '|' is not a count: {head[:40]!r}"
        )
    parts = text.split("\t")
    if len(parts) != 2:
        raise ValueError(f"{where}: expected one TAB between input and output, found {len(parts) - 1}")
    source, target = parts[0].strip(), parts[1].strip()
    if not source or not target:
        raise ValueError(f"{where}: empty input or output")
    return ReferencePair(count, source, target, number)


def read_reference(path: str | Path, limit: int | None = None) -> Iterator[ReferencePair]:
    """The pairs of a reference-format file (first ``limit`` lines when given); blank lines skipped."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"reference-format file {path} does not exist")
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if limit is not None and number > limit:
                return
            if line.strip():
                yield parse_line(line, where=f"{path}:{number}", number=number)


def format_line(pair: ReferencePair) -> str:
    """The reference-format text of one pair (no newline)."""
    if "\t" in pair.source or "\t" in pair.target or "\n" in pair.source + pair.target:
        raise ValueError(f"input/output must not contain TAB or newline: {pair.source[:40]!r}")
    return f"{pair.count}|{pair.source}\t{pair.target}"


def write_reference(path: str | Path, pairs: Iterable[ReferencePair | tuple[int, str, str]]) -> int:
    """Write pairs (atomically) in the reference format; returns the number of lines."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    n = 0
    try:
        with tmp.open("w", encoding="utf-8", newline="\n") as f:
            for p in pairs:
                f.write(format_line(p if isinstance(p, ReferencePair) else ReferencePair(*p)) + "\n")
                n += 1
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return n
