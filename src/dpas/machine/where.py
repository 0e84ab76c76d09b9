"""Where the machine's facts are read: a sysfs and a proc root, the real ones or a test's."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


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
