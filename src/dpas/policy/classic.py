"""The two methods with nothing to decide: interrupts (INT) and classic polling (CP)."""

from __future__ import annotations

from dpas.policy.base import Io, Policy
from dpas.policy.request import Request


class IntPolicy(Policy):
    """INT: no hipri; the thread sleeps until the device's interrupt wakes it."""

    name = "INT"

    def on_submit(self, cpu: int, request: Request, now_ns: int) -> Io:
        return Io(request, cpu, now_ns, False, self.bucketing.bucket(request))


class CpPolicy(Policy):
    """CP: hipri with io_poll_delay=-1; the thread busy-polls from the start."""

    name = "CP"
