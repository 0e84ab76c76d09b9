"""What one PAS duration update did, and its case: the record an ``Io`` carries.

Below both ``base`` (whose ``Io`` holds the update its sleep was chosen with) and ``pas``
(whose ``PasState.update`` makes it), so neither imports the other's types.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class Case(IntEnum):
    """The last two sleep results (penultimate, last): sr_pnlt*2 + sr_last, 0 = over."""

    OVER_OVER = 0
    OVER_UNDER = 1
    UNDER_OVER = 2
    UNDER_UNDER = 3

    @property
    def label(self) -> str:
        """over_over, over_under, under_over, under_under."""
        return self.name.lower()

    @property
    def short(self) -> str:
        """OO, OU, UO, UU: penultimate then last result."""
        return "".join(part[0] for part in self.name.split("_"))


@dataclass(slots=True)
class PasUpdate:
    """What one duration update did: the case, and the state it left."""

    case: Case
    adj: int
    dur: int
    up: int
    dn: int
    #: dur fell below d_init and was raised to it (a "timer floor" event)
    floored: bool
