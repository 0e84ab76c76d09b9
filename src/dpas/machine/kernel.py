"""What the running kernel can do for polling (docs/reference.md section 7)."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Kernel:
    release: str
    version: tuple[int, int]

    @classmethod
    def parse(cls, release: str) -> Kernel:
        m = re.match(r"(\d+)\.(\d+)", release)
        if m is None:
            raise ValueError(f"kernel release {release!r}: expected MAJOR.MINOR...")
        return cls(release, (int(m[1]), int(m[2])))

    @property
    def sync_hipri_polls(self) -> bool:
        """Up to 5.18, preadv2(RWF_HIPRI) polls; from 5.19 only io_uring IOPOLL does."""
        return self.version <= (5, 18)

    @property
    def block_hybrid_polling(self) -> bool:
        """queue/io_poll_delay (Linux hybrid polling) exists before 6.4."""
        return self.version < (6, 4)

    @property
    def io_uring_hybrid_polling(self) -> bool:
        """IORING_SETUP_HYBRID_IOPOLL exists from 6.13."""
        return self.version >= (6, 13)
