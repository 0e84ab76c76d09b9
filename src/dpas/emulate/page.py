"""The page model: the lab's web emulators, in floating-point microseconds, I/O for I/O.

pas_emulator.html (PAS), pas_sim.html (the same PAS with no context-switch overhead: the
tracker) and LHP_emulator.html, as reference §2 (last paragraph) and §3 record them. One job
issues the next I/O when the last completes, as in the kernel model.
"""

from __future__ import annotations

from dpas.emulate.config import EmulateConfig
from dpas.emulate.iolog import NO_CASE, IoLog, IoLogBuilder, Outcome, Wait, pair_cases
from dpas.emulate.traces import Trace
from dpas.emulate.wait import interrupt_wait, polled_wait
from dpas.policy import Method

_OVER, _UNDER = int(Outcome.OVER), int(Outcome.UNDER)

#: What the pages set adjust to when a rule takes it to 0 or below (reference §2, last
#: paragraph); the kernel resets it to 1.0 instead.
ADJUST_FLOOR = 0.001


def page_wait(device: float, sleep: float, cs: float) -> Wait:
    """The pages' wait: wake = sleep + cs, UNDER if the device is still busy then.

    Unlike ``polled_wait`` a sleep of 0 is still a sleep here: the pages have no "did not
    sleep" case, so every I/O is over or under and feeds the rules (a PAS sleep of 0 stays 0,
    since PAS only multiplies it, but its rules keep running).
    """
    wake = sleep + cs
    if device > wake:
        return wake, device, device - sleep, sleep, _UNDER
    return wake, wake, cs, sleep, _OVER


def adjusted(adj: float, case: int, up: float, dn: float) -> float:
    """The pages' four rules on adjust, for the last two results ``case`` (2 x previous +
    this, 0 = over), in floating point with UP and DN as fractions."""
    if case == 0:  # over, over
        adj -= dn
    elif case == 1:  # over, under
        adj = 1 + up
    elif case == 2:  # under, over
        adj = 1 - dn
    else:  # under, under
        adj += up
    return adj if adj > 0 else ADJUST_FLOOR


def run_pas(trace: Trace, config: EmulateConfig) -> IoLog:
    """PAS as the pages run it: adjust a sleep by the rule of the last two results.

    The pages start from the results (over, under) with adjust 1 and apply that rule before
    the first I/O, so the first sleep is init x (1 + UP); after each I/O they apply the rule
    of (previous result, this result) and multiply the sleep. Rules are counted for I/Os
    1..n-1 (reference §2, last paragraph): I/O i's case is the pair (i-1, i), which sets up
    I/O i+1's sleep; I/O 0's pair (the start's under, its result) is applied but not counted.
    """
    up, dn, cs = config.up, config.dn, config.cs_us
    last = _UNDER
    adj = adjusted(1.0, _OVER * 2 + _UNDER, up, dn)
    sleep = config.initial_sleep_us * adj
    log = IoLogBuilder()
    for i, device in enumerate(trace.device_us.tolist()):
        wait = page_wait(device, sleep, cs)
        result = wait[4]
        case = last * 2 + result
        log.add(device, sleep, wait, case if i else NO_CASE, -1)
        adj = adjusted(adj, case, up, dn)
        sleep *= adj
        last = result
    return log.build()


def run_lhp(trace: Trace, config: EmulateConfig, epoch_us: float) -> IoLog:
    """LHP as its page runs it: sleep attenuation x the mean app latency of the last epoch
    of ``epoch_us`` emulated time; the first epoch sleeps the initial sleep. Oversleep
    inflates the mean: the shelving the page shows.

    At each boundary the page restarts its epoch clock at 0 (reference §3): the overshoot of
    the I/O that crossed it is dropped, so every epoch lasts at least one epoch length.
    """
    sleep, cs = config.initial_sleep_us, config.cs_us
    clock, epoch = 0.0, 0
    total, count = 0.0, 0
    log = IoLogBuilder()
    for device in trace.device_us.tolist():
        wait = page_wait(device, sleep, cs)
        log.add(device, sleep, wait, NO_CASE, epoch)
        app = wait[1]
        clock += app
        total += app
        count += 1
        if clock >= epoch_us:
            sleep = config.attenuation * total / count
            clock, total, count = 0.0, 0.0, 0
            epoch += 1
    result = log.build()
    result.case = pair_cases(result.outcome)
    return result


def run_fixed(method: Method, trace: Trace, config: EmulateConfig) -> IoLog:
    """CP busy-polls every I/O; INT takes every completion by interrupt."""
    log = IoLogBuilder()
    for device in trace.device_us.tolist():
        if method is Method.INT:
            wait = interrupt_wait(device, config.int_overhead_us)
        else:
            wait = polled_wait(device, 0.0, config.cs_us)
        log.add(device, 0.0, wait, NO_CASE, -1)
    return log.build()


def run_page(method: Method, trace: Trace, config: EmulateConfig, epoch_us: float) -> IoLog:
    """One method under the page model; ``epoch_us`` is LHP's epoch, resolved for the trace."""
    if method is Method.PAS:
        return run_pas(trace, config)
    if method is Method.LHP:
        return run_lhp(trace, config, epoch_us)
    if method in (Method.CP, Method.INT):
        return run_fixed(method, trace, config)
    raise ValueError(f"method {method.value.lower()}: the page model has pas, lhp, cp and int")
