"""WAF_IU of a write run (``--iu``): the media bytes a drive that maps its blocks in units of
``iu`` bytes would write for the run's own writes, from the offsets the backend issued.

Every backend counts with dpas.waf.amplification, the rule's one home. fio's iolog gives every
write's offset and length (``Tally.add_writes``). The engine's loop counts its writes by their
offset's remainder modulo the largest IU asked, per 512-byte unit (``Tally.add_residues``):
a write's media bytes and whether its ends miss an IU boundary depend on its offset only
modulo the IU, and every IU asked divides the largest (all are powers of two), so those counts
give the very totals of the offsets themselves, in memory that does not grow with the run.
"""

from __future__ import annotations

from dataclasses import asdict, fields
from fractions import Fraction
from typing import Any

import numpy as np

from dpas.waf import Amplification, amplification
from dpas.waf.amplification import SECTOR  # the unit of the residue counts (O_DIRECT's offsets)

#: Amplification's counts, the fields a record's entry sums
COUNTS = tuple(f.name for f in fields(Amplification) if f.name != "iu")


def _plus(total: Amplification, part: Amplification) -> Amplification:
    """``total`` and ``part`` (the same IU), field by field."""
    more = {name: getattr(total, name) + getattr(part, name) for name in COUNTS}
    return Amplification(iu=total.iu, **more)


class Tally:
    """One run's writes against each IU of ``ius``, added as the backend reads them."""

    def __init__(self, ius: tuple[int, ...]) -> None:
        self.totals = {iu: Amplification(iu, 0, 0, 0, 0, 0, 0) for iu in sorted(ius)}

    @property
    def span(self) -> int:
        """The largest IU: every other one divides it."""
        return max(self.totals)

    def add_writes(self, offsets: np.ndarray, lengths: np.ndarray) -> None:
        """Writes by offset and length (bytes), one entry each."""
        for iu, total in self.totals.items():
            self.totals[iu] = _plus(total, amplification(offsets, lengths, iu))

    def add_residues(self, counts: np.ndarray, length: int) -> None:
        """Writes of ``length`` bytes counted by offset modulo ``span``: ``counts[k]`` of them
        at a remainder of k sectors."""
        counts = np.asarray(counts, dtype=np.int64)
        if counts.size * SECTOR != self.span:
            raise ValueError(f"{counts.size} residue counts for a span of {self.span} bytes")
        units = np.flatnonzero(counts)
        offsets = units * SECTOR
        lengths = np.full(units.size, length, dtype=np.int64)
        for iu, total in self.totals.items():
            self.totals[iu] = _plus(total, amplification(offsets, lengths, iu, counts[units]))

    @property
    def writes(self) -> int:
        return next(iter(self.totals.values())).writes

    def record(self) -> list[dict[str, int]]:
        """RunResult.waf: per IU, ascending, its Amplification's exact counts and bytes."""
        return [asdict(total) for total in self.totals.values()]


def waf_of(entry: dict[str, Any]) -> Fraction | None:
    """WAF_IU of one entry of RunResult.waf (or of entries summed): media / logical, exactly;
    None for no bytes written."""
    return Fraction(entry["media"], entry["logical"]) if entry["logical"] else None
