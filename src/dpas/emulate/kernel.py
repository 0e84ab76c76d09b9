"""The kernel model: the policy core decides every I/O, in integer nanoseconds.

The device answers each I/O after its trace time; one job issues the next I/O as soon as
the last completes (QD 1, as fio's pvsync2 iodepth=1), and time is the sum of what the
application saw. The policy is driven through its event API; no rule is written here.
"""

from __future__ import annotations

import numpy as np

from dpas.emulate.config import EmulateConfig
from dpas.emulate.iolog import NO_CASE, IoLog, IoLogBuilder, Outcome, pair_cases
from dpas.emulate.traces import Trace
from dpas.emulate.wait import interrupt_wait, polled_wait
from dpas.policy import Method, Op, PasPolicy, Request, make_policy
from dpas.policy.windows import WindowedPolicy

REQUEST = Request(Op.READ, 4096)
OVER = int(Outcome.OVER)


def run_kernel(method: Method, trace: Trace, config: EmulateConfig) -> IoLog:
    policy = make_policy(config.policy_for(method))
    reports_cases = isinstance(policy, PasPolicy)
    windows = policy.stats if isinstance(policy, WindowedPolicy) else None
    cs = round(config.cs_us * 1000)
    irq = round(config.int_overhead_us * 1000)
    log = IoLogBuilder()
    add = log.rows.append  # the hot loop: one tuple per I/O, as IoLogBuilder.add makes
    submit, wait_start = policy.on_submit, policy.on_wait_start
    wait_end, complete = policy.on_wait_end, policy.on_complete
    now = 0
    for device in np.rint(trace.device_us * 1000).astype(np.int64).tolist():
        io = submit(0, REQUEST, now)
        epoch = -1
        if io.polled:
            sleep = wait_start(io, now)
            if windows is not None and sleep:
                epoch = windows.windows_closed  # the window whose mean chose this sleep
            wait_end(io, now + sleep)
            wait = polled_wait(device, sleep, cs)
            complete(io, now + wait[1], wait[4] == OVER)
        else:
            sleep = 0
            wait = interrupt_wait(device, irq)
            complete(io, now + wait[1])
        update = io.pas_update
        case = update.case.value if update is not None else NO_CASE
        add((device, sleep, *wait, case, epoch))
        now += wait[1]
    result = log.build(scale=1e-3)  # ns -> µs
    if not reports_cases:
        result.case = pair_cases(result.outcome)
    return result
