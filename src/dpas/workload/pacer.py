"""When a job of a workload may issue its next I/O: the simulator's rule, called for every I/O
(compiled with the simulator, dpas.compiled), and the reference the engine's C loop is tested
against. Apart from dpas.workload.model because mypyc's frozen dataclasses cannot be unpickled,
and the simulator sends workloads to its worker processes.
"""

from __future__ import annotations

from dpas.workload.model import Pattern

#: Pacer.next_at's answer for a job that issues no more I/O
NEVER = -1


class Pacer:
    """When one job may submit its next I/O, from its pattern: integer ns since the run's
    start, no clock of its own, so that the simulator, and the engine's C loop in its tests,
    follow the same rule. ``end_ns``: the run's end (the stop time when the pattern has none).

    The order of the tests: the job's window (start, stop), its on/off phase, its burst epoch,
    its rate, and the on/off phase again (a wait that ends in an off phase waits on).
    ``issued(at)`` tells it an I/O went out at ``at``."""

    __slots__ = ("p", "stop", "epoch_start", "in_epoch", "count", "first", "window")

    def __init__(self, pattern: Pattern, end_ns: int) -> None:
        self.p = pattern
        self.stop = min(pattern.stop_ns, end_ns) if pattern.stop_ns else end_ns
        self.epoch_start = -1
        self.in_epoch = 0
        self.count = 0
        self.first = -1
        self.window = -1

    def next_at(self, now: int) -> int:
        """The earliest time >= ``now`` the next I/O may go out, or NEVER."""
        p = self.p
        t = self._on(now if now > p.start_ns else p.start_ns)
        if p.burst_ios:
            if self.epoch_start < 0:
                self.epoch_start, self.in_epoch = t, 0
            elif self.in_epoch >= p.burst_ios or t - self.epoch_start > p.period_ns:
                # io_gen: the next epoch begins a period after this one began, or at once
                # when the burst ran past the period (its remaining I/Os are dropped)
                start = self.epoch_start + p.period_ns
                self.epoch_start, self.in_epoch = (start if start > t else t), 0
            t = self.epoch_start if self.epoch_start > t else t
        if p.rate_iops and self.first >= 0:
            due = self.first + self.count * 1_000_000_000 // p.rate_iops
            t = due if due > t else t
        t = self._on(t)  # a wait for the epoch or the rate that ends off: the next window
        return NEVER if t >= self.stop else t

    def _on(self, t: int) -> int:
        """``t``, or when it falls in an off phase the start of the next on-window. A window
        paces its rate anew, as fio runs each window as a job of its own."""
        p = self.p
        if not p.on_ns:
            return t
        cycle = p.on_ns + p.off_ns
        into = (t - p.start_ns) % cycle
        if into >= p.on_ns:
            t += cycle - into
        window = (t - p.start_ns) // cycle
        if window != self.window:
            self.window, self.first, self.count = window, -1, 0
        return t

    def issued(self, at: int) -> None:
        if self.first < 0:
            self.first = at
        self.count += 1
        self.in_epoch += 1
