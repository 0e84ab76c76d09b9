"""Where commands run and knob files live: this machine now; a VM guest or ssh later.

The runner never touches the system directly: it asks an Executor to run a command or to
read and write a file. ``LocalExecutor(sysfs_root=...)`` is the test seam: pointed at a
directory made in a test, every knob read and write lands there.
"""

from __future__ import annotations

import errno
import os
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from dpas.real.stop import run_child


class Executor(Protocol):
    sysfs_root: Path

    def run(self, argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]: ...

    def read(self, path: Path) -> str: ...

    def write(self, path: Path, text: str) -> None: ...

    def exists(self, path: Path) -> bool: ...

    def kernel_release(self) -> str: ...


@dataclass
class LocalExecutor:
    """This machine. ``sysfs_root`` replaces /sys for every knob path (a test seam)."""

    sysfs_root: Path = Path("/sys")
    release: str | None = None  # a kernel release to report instead of uname's (a test seam)

    def run(self, argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
        """In a process group of its own, which a stopping signal ends (dpas.real.stop)."""
        return run_child(argv, timeout)

    def read(self, path: Path) -> str:
        with open(open_regular(path, os.O_RDONLY), encoding="utf-8") as f:
            return f.read()

    def write(self, path: Path, text: str) -> None:
        # sysfs wants one write() of the whole value
        with open(open_regular(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), "w") as f:
            f.write(text)

    def exists(self, path: Path) -> bool:
        return path.exists()

    def kernel_release(self) -> str:
        return self.release or os.uname().release


def open_regular(path: Path, flags: int) -> int:
    """A descriptor of ``path`` opened without blocking, or OSError where it is not a regular
    file (a sysfs knob and a journal are): a FIFO in its place would hang a plain open until
    something wrote to it (or read it), and a device node is not ours to touch."""
    fd = os.open(path, flags | os.O_NONBLOCK | os.O_CLOEXEC, 0o644)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, "not a regular file", str(path))
    return fd
