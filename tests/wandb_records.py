"""Test helper: read an offline W&B run back from its ``.wandb`` file.

wandb >= 0.19 writes the file from its Go core and no longer ships a Python reader, so this reads
the format directly: a 7-byte header (``:W&B``, magic, version), then LevelDB log blocks of 32 KiB
whose chunks (7-byte header: CRC, length, type FULL/FIRST/MIDDLE/LAST) hold serialized
``wandb_internal_pb2.Record`` messages.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wandb.proto import wandb_internal_pb2 as pb

BLOCK, HEADER = 32768, 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: str | Path) -> list[pb.Record]:
    """Every record of a ``.wandb`` file, in order."""
    data = Path(path).read_bytes()
    if data[:4] != b":W&B":
        raise ValueError(f"{path} is not a W&B run file")
    out, pos, pending = [], HEADER, b""
    while pos + HEADER <= len(data):
        room = BLOCK - pos % BLOCK
        if room < HEADER:  # block trailer: padding
            pos += room
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + HEADER])
        chunk = data[pos + HEADER : pos + HEADER + length]
        pos += HEADER + length
        if kind == 0 and length == 0:
            continue
        pending = chunk if kind in (FULL, FIRST) else pending + chunk
        if kind in (FULL, LAST):
            record = pb.Record()
            record.ParseFromString(pending)
            out.append(record)
    return out


def _key(item: Any) -> str:
    return item.key or "/".join(item.nested_key)


@dataclass
class OfflineRun:
    """What a dashboard would show of one offline run file."""

    id: str = ""
    name: str = ""
    group: str = ""
    tags: list[str] = field(default_factory=list)
    notes: str = ""
    history: dict[str, list[Any]] = field(default_factory=dict)  # key -> values in logged order
    summary: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    exit_code: int | None = None
    preempting: bool = False
    artifacts: list[tuple[str, str]] = field(default_factory=list)  # (type, name) of logged artifacts


def read_run(path: str | Path) -> OfflineRun:
    """The run, history, summary, config and exit record of a ``.wandb`` file (or its run directory)."""
    path = Path(path)
    if path.is_dir():
        (path,) = path.glob("run-*.wandb")
    run = OfflineRun()
    for r in records(path):
        kind = r.WhichOneof("record_type")
        if kind == "run":
            run.id, run.name, run.group = r.run.run_id, r.run.display_name, r.run.run_group
            run.tags, run.notes = list(r.run.tags), r.run.notes
            for item in r.run.config.update:
                run.config[_key(item)] = json.loads(item.value_json)
        elif kind == "history":
            for item in r.history.item:
                run.history.setdefault(_key(item), []).append(json.loads(item.value_json))
        elif kind == "summary":
            for item in r.summary.update:
                run.summary[_key(item)] = json.loads(item.value_json)
        elif kind == "config":
            for item in r.config.update:
                run.config[_key(item)] = json.loads(item.value_json)
        elif kind == "exit":
            run.exit_code = r.exit.exit_code
        elif kind == "preempting":
            run.preempting = True
        elif kind == "artifact":
            run.artifacts.append((r.artifact.type, r.artifact.name))
    return run
