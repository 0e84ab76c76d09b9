"""Where the machine's facts are read: a sysfs and a proc root, the real ones or a test's."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


def block_name(spec: str) -> bool:
    """Whether ``spec`` can name a block device in /sys/block: a plain file name. "" and ".."
    cannot (/sys/block/.. is a folder too, and /dev/.. is /)."""
    return bool(spec.strip()) and "/" not in spec and "\0" not in spec and spec not in (".", "..")


@dataclass(frozen=True, slots=True)
class Where:
    """The roots the checks read from: the real ones, or a test's."""

    sysfs: Path = Path("/sys")
    proc: Path = Path("/proc")

    def read(self, path: Path) -> str | None:
        try:
            return path.read_text().strip()
        except OSError:
            return None
