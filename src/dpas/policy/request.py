"""What a policy knows about an I/O: its direction, its size, and the statistics bucket."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

SECTOR_BYTES = 512
#: The block layer keeps 16 statistics buckets; larger requests share the last pair.
STATS_BUCKETS = 16
#: bucket() returns this for a request the hybrid path must not sleep for.
NO_BUCKET = -1


class Op(IntEnum):
    """Data direction; the value is the kernel's ddir."""

    READ = 0
    WRITE = 1

    @classmethod
    def parse(cls, text: str) -> Op:
        """Accept fio's and bench.sh's spellings: read/randread/R, write/randwrite/W."""
        key = text.strip().lower()
        if key in ("r", "read", "randread"):
            return cls.READ
        if key in ("w", "write", "randwrite"):
            return cls.WRITE
        raise ValueError(f"op {text!r}: expected read, randread, R, write, randwrite or W")


@dataclass(frozen=True, slots=True)
class Request:
    """A synchronous direct I/O: direction and size in bytes."""

    op: Op
    size: int

    def __post_init__(self) -> None:
        if self.size < 0:
            raise ValueError(f"request size {self.size}: expected bytes >= 0")


@dataclass(frozen=True, slots=True)
class Bucketing:
    """How the statistics bucket of a request is computed (reference section 2 and 5.1).

    ``stats_sectors_bug`` reproduces the unpatched kernel, which read the sector count that
    the block layer records only when the queue collects statistics (``queue_stats``, set by
    e.g. write-back throttling). With the bug on and no statistics, every request lands in
    no bucket and PAS/DPAS never engage ("pas io: 0"). Off by default: the lab's fix 1.
    """

    stats_sectors_bug: bool = False
    queue_stats: bool = False

    def bucket(self, request: Request) -> int:
        if self.stats_sectors_bug and not self.queue_stats:
            return NO_BUCKET
        return bucket_of(request.op, request.size // SECTOR_BYTES)


def bucket_of(op: Op, sectors: int) -> int:
    """bucket = ddir + 2*ilog2(sectors); below 0 means no bucket; capped at the last pair."""
    # ilog2 at run time is fls(n) - 1, so ilog2(0) = -1 and zero sectors fall below bucket 0
    bucket = op + 2 * (sectors.bit_length() - 1)
    if bucket < 0:
        return NO_BUCKET
    if bucket >= STATS_BUCKETS:
        return op + STATS_BUCKETS - 2
    return bucket
