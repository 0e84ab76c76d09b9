"""bench.sh's auto pas_d_init, the one rule every backend follows.

bench.sh sets pas_d_init to a tenth of the mean latency of a first short plain run: one job,
no polling (INT), so that it measures what the device and the completion path take before
any method sleeps. A tenth of a mean in µs is ``lat_mean_us x 100`` ns, at least 1.

Every backend runs the probe its own way (the simulator, fio on a device or in the guest, dpas's
engine) for ``PROBE_S`` seconds and hands its mean latency here. 50 ms is long enough for
hundreds of I/Os on the slowest drive dpas meets (the QEMU guest under TCG, about 100 µs an
I/O) and short beside every run it sets up.
"""

from __future__ import annotations

from collections.abc import Callable

#: how long the probe runs, in (simulated or wall) seconds
PROBE_S = 0.05


def auto_d_init(probe: Callable[[float], float]) -> int:
    """pas_d_init in ns from ``probe(PROBE_S)``: one job, INT, its mean latency in µs."""
    return max(round(probe(PROBE_S) * 100), 1)
