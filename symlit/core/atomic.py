"""Crash-safe files: atomic writes (a killed job leaves the old file or the new one, never half of
one) and an exclusive lock on a run directory."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import IO

log = logging.getLogger(__name__)


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "wb") -> Iterator[IO]:
    """A file to write ``path`` through: a temporary sibling (same file system, so the data is
    written once), renamed into place when the block ends, removed if it raises."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a full disk or a failed serialisation leaves nothing behind
        raise


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_open`)."""
    with atomic_open(path, "w") as f:
        f.write(text)


class DirectoryLocked(RuntimeError):
    """Another live process holds the directory's lock."""


class DirectoryLock:
    """An exclusive ``flock`` on ``<directory>/.lock``, which names the holder's PID and host.

    The kernel drops the lock when its process exits, however it dies, so a lock left by a killed
    job never blocks a rerun (also on another node of a shared file system that supports locks).
    """

    def __init__(self, directory: str | Path, what: str = "directory") -> None:
        self.path = Path(directory) / ".lock"
        self.what = what
        self._fd: int | None = None

    def __enter__(self) -> DirectoryLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 200).decode(errors="replace").strip() or "pid ? on host ?"
            os.close(fd)
            raise DirectoryLocked(
                f"{self.path.parent} is in use by another {self.what} ({holder}); wait for it to finish, "
                "stop it, or choose another run_name"
            ) from None
        except OSError as err:  # a file system without locks: run unprotected rather than not at all
            if err.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                os.close(fd)
                raise
            log.warning("%s: file locks are not supported here (%s); not locking", self.path, err)
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on host {socket.gethostname()}\n".encode())
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            os.close(self._fd)  # releases the lock; the file stays (deleting it would race a new holder)
            self._fd = None
