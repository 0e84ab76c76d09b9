"""A minimal discrete-event loop: callbacks at integer-ns times, in (time, order) sequence.

Like SimPy's Environment with plain callbacks for events: the host's jobs are processes
(generators) that their CPU's callbacks resume, which keeps the per-event cost to one heap
operation.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import Any


class Engine:
    __slots__ = ("now", "_heap", "_seq", "events")

    def __init__(self) -> None:
        self.now = 0
        self._heap: list[tuple[int, int, Callable[..., Any], Any]] = []
        self._seq = 0
        self.events = 0

    def at(self, time: int, fn: Callable[..., Any], arg: Any = None) -> None:
        """Call ``fn(arg)``, or ``fn()`` without one, at ``time`` (never before now); ties run
        in scheduling order. One argument at most keeps the event a flat tuple."""
        self._seq += 1
        heapq.heappush(self._heap, (time if time > self.now else self.now, self._seq, fn, arg))

    def run(self, until: int) -> None:
        """Process events up to and including time ``until``."""
        heap, pop = self._heap, heapq.heappop
        while heap and heap[0][0] <= until:
            time, _, fn, arg = pop(heap)
            self.now = time
            self.events += 1
            if arg is None:
                fn()
            else:
                fn(arg)
        self.now = until

    def clear(self) -> None:
        """Drop the events still pending (a finished run's): they hold the model's objects."""
        self._heap.clear()
