"""EHP: the paper's "efficient hybrid polling" baseline (reference §3)."""

from __future__ import annotations

from dataclasses import dataclass

from dpas.policy.base import Io
from dpas.policy.request import Bucketing, Request
from dpas.policy.windows import BucketStat, WindowedPolicy


@dataclass(frozen=True, slots=True)
class EhpParams:
    """EHP's constants: context-switch and ISR costs it assumes, in ns."""

    ctx_ns: int = 1487
    isr_ns: int = 1076
    benefit_ratio: int = 10
    window_ns: int = 10_000_000

    @property
    def overhead_ns(self) -> int:
        """What an interrupt completion costs: two context switches and the ISR."""
        return 2 * self.ctx_ns + self.isr_ns


class EhpPolicy(WindowedPolicy):
    """Per bucket, poll (after sleeping min - overhead) when the window's minimum latency is
    short enough that interrupt overhead matters; otherwise complete by interrupt.

    Before a bucket's first window closes there is nothing to judge by: it polls at once.
    """

    name = "EHP"

    def __init__(
        self,
        params: EhpParams | None = None,
        bucketing: Bucketing | None = None,
        per_cpu_stats: bool = False,
    ) -> None:
        self.params = params or EhpParams()
        super().__init__(self.params.window_ns, bucketing, per_cpu_stats)

    def polls(self, stat: BucketStat | None) -> bool:
        """The benefit test: polling pays when overhead * benefit_ratio exceeds the minimum.

        With no statistics (no window closed yet, or no bucket) it polls.
        """
        p = self.params
        return stat is None or p.overhead_ns * p.benefit_ratio > stat.min

    def on_submit(self, cpu: int, request: Request, now_ns: int) -> Io:
        bucket = self.bucketing.bucket(request)
        return Io(request, cpu, now_ns, self.polls(self.stat(bucket, now_ns)), bucket)

    def on_wait_start(self, io: Io, now_ns: int) -> int:
        stat = self.stat(io.bucket, now_ns)
        io.sleep_ns = 0 if stat is None else max(stat.min - self.params.overhead_ns, 0)
        return io.sleep_ns
