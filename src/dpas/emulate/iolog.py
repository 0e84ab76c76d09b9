"""What happened to every I/O of an emulation, as columns."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np


class Outcome(IntEnum):
    """How the wait ended. OVER and UNDER have the values of the kernel's sleep result."""

    OVER = 0  # woke after the device finished: the first poll found it
    UNDER = 1  # woke before: busy-polled the rest
    POLL = 2  # did not sleep: busy-polled from the start (CP, or a sleep of 0)
    INT = 3  # interrupt completion

    @property
    def label(self) -> str:
        return self.name.lower()


NO_CASE = -1

#: How a wait ended: (wake, app, busy, slept, Outcome value), times in the caller's unit.
Wait = tuple[float, float, float, float, int]


@dataclass(slots=True)
class IoLog:
    """Per-I/O columns, all in µs except the codes. busy + slept = app for every I/O."""

    device_us: np.ndarray
    sleep_us: np.ndarray
    wake_us: np.ndarray
    app_us: np.ndarray
    busy_us: np.ndarray
    slept_us: np.ndarray
    outcome: np.ndarray  # Outcome values
    case: np.ndarray  # pas.Case values, NO_CASE where no rule applied
    epoch: np.ndarray  # LHP statistics window the sleep came from, -1 otherwise

    def __len__(self) -> int:
        return len(self.device_us)


class IoLogBuilder:
    """Collects one row per I/O (a tuple append is the cheapest step), then makes columns."""

    __slots__ = ("rows",)

    def __init__(self) -> None:
        self.rows: list[tuple[float, ...]] = []

    def add(self, device: float, sleep: float, wait: Wait, case: int, epoch: int) -> None:
        self.rows.append((device, sleep, *wait, case, epoch))

    def build(self, scale: float = 1.0) -> IoLog:
        """The columns as arrays, times multiplied by ``scale`` (1e-3 turns ns into µs)."""
        table = np.array(self.rows, dtype=float).reshape(-1, 9)
        device, sleep, wake, app, busy, slept = (table[:, i] * scale for i in range(6))
        return IoLog(
            device,
            sleep,
            wake,
            app,
            busy,
            slept,
            outcome=table[:, 6].astype(np.int8),
            case=table[:, 7].astype(np.int8),
            epoch=table[:, 8].astype(np.int64),
        )


def pair_cases(outcome: np.ndarray) -> np.ndarray:
    """Case of each slept I/O from the previous slept I/O's result and its own.

    For methods without PAS's own update record, so that all methods' case counts compare.
    """
    case = np.full(len(outcome), NO_CASE, dtype=np.int8)
    slept = np.flatnonzero(outcome <= Outcome.UNDER)
    if len(slept) > 1:
        prev, this = outcome[slept[:-1]], outcome[slept[1:]]
        case[slept[1:]] = prev * 2 + this
    return case
