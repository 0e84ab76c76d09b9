"""One run per device at a time: an flock held for the whole run.

The lock file is named after the device's queue (or the target itself when its queue is not
known), so runs with different journals still meet. The kernel drops an flock when its holder
dies, however it dies, so a crashed run never leaves a stale lock; its pid is kept in the file
only to name it to the run that was refused.
"""

from __future__ import annotations

import errno
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
    the pid of a live run that holds it, without taking it. One object is re-entrant: a
    sweep holds its device throughout, and each of its runs takes the same lock again."""

    def __init__(self, key: str, what: str, folder: Path | None = None) -> None:
        digest = hashlib.sha256(key.encode()).hexdigest()[:16]
        self.path = (folder or lock_dir()) / f"dpas-{digest}.lock"
        self.key, self.what = key, what
        self._fd: int | None = None
        self._held = False
        self._depth = 0  # blocks of this object holding it

    def _open(self) -> int:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as err:
            raise Busy(f"lock {self.path}: {err.strerror or err}") from None
        return fd

    @property
    def held_path(self) -> Path:
        """Without file locking (a kernel built without it): a file made with O_EXCL."""
        return self.path.with_suffix(".held")

    def holder(self) -> int | None:
        """The pid of the live run holding the device, or None when it is free."""
        fd = self._open()
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _pid(fd)
        except OSError as err:
            if err.errno != errno.ENOSYS:
                raise
            return self._held_by()
        finally:
            os.close(fd)
        return None

    def _held_by(self) -> int | None:
        """The live pid in the O_EXCL file, if any (a dead one's file is stale)."""
        try:
            fd = os.open(self.held_path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            pid = _pid(fd)
        finally:
            os.close(fd)
        return pid if pid is not None and _alive(pid) else None

    def _take_without_flock(self, fd: int) -> None:
        """O_EXCL creation is atomic where flock does not exist; a dead holder's file goes."""
        for _ in range(2):
            try:
                held = os.open(self.held_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            except FileExistsError:
                pid = self._held_by()
                if pid is not None:
                    os.close(fd)
                    raise Busy(
                        f"{self.what} is in use by another dpas run (pid {pid}); "
                        "one run per device at a time"
                    ) from None
                self.held_path.unlink(missing_ok=True)
                continue
            os.write(held, f"{os.getpid()}\n".encode())
            os.close(held)
            self._held = True
            return
        os.close(fd)
        raise Busy(f"lock {self.held_path}: could not be taken")

    def __enter__(self) -> DeviceLock:
        if self._depth:
            self._depth += 1
            return self
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
        except OSError as err:
            if err.errno != errno.ENOSYS:
                os.close(fd)
                raise Busy(f"lock {self.path}: {err.strerror or err}") from None
            self._take_without_flock(fd)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n{self.key}\n".encode(), 0)
        self._fd = fd
        self._depth = 1
        return self

    def __exit__(self, *exc: object) -> None:
        self._depth = max(self._depth - 1, 0)
        if self._depth:
            return
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None
        if self._held:
            self.held_path.unlink(missing_ok=True)
            self._held = False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _pid(fd: int) -> int | None:
    first = os.pread(fd, 64, 0).split(b"\n", 1)[0]
    return int(first) if first.isdigit() else None
