"""A task read from files: any CSV/TSV/JSONL/Parquet with a source and a target column."""

from __future__ import annotations

import csv
import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from symlit.core.config import digest
from symlit.tasks.base import Rows, Task, Verdict, check_fractions, exact_match

log = logging.getLogger(__name__)


Row = tuple[int, dict[str, Any]]
"""A data row and the line (CSV/TSV/JSONL) or row number (JSON, Parquet) it came from."""


def _read_delimited(path: str, sep: str) -> tuple[list[str], list[Row]]:
    """Header and rows with their line numbers, every field as the literal text in the file (no '02'
    -> 2.0, no 'NA' -> missing). A row with another number of fields than the header keeps ``None``
    for the fields it lacks and ``"__extra__"`` for surplus ones, so that validation can name it."""
    with open(path, newline="") as f:
        reader = csv.reader(f, delimiter=sep)
        header = next(reader, [])
        rows = []
        for fields in reader:
            if not fields:  # a blank line
                continue
            row: dict[str, Any] = dict(zip(header, fields))
            if len(fields) > len(header):
                row["__extra__"] = fields[len(header) :]
            rows.append((reader.line_num, row))
    return header, rows


def _read_dataset(path: str, kind: str) -> tuple[list[str], list[Row]]:
    from datasets import Dataset  # heavy: imported when a JSON or Parquet file is read

    data = Dataset.from_json(path) if kind == "json" else Dataset.from_parquet(path)
    return data.column_names, [(i, row) for i, row in enumerate(data, start=1)]


READERS = {
    ".csv": lambda p: _read_delimited(p, ","),
    ".tsv": lambda p: _read_delimited(p, "\t"),
    ".jsonl": lambda p: _read_dataset(p, "json"),
    ".json": lambda p: _read_dataset(p, "json"),
    ".parquet": lambda p: _read_dataset(p, "parquet"),
}


def _bucket(text: str) -> float:
    """A deterministic number in [0, 1) from the text, so equal sources land in the same split."""
    return int.from_bytes(hashlib.sha1(text.encode()).digest()[:8], "big") / 2**64


def _problem(row: dict[str, Any], header: list[str], columns: tuple[str, str]) -> str | None:
    """What is wrong with a data row, or ``None``."""
    if "__extra__" in row:
        return f"{len(header) + len(row['__extra__'])} fields where the header has {len(header)}"
    for column in columns:
        value = row.get(column)
        if value is None:
            return f"no {column!r} field"
        if not str(value).strip():
            return f"empty {column!r}"
    return None


def read_pairs(
    path: str,
    key: str,
    source_column: str = "source",
    target_column: str = "target",
    skip_bad_rows: bool = False,
    prefix: str | None = "data.task.",
) -> Rows:
    """The validated ``source``/``target`` pairs of a CSV/TSV/JSONL/JSON/Parquet file, which the
    config key ``key`` names (``data.task.train``, ``split_file``...). A bad row is an error naming
    the file, the line and the problem, or, with ``skip_bad_rows``, skipped and counted in a warning.
    ``prefix``: where the column and skip settings live in the config, for the error messages
    (``None``: nowhere, the columns are fixed)."""
    where = f"{key}={path}"
    suffix = Path(path).suffix.lower()
    if suffix not in READERS:
        raise ValueError(f"{where}: unsupported extension; use one of {sorted(READERS)}")
    if not Path(path).is_file():
        raise FileNotFoundError(f"{where} does not exist")
    if Path(path).stat().st_size == 0:
        raise ValueError(f"{where} is empty; it needs a header ({source_column},{target_column}) and at least one row")
    header, rows = READERS[suffix](path)
    missing = [c for c in (source_column, target_column) if c not in header]
    if missing:
        raise ValueError(
            f"{where} has no column(s) {missing} (columns: {header}); "
            + (f"set {prefix}source_column / {prefix}target_column" if prefix is not None else "rename its columns")
        )
    unit = "line" if suffix in (".csv", ".tsv", ".jsonl") else "row"
    out: Rows = {"source": [], "target": []}
    skipped: list[str] = []
    for number, row in rows:
        problem = _problem(row, header, (source_column, target_column))
        if problem is not None:
            if not skip_bad_rows:
                fix = "" if prefix is None else f", or set {prefix}skip_bad_rows=true to skip bad rows"
                raise ValueError(f"{path}, {unit} {number}: {problem}; fix or remove the row{fix}")
            skipped.append(f"{unit} {number}: {problem}")
            continue
        out["source"].append(str(row[source_column]))
        out["target"].append(str(row[target_column]))
    if skipped:
        log.warning("%s: skipped %d bad rows (skip_bad_rows=true), e.g. %s", path, len(skipped), skipped[0])
    if not out["source"]:
        raise ValueError(
            f"{where} has no data rows{' left after skipping bad rows' if skipped else ''}; "
            f"add ({source_column}, {target_column}) rows below the header"
        )
    return out


@dataclass
class FileTask(Task):
    """Pairs read from files; token sequences are the whitespace-separated column text.

    ``train`` is required. A missing ``valid`` or ``test`` file is carved out of ``train`` by a
    hash of the source text (``valid_fraction``, ``test_fraction``), so a source never appears in
    two splits. ``extra_tests`` maps more test split names to files. Answers are checked by
    exact token match.

    Every row is validated when the data is built: a row without a source or target (an empty
    field, fewer or more fields than the header, a null) is an error naming the file, the line
    and the problem, or, with ``skip_bad_rows``, is skipped and counted in a warning.
    """

    train: str = "???"
    valid: str | None = None
    test: str | None = None
    extra_tests: dict[str, str] = field(default_factory=dict)
    source_column: str = "source"
    target_column: str = "target"
    valid_fraction: float = 0.05
    test_fraction: float = 0.05
    tokenizer: str = "word"
    bpe_vocab_size: int = 1000
    skip_bad_rows: bool = False

    def __post_init__(self) -> None:
        self.extra_tests = {str(k): str(v) for k, v in dict(self.extra_tests).items()}
        reserved = set(self.extra_tests) & {"train", "valid", "test"}
        if reserved:
            raise ValueError(f"data.task.extra_tests cannot be named {sorted(reserved)}; use data.task.{min(reserved)}")
        if self.tokenizer not in ("word", "bpe"):
            raise ValueError(f"data.task.tokenizer={self.tokenizer!r} must be 'word' or 'bpe'")
        check_fractions(self.valid_fraction, self.test_fraction)
        for key, path in self.data_paths().items():
            if Path(path).suffix.lower() not in READERS:
                raise ValueError(f"data.task.{key}={path}: unsupported extension; use one of {sorted(READERS)}")

    @property
    def tokenizer_kind(self) -> str:  # type: ignore[override]
        return self.tokenizer

    def data_paths(self) -> dict[str, str]:
        files = {"train": self.train, "valid": self.valid, "test": self.test}
        files.update({f"extra_tests.{k}": v for k, v in self.extra_tests.items()})
        return {k: v for k, v in files.items() if v is not None}

    def fingerprint(self) -> str:
        """Configuration plus each file's path, size and modification time: an edited file is re-read."""
        stats = {k: [str(p), p.stat().st_size, p.stat().st_mtime_ns] for k, p in self.check_data().items()}
        return digest({"base": super().fingerprint(), "files": stats})

    def _read(self, key: str, path: str) -> Rows:
        return read_pairs(path, f"data.task.{key}", self.source_column, self.target_column, self.skip_bad_rows)

    def build(self) -> dict[str, Rows]:
        self.check_data()
        train = self._read("train", self.train)
        splits: dict[str, Rows] = {}
        carve = {"valid": self.valid is None, "test": self.test is None}
        if any(carve.values()):
            keep: Rows = {"source": [], "target": []}
            held: dict[str, Rows] = {k: {"source": [], "target": []} for k, c in carve.items() if c}
            for s, t in zip(train["source"], train["target"]):
                u = _bucket(s)
                dest = keep
                if carve["valid"] and u < self.valid_fraction:
                    dest = held["valid"]
                elif carve["test"] and 1.0 - u <= self.test_fraction:
                    dest = held["test"]
                dest["source"].append(s)
                dest["target"].append(t)
            train = keep
            splits.update(held)
        splits["train"] = train
        if self.valid is not None:
            splits["valid"] = self._read("valid", self.valid)
        if self.test is not None:
            splits["test"] = self._read("test", self.test)
        for name, path in self.extra_tests.items():
            splits[name] = self._read(f"extra_tests.{name}", path)
        train_sources = set(splits["train"]["source"])
        for name, split in splits.items():
            overlap = 0 if name == "train" else sum(s in train_sources for s in split["source"])
            if overlap:
                log.warning("%d of %d sources of split %r also appear in train", overlap, len(split["source"]), name)
        return splits

    def verify(self, source: str, target: str, hypothesis: str) -> Verdict:
        return Verdict.of(exact_match(target, hypothesis), "exact")
