"""A newc cpio archive (the initramfs format), written directly: no cpio tool needed."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO


def _header(out: BinaryIO, name: str, mode: int, size: int, ino: int, nlink: int = 1) -> None:
    fields = [ino, mode, 0, 0, nlink, 0, size, 0, 0, 0, 0, len(name) + 1, 0]
    out.write(b"070701" + b"".join(f"{f:08X}".encode() for f in fields))
    out.write(name.encode() + b"\0")
    out.write(b"\0" * (-(110 + len(name) + 1) % 4))


class Cpio:
    """Entries added one by one; directories are created on demand."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.ino = 1
        self.dirs: set[str] = set()

    def _parents(self, name: str) -> None:
        parts = name.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            self.dir("/".join(parts[:i]))

    def dir(self, name: str) -> None:
        if not name or name in self.dirs:
            return
        self.dirs.add(name)
        self._parents(name)
        self.ino += 1
        _header(self.out, name, stat.S_IFDIR | 0o755, 0, self.ino, 2)

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        self._parents(name)
        self.ino += 1
        _header(self.out, name, stat.S_IFREG | mode, len(data), self.ino)
        self.out.write(data)
        self.out.write(b"\0" * (-len(data) % 4))

    def symlink(self, name: str, target: str) -> None:
        self._parents(name)
        self.ino += 1
        data = target.encode()
        _header(self.out, name, stat.S_IFLNK | 0o777, len(data), self.ino)
        self.out.write(data)
        self.out.write(b"\0" * (-len(data) % 4))

    def copy(self, source: Path, name: str | None = None) -> None:
        """A host file into the archive at the same path (or ``name``), links resolved."""
        real = source.resolve()
        mode = os.stat(real).st_mode & 0o777
        self.file(name or str(source).lstrip("/"), real.read_bytes(), mode)

    def close(self) -> None:
        _header(self.out, "TRAILER!!!", 0, 0, 0)
        self.out.write(b"\0" * (-self.out.tell() % 512))
