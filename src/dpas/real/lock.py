"""One run per device at a time: an flock held for the whole run.

The lock file is named after the device's queue (or the target itself when its queue is not
known), so runs with different journals still meet. The kernel drops an flock when its holder
dies, however it dies, so a crashed run never leaves a stale lock; its pid is kept in the file
only to name it to the run that was refused.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
from pathlib import Path

from dpas.errors import DpasError


class Busy(DpasError):
    """Another live run holds this device."""


def lock_dir() -> Path:
    """/run/lock where it can be used (shared by every user), else the temporary folder."""
    run_lock = Path("/run/lock")
    if run_lock.is_dir() and os.access(run_lock, os.W_OK):
        return run_lock
    return Path(tempfile.gettempdir())


class DeviceLock:
    """``with DeviceLock(key, what):`` holds the device for the block; ``holder()`` names
    the pid of a live run that holds it, without taking it."""

    def __init__(self, key: str, what: str, folder: Path | None = None) -> None:
        digest = hashlib.sha256(key.encode()).hexdigest()[:16]
        self.path = (folder or lock_dir()) / f"dpas-{digest}.lock"
        self.key, self.what = key, what
        self._fd: int | None = None

    def _open(self) -> int:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as err:
            raise Busy(f"lock {self.path}: {err.strerror or err}") from None
        return fd

    def holder(self) -> int | None:
        """The pid of the live run holding the device, or None when it is free."""
        fd = self._open()
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _pid(fd)
        finally:
            os.close(fd)
        return None

    def __enter__(self) -> DeviceLock:
        fd = self._open()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _pid(fd)
            os.close(fd)
            raise Busy(
                f"{self.what} is in use by another dpas run (pid {pid or 'unknown'}); "
                "one run per device at a time"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n{self.key}\n".encode(), 0)
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None


def _pid(fd: int) -> int | None:
    first = os.pread(fd, 64, 0).split(b"\n", 1)[0]
    return int(first) if first.isdigit() else None
