"""What every number of an emulation accepts, in one table: the CLI's option types, the
trace loader and EmulateConfig all check against it.

The device-time floor lives here too: 1 ns, the kernel model's resolution (a shorter time
rounds to no time, and an I/O that takes no time is not an I/O).
"""

from __future__ import annotations

from dataclasses import dataclass

from dpas.limits import MAX_IO_US, MAX_IOS, MAX_SEED, checked

#: The shortest device time (µs): 1 ns.
MIN_IO_US = 0.001


@dataclass(frozen=True, slots=True)
class Range:
    """What one number of an emulation accepts: finite, in [low, high]."""

    low: float
    high: float
    integer: bool = False


#: Every number ``dpas emulate`` takes, by option name; the CLI's option types and
#: EmulateConfig's own check both read this table. Why each bound:
RANGES: dict[str, Range] = {
    # durations are per I/O: no more than one device time may take (MAX_IO_US, 10 s)
    "cs_overhead_us": Range(0, MAX_IO_US),
    "int_overhead_us": Range(0, MAX_IO_US),
    # the page model's first sleep: 0 is the pages' too (PAS multiplies it, so it stays 0,
    # but every I/O still wakes after cs and feeds the rules)
    "initial_sleep_us": Range(0, MAX_IO_US),
    # fractions of the sleep (the kernel's up_init and dn_init are these x 1e6): a DN above
    # 1 only ever gives adj <= 0 (reset), and UP <= 1 keeps the page model's sleep finite
    "up": Range(0, 1),
    "dn": Range(0, 1),
    # LHP sleeps attenuation x its mean latency, which includes its own oversleep: above 1,
    # the sleep grows without bound from epoch to epoch
    "attenuation": Range(0, 1),
    # the kernel model's window is whole ns (at least 1); an hour is no per-I/O statistic.
    # A given epoch only: the page's Auto (total device time / 20) is whatever the trace makes
    "epoch_ms": Range(1e-6, 3_600_000),
    "ios": Range(1, MAX_IOS, integer=True),
    "seed": Range(0, MAX_SEED, integer=True),
    # the kernel's pas_d_init is a u32, in ns
    "d_init": Range(1, 2**32 - 1, integer=True),
    # pas_adaptive_enabled: 0 off, 1 dn, 2 up
    "adaptive": Range(0, 2, integer=True),
    # LHP's fixed sleep in µs (0: adaptive); -1 is CP, which --method cp runs
    "io_poll_delay": Range(0, MAX_IO_US, integer=True),
}


def check(name: str, value: float) -> float:
    """``value`` if RANGES[name] accepts it; a LimitError naming the option otherwise."""
    r = RANGES[name]
    return checked("--" + name.replace("_", "-"), value, r.low, r.high, integer=r.integer)
