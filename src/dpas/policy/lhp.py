"""LHP: Linux hybrid polling, io_poll_delay=0 (adaptive) or N > 0 (fixed N µs) (reference §3)."""

from __future__ import annotations

from dpas.policy.base import Io
from dpas.policy.request import Bucketing
from dpas.policy.windows import WindowedPolicy

LHP_WINDOW_NS = 100_000_000


class LhpPolicy(WindowedPolicy):
    """Sleep half the bucket's mean latency of the last window (or a fixed delay), then poll.

    The measured latency includes any oversleep, so oversleeping raises the mean and with it
    the next window's sleep: the "latency shelving" the lab's LHP page shows.
    """

    name = "LHP"

    def __init__(
        self,
        io_poll_delay: int = 0,
        window_ns: int = LHP_WINDOW_NS,
        bucketing: Bucketing | None = None,
        per_cpu_stats: bool = False,
    ) -> None:
        super().__init__(window_ns, bucketing, per_cpu_stats)
        if io_poll_delay < 0:
            raise ValueError(
                f"io_poll_delay {io_poll_delay}: expected 0 (adaptive) or N > 0 µs; -1 is CP"
            )
        self.io_poll_delay = io_poll_delay

    def on_wait_start(self, io: Io, now_ns: int) -> int:
        if self.io_poll_delay > 0:
            io.sleep_ns = self.io_poll_delay * 1000
            return io.sleep_ns
        stat = self.stat(io.bucket, now_ns)
        io.sleep_ns = 0 if stat is None else (stat.mean + 1) // 2
        return io.sleep_ns
