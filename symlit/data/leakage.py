"""Leakage report: how much of each evaluation split a model could answer from memory of train.

For each split other than ``train`` it counts the rows whose

* ``source`` occurs verbatim in train (``same_source``);
* ``target`` occurs verbatim in train (``same_target``: natural for small answer spaces, e.g.
  sums, but for QED it means the squared amplitude was seen);
* canonical key occurs in train, at every level the task defines
  (:meth:`symlit.tasks.base.Task.canonical_key`; ``same_key``).

The report is computed when a dataset is built, stored next to it (``leakage.json``), copied to the
run directory, logged to the loggers (W&B) and printed in one line when training starts. With
``data.leak_free`` set, any overlap at the checked level (and any shared source) is an error.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from symlit.tasks.base import Task

log = logging.getLogger(__name__)
REPORT = "leakage.json"


def _keys(task: Task, sources: Sequence[str], targets: Sequence[str]) -> list[dict[str, str]]:
    return [task.canonical_key(s, t) for s, t in zip(sources, targets)]


def leakage_report(task: Task, splits: Mapping[str, Mapping[str, Sequence[Any]]]) -> dict[str, Any]:
    """Counts of each evaluation split against ``train`` (see the module docstring)."""
    train = splits["train"]
    train_keys = _keys(task, train["source"], train["target"])
    levels = list(task.key_levels)
    seen = {level: {k[level] for k in train_keys if level in k} for level in levels}
    sources, targets = set(train["source"]), set(train["target"])
    report: dict[str, Any] = {
        "task": task.name,
        "train_rows": len(train["source"]),
        "key_levels": levels,
        "leak_free_level": task.leak_free_level,
        "splits": {},
    }
    for name, rows in splits.items():
        if name == "train":
            continue
        row_keys = _keys(task, rows["source"], rows["target"])
        report["splits"][name] = {
            "rows": len(rows["source"]),
            "same_source": sum(s in sources for s in rows["source"]),
            "same_target": sum(t in targets for t in rows["target"]),
            "same_key": {level: sum(k.get(level) in seen[level] for k in row_keys) for level in levels},
            "no_key": sum(not k for k in row_keys) if levels else 0,
        }
    return report


def summary(report: Mapping[str, Any]) -> str:
    """The report in one line: ``leakage vs train (1396 rows): test 69: 0 same source, ...``."""
    parts = []
    for name, s in report["splits"].items():
        text = f"{name} {s['rows']}: {s['same_source']} same source, {s['same_target']} same target"
        if s["same_key"]:
            text += ", same key " + " ".join(f"{lvl}={n}" for lvl, n in s["same_key"].items())
        parts.append(text)
    return f"leakage vs train ({report['train_rows']} rows) of {report['task']}: " + "; ".join(parts)


def check_leak_free(report: Mapping[str, Any], leak_free: bool | str | None) -> None:
    """Raise ``ValueError`` naming the split and the count when a split configured as leak-free
    (``data.leak_free``: ``true`` = the task's own level, or a level name) overlaps train."""
    if not leak_free:
        return
    level = report["leak_free_level"] if leak_free is True else str(leak_free)
    if level is not None and level not in report["key_levels"]:
        raise ValueError(
            f"data.leak_free={leak_free!r}: the task {report['task']} has key levels "
            f"{report['key_levels']}, not {level!r}"
        )
    for name, s in report["splits"].items():
        if s["same_source"]:
            raise ValueError(
                f"data.leak_free={leak_free!r}: split {name!r} shares {s['same_source']} of "
                f"{s['rows']} sources with train"
            )
        if level is not None and s["same_key"][level]:
            raise ValueError(
                f"data.leak_free={leak_free!r}: split {name!r} shares {s['same_key'][level]} of "
                f"{s['rows']} {level} keys with train; choose a coarser data.task.split_by or "
                "set data.leak_free=false to accept the overlap"
            )


def write(report: Mapping[str, Any], directory: str | Path) -> Path:
    """``<directory>/leakage.json``."""
    path = Path(directory) / REPORT
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1))
    return path


def read(directory: str | Path) -> dict[str, Any] | None:
    """The report stored in ``directory``, if any."""
    path = Path(directory) / REPORT
    return json.loads(path.read_text()) if path.is_file() else None


def metrics(report: Mapping[str, Any]) -> dict[str, float]:
    """Flat numbers for a logger: ``leakage/test/same_target``, ``leakage/test/key_diagram``..."""
    out: dict[str, float] = {}
    for name, s in report["splits"].items():
        out[f"leakage/{name}/rows"] = s["rows"]
        out[f"leakage/{name}/same_source"] = s["same_source"]
        out[f"leakage/{name}/same_target"] = s["same_target"]
        for level, n in s["same_key"].items():
            out[f"leakage/{name}/key_{level}"] = n
    return out


__all__ = ["check_leak_free", "leakage_report", "metrics", "read", "summary", "write"]
