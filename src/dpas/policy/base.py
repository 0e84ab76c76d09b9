"""The event API every layer drives a completion policy through.

A synchronous I/O goes through these events, in this order, with the caller's clock:

    io = policy.on_submit(cpu, request, now_ns)        # io.polled: poll or take the interrupt
    if io.polled:
        ns = policy.on_wait_start(io, now_ns)          # ns to sleep before polling (0: poll now)
        policy.on_wait_end(io, now_ns)                 # the sleep (if any) is over
    policy.on_complete(io, now_ns, found_on_first_poll)

The policy never reads a clock and draws no random numbers: the same events give the same
decisions. ``Io`` carries what the kernel keeps in the request and its poll context.
"""

from __future__ import annotations

from dataclasses import dataclass

from dpas.policy.pas_update import PasUpdate
from dpas.policy.request import Bucketing, Request
from dpas.policy.switch import Mode


@dataclass(slots=True)
class Io:
    """One I/O as a policy sees it, from submission to completion."""

    request: Request
    cpu: int
    submit_ns: int
    polled: bool
    bucket: int
    #: the sleep chosen at wait start (0: polled at once, or not polled)
    sleep_ns: int = 0
    #: PAS generation this I/O slept with; -1 when it did not sleep a PAS duration
    dur_cnt: int = -1
    #: the PAS update applied when this I/O's sleep was chosen, if any
    pas_update: PasUpdate | None = None
    #: DPAS: the CPU's mode when the I/O was submitted
    mode: Mode | None = None
    #: DPAS: this wait raised the CPU's queue depth and must lower it at wait end
    qd_counted: bool = False


class Policy:
    """Base of every completion method: the events a caller sends, with no-op defaults."""

    name: str = "?"

    def __init__(self, bucketing: Bucketing | None = None) -> None:
        self.bucketing = bucketing or Bucketing()

    def on_submit(self, cpu: int, request: Request, now_ns: int) -> Io:
        """Decide whether the I/O is polled (default: yes)."""
        return Io(request, cpu, now_ns, True, self.bucketing.bucket(request))

    def on_wait_start(self, io: Io, now_ns: int) -> int:
        """A polled I/O starts waiting: return ns to sleep first (0: poll at once)."""
        return 0

    def on_wait_end(self, io: Io, now_ns: int) -> None:
        """The polled waiter's sleep is over (also called when it slept 0 ns)."""

    def on_complete(
        self, io: Io, now_ns: int, found_on_first_poll: bool = False, cpu: int | None = None
    ) -> None:
        """The I/O completed; ``found_on_first_poll``: the first poll after waking found it.

        ``cpu`` is the CPU that saw the completion (default: the submitting CPU).
        """
