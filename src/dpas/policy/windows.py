"""Per-bucket completion statistics over time windows (the block layer's blk_stat callback)."""

from __future__ import annotations

from dataclasses import dataclass

from dpas.policy.base import Io, Policy
from dpas.policy.request import STATS_BUCKETS, Bucketing


@dataclass(frozen=True, slots=True)
class BucketStat:
    """One bucket's statistics from the last window that had samples for it."""

    nr_samples: int
    mean: int
    min: int


class StatWindows:
    """Latency samples per bucket, published when a window closes.

    A window opens at the first sample after the previous one closed and closes
    ``window_ns`` later; at the close, each bucket that got samples replaces its published
    statistics, and the others keep theirs. Time only moves when the caller passes it in,
    so a window closes at the first event at or after its end.
    """

    def __init__(self, window_ns: int, per_cpu: bool = False) -> None:
        if window_ns <= 0:
            raise ValueError(f"statistics window {window_ns} ns: expected > 0")
        self.window_ns = window_ns
        #: the artifact's merge of per-CPU sums, truncating the mean at each CPU (reference
        #: section 9): the published mean can differ from the whole window's by 1 ns
        self.per_cpu = per_cpu
        self._cpus: dict[int, list[int]] = {}
        self.end_ns: int | None = None
        self.windows_closed = 0
        self.published: list[BucketStat | None] = [None] * STATS_BUCKETS
        self._count = [0] * STATS_BUCKETS
        self._batch = [0] * STATS_BUCKETS
        self._min = [0] * STATS_BUCKETS

    def advance(self, now_ns: int) -> None:
        """Close the open window if its end has passed."""
        if self.end_ns is None or now_ns < self.end_ns:
            return
        for bucket, count in enumerate(self._count):
            if count:
                # the kernel's mean is an integer division of the window's sum
                mean = self._merged_mean(bucket) if self.per_cpu else self._batch[bucket] // count
                self.published[bucket] = BucketStat(count, mean, self._min[bucket])
        self._cpus = {}
        self._count = [0] * STATS_BUCKETS
        self._batch = [0] * STATS_BUCKETS
        self._min = [0] * STATS_BUCKETS
        self.end_ns = None
        self.windows_closed += 1

    def _merged_mean(self, bucket: int) -> int:
        """blk_rq_stat_sum over the CPUs in order: mean = (batch + mean * n) / (n + nr)."""
        mean = n = 0
        for cpu in sorted(self._cpus):
            nr, batch = self._cpus[cpu][2 * bucket : 2 * bucket + 2]
            if nr:
                mean = (batch + mean * n) // (n + nr)
                n += nr
        return mean

    def add(self, bucket: int, value_ns: int, now_ns: int, cpu: int = 0) -> None:
        """Record one completion's latency; opens a window if none is open."""
        self.advance(now_ns)
        if self.end_ns is None:
            self.end_ns = now_ns + self.window_ns
        value_ns = max(value_ns, 0)
        if self.per_cpu:
            sums = self._cpus.setdefault(cpu, [0] * (2 * STATS_BUCKETS))
            sums[2 * bucket] += 1
            sums[2 * bucket + 1] += value_ns
        if self._count[bucket] == 0 or value_ns < self._min[bucket]:
            self._min[bucket] = value_ns
        self._count[bucket] += 1
        self._batch[bucket] += value_ns

    def stat(self, bucket: int, now_ns: int) -> BucketStat | None:
        """The bucket's published statistics as of ``now_ns`` (None before any)."""
        self.advance(now_ns)
        return self.published[bucket]


class WindowedPolicy(Policy):
    """A method that learns from its buckets' completion latencies (LHP, EHP).

    Every completion, polled or not, adds its latency from submission to completion.
    """

    def __init__(
        self, window_ns: int, bucketing: Bucketing | None = None, per_cpu: bool = False
    ) -> None:
        super().__init__(bucketing)
        self.stats = StatWindows(window_ns, per_cpu)

    def stat(self, bucket: int, now_ns: int) -> BucketStat | None:
        """The bucket's last published statistics; None before any, or with no bucket."""
        return None if bucket < 0 else self.stats.stat(bucket, now_ns)

    def on_complete(
        self, io: Io, now_ns: int, found_on_first_poll: bool = False, cpu: int | None = None
    ) -> None:
        if io.bucket >= 0:
            self.stats.add(io.bucket, now_ns - io.submit_ns, now_ns, io.cpu)
