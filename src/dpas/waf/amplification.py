"""Write amplification from the indirection unit (IU): what a drive writes to media for the
host's writes, when it maps logical blocks to media in units of ``iu`` bytes.

A write that does not start and end on IU boundaries makes the drive read, merge and write the
whole partial units at either end (a read-modify-write), so the media bytes of one write are

    media = round_up(offset + length, iu) - round_down(offset, iu)

and WAF_IU = sum(media) / sum(length) over the writes. It depends on the host's offsets and
lengths alone (docs/waf.md: the formula and its source). Everything is exact integer arithmetic;
a ratio is only formed where it is shown.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from dpas.errors import LimitError
from dpas.limits import BS_SECTOR as SECTOR
from dpas.sizes import show_size

#: the largest IU and length dpas takes (1 GiB): far beyond any drive's IU
MAX_IU = 1 << 30


def check_iu(iu: int) -> int:
    """``iu`` if it is 512 B times a power of two (a drive's IU is), else a LimitError."""
    if iu < SECTOR or iu > MAX_IU or iu & (iu - 1):
        raise LimitError(
            f"--iu {show_size(iu)}: expected a power of two from 512 to 1g bytes "
            "(512, 4k, 16k, 64k...)"
        )
    return iu


def media_bytes(offsets: np.ndarray, lengths: np.ndarray, iu: int) -> np.ndarray:
    """Per write, the bytes the drive writes to media: the whole IUs the write touches."""
    offsets = np.asarray(offsets, dtype=np.int64)
    ends = offsets + np.asarray(lengths, dtype=np.int64)
    return -(-ends // iu) * iu - offsets // iu * iu


@dataclass(frozen=True, slots=True)
class Amplification:
    """The writes of one trace against one IU (counts and bytes exact)."""

    iu: int
    writes: int
    logical: int
    media: int
    #: writes whose start is not on an IU boundary but whose end is; end only; both
    start_only: int
    end_only: int
    both: int

    @property
    def waf(self) -> Fraction:
        """media / logical, exactly."""
        return Fraction(self.media, self.logical)

    @property
    def aligned(self) -> int:
        """Writes aligned at both ends (they cost nothing extra)."""
        return self.writes - self.start_only - self.end_only - self.both


def amplification(
    offsets: np.ndarray, lengths: np.ndarray, iu: int, counts: np.ndarray | None = None
) -> Amplification:
    """The tally of ``offsets``/``lengths`` (bytes, one entry per write) for ``iu``; with
    ``counts``, entry i stands for ``counts[i]`` writes alike (a run's writes counted by
    offset modulo the IU, in memory that does not grow with the run)."""
    offsets = np.asarray(offsets, dtype=np.int64)
    lengths = np.asarray(lengths, dtype=np.int64)
    weight = np.ones_like(offsets) if counts is None else np.asarray(counts, dtype=np.int64)
    start = offsets % iu != 0
    end = (offsets + lengths) % iu != 0
    return Amplification(
        iu=iu,
        writes=int(weight.sum()),
        logical=int((lengths * weight).sum()),
        media=int((media_bytes(offsets, lengths, iu) * weight).sum()),
        start_only=int(weight[start & ~end].sum()),
        end_only=int(weight[~start & end].sum()),
        both=int(weight[start & end].sum()),
    )


@dataclass(frozen=True, slots=True)
class SizeShare:
    """One I/O size of a trace: its writes, and its bytes written and to media."""

    length: int
    writes: int
    logical: int
    media: int

    @property
    def waf(self) -> Fraction:
        """media / logical of this size's writes, exactly."""
        return Fraction(self.media, self.logical)


def by_size(offsets: np.ndarray, lengths: np.ndarray, iu: int) -> list[SizeShare]:
    """The writes grouped by length (ascending), each with the media bytes it costs."""
    lengths = np.asarray(lengths, dtype=np.int64)
    media = media_bytes(offsets, lengths, iu)
    sizes, index = np.unique(lengths, return_inverse=True)
    counts = np.bincount(index, minlength=sizes.size)
    # sums of int64 by group, exact (np.bincount's weights would go through float64)
    media_sum = np.zeros(sizes.size, dtype=np.int64)
    np.add.at(media_sum, index, media)
    return [
        SizeShare(int(n), int(c), int(n) * int(c), int(m))
        for n, c, m in zip(sizes, counts, media_sum, strict=True)
    ]


def worst_media(length: int, iu: int, align: int = SECTOR) -> int:
    """The most media bytes one write of ``length`` can cost, over every start offset that is
    a multiple of ``align``: a start ``align`` short of a boundary spans the most units."""
    # the write covers [s, s + length) with s = k*iu + r; the units touched are
    # ceil((r + length) / iu), largest for the largest r < iu that is a multiple of align
    r = iu - align if align < iu else 0
    return -(-(r + length) // iu) * iu


def worst_waf(length: int, iu: int, align: int = SECTOR) -> Fraction:
    """WAF_IU of the worst-placed write of ``length`` bytes (``worst_media`` / length)."""
    return Fraction(worst_media(length, iu, align), length)
