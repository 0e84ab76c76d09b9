"""How one synchronous I/O's wait ends, given the device time and the sleep chosen.

Shared by the kernel and the page models: the rules of reference §2 for the lab's emulators.
A thread that sleeps s wakes at s + cs (the context switch back); it then polls. If the
device is still busy at the wake it underslept and the app sees the device time; otherwise it
overslept and the app sees the wake. busy + slept always adds up to the app latency.
"""

from __future__ import annotations

from typing import TypeVar, cast

from dpas.emulate.iolog import Outcome

#: ns ints (kernel model) or µs floats (page model)
T = TypeVar("T", int, float)

# plain ints in the per-I/O path: numpy turns them into columns far faster than enum members
_OVER, _UNDER, _POLL, _INT = (int(o) for o in Outcome)


def polled_wait(device: T, sleep: T, cs: T) -> tuple[T, T, T, T, int]:
    """A polled I/O: sleep (if any), wake after cs, then busy-poll until the device is done."""
    if sleep <= 0:
        zero = cast(T, 0)
        return zero, device, device, zero, _POLL
    wake = sleep + cs
    if device > wake:
        return wake, device, device - sleep, sleep, _UNDER
    return wake, wake, cs, sleep, _OVER


def interrupt_wait(device: T, overhead: T) -> tuple[T, T, T, T, int]:
    """An interrupt I/O: asleep while the device works, then ISR and wakeup (busy)."""
    app = device + overhead
    return app, app, overhead, device, _INT
