"""The page model: the lab's web emulators, in floating-point microseconds.

PAS adapts after every I/O with UP and DN as fractions (reference §2, last paragraph); LHP
sleeps attenuation x the mean app latency of the last epoch of emulated time (§3). One job
issues the next I/O when the last completes, as in the kernel model.
"""

from __future__ import annotations

import math

from dpas.emulate.config import EmulateConfig
from dpas.emulate.iolog import IoLog, IoLogBuilder, Outcome, pair_cases
from dpas.emulate.traces import Trace
from dpas.emulate.wait import interrupt_wait, polled_wait
from dpas.policy import Method


def run_pas(trace: Trace, config: EmulateConfig) -> IoLog:
    """Sleep S, learn from this I/O's result and the last one's, adjust S for the next."""
    up, dn, cs = config.up, config.dn, config.cs_us
    sleep, adj = config.initial_sleep_us, 1.0
    last: int = Outcome.UNDER  # as the kernel's initial sr_last
    log = IoLogBuilder()
    for device in trace.device_us.tolist():
        wait = polled_wait(device, sleep, cs)
        result = wait[4]
        case = last * 2 + result
        if case == 0:  # over, over
            adj -= dn
        elif case == 1:  # over, under
            adj = 1 + up
        elif case == 2:  # under, over
            adj = 1 - dn
        else:  # under, under
            adj += up
        if adj <= 0:
            adj = 1.0
        log.add(device, sleep, wait, case, -1)
        sleep *= adj
        last = result
    return log.build()


def run_lhp(trace: Trace, config: EmulateConfig) -> IoLog:
    """Sleep attenuation x the mean app latency of the previous epoch; the first epoch
    sleeps the initial sleep. Oversleep inflates the mean: the shelving the page shows."""
    epoch_us = config.epoch_ms * 1000
    sleep, cs = config.initial_sleep_us, config.cs_us
    now, epoch_end, epoch = 0.0, epoch_us, 0
    total, count = 0.0, 0
    log = IoLogBuilder()
    for device in trace.device_us.tolist():
        wait = polled_wait(device, sleep, cs)
        log.add(device, sleep, wait, -1, epoch)
        app = wait[1]
        now += app
        total += app
        count += 1
        if now >= epoch_end:
            sleep = config.attenuation * total / count
            total, count = 0.0, 0
            epoch += 1
            epoch_end = next_boundary(now, epoch_us)
    result = log.build()
    result.case = pair_cases(result.outcome)
    return result


def next_boundary(now: float, epoch_us: float) -> float:
    """The first epoch boundary (a multiple of ``epoch_us``) after ``now``.

    Computed, not stepped to: one long I/O may cross millions of short epochs, and once
    ``epoch_us`` is below the float spacing at ``now`` a step would not move at all.
    """
    boundary = (math.floor(now / epoch_us) + 1) * epoch_us
    return boundary if boundary > now else math.nextafter(now, math.inf)


def run_fixed(method: Method, trace: Trace, config: EmulateConfig) -> IoLog:
    """CP busy-polls every I/O; INT takes every completion by interrupt."""
    log = IoLogBuilder()
    for device in trace.device_us.tolist():
        if method is Method.INT:
            wait = interrupt_wait(device, config.int_overhead_us)
        else:
            wait = polled_wait(device, 0.0, config.cs_us)
        log.add(device, 0.0, wait, -1, -1)
    return log.build()


def run_page(method: Method, trace: Trace, config: EmulateConfig) -> IoLog:
    if method is Method.PAS:
        return run_pas(trace, config)
    if method is Method.LHP:
        return run_lhp(trace, config)
    if method in (Method.CP, Method.INT):
        return run_fixed(method, trace, config)
    raise ValueError(f"method {method.value.lower()}: the page model has pas, lhp, cp and int")
