"""EHP: the paper's "efficient hybrid polling" baseline (reference §3)."""

from __future__ import annotations

from dataclasses import dataclass

from dpas.policy.base import Io, Policy
from dpas.policy.request import Bucketing, Request
from dpas.policy.windows import BucketStat, StatWindows


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


class EhpPolicy(Policy):
    """Per bucket, poll (after sleeping min - overhead) when the window's minimum latency is
    short enough that interrupt overhead matters; otherwise complete by interrupt.

    Before a bucket's first window closes there is nothing to judge by: it polls at once.
    """

    name = "EHP"

    def __init__(self, params: EhpParams | None = None, bucketing: Bucketing | None = None) -> None:
        super().__init__(bucketing)
        self.params = params or EhpParams()
        self.stats = StatWindows(self.params.window_ns)

    def polls(self, stat: BucketStat | None) -> bool:
        """The benefit test: polling pays when overhead * benefit_ratio exceeds the minimum."""
        p = self.params
        return stat is None or p.overhead_ns * p.benefit_ratio > stat.min

    def on_submit(self, cpu: int, request: Request, now_ns: int) -> Io:
        bucket = self.bucketing.bucket(request)
        polled = bucket < 0 or self.polls(self.stats.stat(bucket, now_ns))
        return Io(request, cpu, now_ns, polled, bucket)

    def on_wait_start(self, io: Io, now_ns: int) -> int:
        if io.bucket < 0:
            return 0
        stat = self.stats.stat(io.bucket, now_ns)
        io.sleep_ns = 0 if stat is None else max(stat.min - self.params.overhead_ns, 0)
        return io.sleep_ns

    def on_complete(
        self, io: Io, now_ns: int, found_on_first_poll: bool = False, cpu: int | None = None
    ) -> None:
        if io.bucket >= 0:
            self.stats.add(io.bucket, now_ns - io.submit_ns, now_ns)
