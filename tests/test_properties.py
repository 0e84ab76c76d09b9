"""Invariants over random event sequences (hypothesis)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from dpas.policy import (
    EDGES,
    Adaptive,
    DpasPolicy,
    Mode,
    Op,
    Order,
    PasParams,
    PasState,
    Request,
    SwitchParams,
)

pas_params = st.builds(
    PasParams,
    d_init=st.integers(1, 50_000),
    up_init=st.integers(0, 500_000),
    dn_init=st.integers(0, 1_500_000),
    heat_up=st.integers(0, 500_000),
    cool_dn=st.integers(0, 999_999),
    min_dn=st.integers(0, 500_000),
    max_dn=st.integers(0, 1_500_000),
    updn_ratio=st.integers(1, 50),
    adaptive=st.sampled_from(Adaptive),
)


@given(params=pas_params, feedback=st.lists(st.booleans(), max_size=300))
def test_dur_never_falls_below_d_init(params: PasParams, feedback: list[bool]) -> None:
    state = PasState.initial(params)
    for overslept in feedback:
        state.feedback(state.dur_cnt, overslept)
        state.update(params)
        assert state.dur >= params.d_init
        assert state.adj > 0


# a script step: (cpu, overlapping jobs, overslept, also submit to a second bucket)
step = st.tuples(st.integers(0, 2), st.integers(1, 4), st.booleans(), st.booleans())
switch_params = st.builds(
    SwitchParams,
    param1=st.integers(-1, 3),
    param2=st.integers(0, 30),
    param3=st.integers(0, 30),
    param4=st.integers(-1, 1),
    param5=st.integers(1, 12),
    param6=st.integers(1, 12),
    param7=st.integers(1, 12),
)


@settings(max_examples=150)
@given(
    params=pas_params,
    switch=switch_params,
    order=st.sampled_from(Order),
    script=st.lists(step, min_size=1, max_size=120),
)
def test_switch_invariants(
    params: PasParams, switch: SwitchParams, order: Order, script: list[tuple[int, int, bool, bool]]
) -> None:
    policy = DpasPolicy(params, switch, order)
    now = 0
    seen = 0
    for cpu, jobs, overslept, mixed in script:
        now += 1_000
        before = {c: dict(policy.switch_state(c).totals) for c in range(3)}
        ios = [
            policy.on_submit(cpu, Request(Op.WRITE if mixed and i % 2 else Op.READ, 4096), now)
            for i in range(jobs)
        ]
        for io in ios:
            if io.polled:
                sleep = policy.on_wait_start(io, now)
                assert sleep == 0 or sleep >= params.d_init
        for io in ios:
            if io.polled:
                policy.on_wait_end(io, now + io.sleep_ns)
        for io in ios:
            policy.on_complete(io, now + io.sleep_ns + 500, overslept)
        for c in range(3):
            sw = policy.switch_state(c)
            assert sw.qd == 0, "balanced waits leave no queue depth"
            assert sw.qd_sum >= 0 and sw.tf >= 0
            after = sw.totals
            assert all(after[k] >= before[c][k] for k in after), "totals never decrease"
        assert sum(policy.switch_state(cpu).totals.values()) == sum(before[cpu].values()) + jobs
        for t in policy.transitions[seen:]:
            assert (t.old, t.new) in EDGES
            assert t.cpu == cpu
        seen = len(policy.transitions)
        # no mode changes without a recorded transition: replaying them gives each CPU's mode
        replayed = {c: Mode.PAS for c in range(3)}
        for t in policy.transitions:
            assert replayed[t.cpu] == t.old
            replayed[t.cpu] = t.new
        assert replayed == {c: policy.switch_state(c).mode for c in range(3)}


@settings(max_examples=60)
@given(script=st.lists(st.tuples(st.integers(1, 4), st.booleans()), min_size=1, max_size=60))
def test_queue_depth_never_negative_while_waits_interleave(script: list[tuple[int, bool]]) -> None:
    policy = DpasPolicy(switch=SwitchParams(param5=3, param6=4, param7=3))
    now = 0
    for jobs, overslept in script:
        now += 1_000
        ios = [policy.on_submit(0, Request(Op.READ, 4096), now) for _ in range(jobs)]
        for io in ios:  # each waiter starts, and ends, before the next one starts
            if io.polled:
                policy.on_wait_start(io, now)
                policy.on_wait_end(io, now)
                assert policy.switch_state(0).qd >= 0
        for io in ios:
            policy.on_complete(io, now, overslept)
    assert policy.switch_state(0).qd == 0
