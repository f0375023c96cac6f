"""Checkpoint writes: atomic, written once next to their destination, and nothing left by a failed save."""

from __future__ import annotations

import os
import resource
import signal
import sys
from pathlib import Path

import pytest
import torch

from symlit.training.callbacks import AtomicCheckpointIO

_WRITES: list[Path] | None = None  # files opened for writing while a test records them


def _record_writes(event: str, args: tuple) -> None:
    if _WRITES is None or event != "open" or not isinstance(args[0], (str, bytes, os.PathLike)):
        return
    mode, flags = args[1], args[2]
    writing = any(c in mode for c in "wax+") if isinstance(mode, str) else bool(flags & (os.O_WRONLY | os.O_RDWR))
    if writing:
        _WRITES.append(Path(os.fsdecode(args[0])).resolve())


sys.addaudithook(_record_writes)  # audit hooks cannot be removed; it records only inside the test below


def test_a_save_that_fills_the_disk_leaves_the_old_checkpoint_and_no_temporary_file(tmp_path):
    global _WRITES
    checkpoints = tmp_path / "checkpoints"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"w": torch.ones(10)}, checkpoints / "last.ckpt")
    before = (checkpoints / "last.ckpt").read_bytes()
    big = {"w": torch.zeros(2_000_000)}  # 8 MB

    # a full disk: writes past 1 MB fail (EFBIG from the file-size limit instead of ENOSPC)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, hard))
    try:
        with pytest.raises((OSError, RuntimeError), match="File too large|unexpected pos"):  # torch wraps EFBIG
            io.save_checkpoint(big, checkpoints / "last.ckpt")
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, handler)
    assert [p.name for p in checkpoints.iterdir()] == ["last.ckpt"]
    assert (checkpoints / "last.ckpt").read_bytes() == before

    _WRITES = []
    try:
        io.save_checkpoint(big, checkpoints / "last.ckpt")
        written = list(_WRITES)
    finally:
        _WRITES = None
    # written once, into a temporary sibling on the same file system (no copy from the system temp dir)
    assert written == [(checkpoints / f".last.ckpt.tmp-{os.getpid()}").resolve()]
    assert torch.equal(torch.load(checkpoints / "last.ckpt", weights_only=True)["w"], big["w"])
    assert [p.name for p in checkpoints.iterdir()] == ["last.ckpt"]
