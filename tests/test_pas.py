"""PAS arithmetic, checked against sequences derived by hand from reference §2.

Each row is (feedback, case, adj, dur, up, dn) after the update that feedback causes; the
values were worked out on paper with the kernel's integer rules (truncating division).
"""

from __future__ import annotations

import pytest

from dpas.policy import DIV, Adaptive, Case, Op, PasParams, PasPolicy, PasState, Request

O, U = True, False  # overslept (found on first poll) / underslept


def start(dur: int = 10_000, up: int = 10_000, dn: int = 100_000, **kw: int) -> PasState:
    return PasState(dur=dur, adj=DIV, up=up, dn=dn, **kw)


def drive(
    state: PasState, params: PasParams, rows: list[tuple[bool, Case, int, int, int, int]]
) -> None:
    for n, (overslept, case, adj, dur, up, dn) in enumerate(rows):
        assert state.feedback(state.dur_cnt, overslept), f"row {n}: feedback was not taken"
        update = state.update(params)
        assert update is not None
        got = (update.case, state.adj, state.dur, state.up, state.dn)
        assert got == (case, adj, dur, up, dn), f"row {n}"
        assert all(type(v) is int for v in got[1:]), "integer arithmetic only"
        assert (update.adj, update.dur, update.up, update.dn) == (adj, dur, up, dn)


def test_four_cases_with_fixed_rates() -> None:
    params = PasParams(adaptive=Adaptive.OFF)
    drive(
        start(),
        params,
        [
            (U, Case.UNDER_UNDER, 1_010_000, 10_100, 10_000, 100_000),  # adj += up
            (U, Case.UNDER_UNDER, 1_020_000, 10_302, 10_000, 100_000),
            (O, Case.UNDER_OVER, 900_000, 9_271, 10_000, 100_000),  # adj = DIV - dn
            (O, Case.OVER_OVER, 800_000, 7_416, 10_000, 100_000),  # adj -= dn
            (U, Case.OVER_UNDER, 1_010_000, 7_490, 10_000, 100_000),  # adj = DIV + up
        ],
    )


def test_adaptive_dn_heats_and_cools_after_the_update() -> None:
    # the rates used by a case are those from before it; they change after
    drive(
        start(up=5_000, dn=50_000),
        PasParams(adaptive=Adaptive.DN),
        [
            (U, Case.UNDER_UNDER, 1_005_000, 10_050, 5_250, 52_500),
            (U, Case.UNDER_UNDER, 1_010_250, 10_153, 5_512, 55_125),
            (O, Case.UNDER_OVER, 944_875, 9_593, 4_960, 49_600),
            (O, Case.OVER_OVER, 895_275, 8_588, 5_208, 52_080),
        ],
    )


def test_adaptive_dn_is_capped_at_max_dn_and_floored_at_min_dn() -> None:
    params = PasParams(adaptive=Adaptive.DN)
    state = start(up=10_000, dn=100_000)
    drive(state, params, [(U, Case.UNDER_UNDER, 1_010_000, 10_100, 10_000, 100_000)])
    low = start(up=1_050, dn=10_500, sr_pnlt=1, sr_last=1)
    # under then over: cool down; 1050 * 0.9 = 945 is below min_dn/updn_ratio = 1000
    drive(low, params, [(O, Case.UNDER_OVER, 989_500, 9_895, 1_000, 10_000)])


def test_adaptive_up_moves_up_only_within_its_bounds() -> None:
    params = PasParams(adaptive=Adaptive.UP)
    drive(
        start(up=5_000, dn=50_000),
        params,
        [
            (U, Case.UNDER_UNDER, 1_005_000, 10_050, 5_250, 50_000),
            (O, Case.UNDER_OVER, 950_000, 9_547, 4_725, 50_000),
        ],
    )
    high = start(up=99_000, dn=50_000)
    drive(high, params, [(U, Case.UNDER_UNDER, 1_099_000, 10_990, 100_000, 50_000)])
    near = start(up=90_000, dn=50_000)  # heats to 94500: under the cap, kept
    drive(near, params, [(U, Case.UNDER_UNDER, 1_090_000, 10_900, 94_500, 50_000)])
    low = start(up=105, dn=50_000, sr_pnlt=1, sr_last=1)
    drive(low, params, [(O, Case.UNDER_OVER, 950_000, 9_500, 100, 50_000)])
    just = start(up=110, dn=50_000, sr_pnlt=1, sr_last=1)  # cools to 99: floored to 100
    drive(just, params, [(O, Case.UNDER_OVER, 950_000, 9_500, 100, 50_000)])


def test_adj_at_or_below_zero_resets_to_div() -> None:
    params = PasParams(adaptive=Adaptive.OFF)
    below = start(sr_last=0)
    below.adj = 50_000
    drive(below, params, [(O, Case.OVER_OVER, DIV, 10_000, 10_000, 100_000)])
    exactly = start(sr_last=0)
    exactly.adj = 100_000
    drive(exactly, params, [(O, Case.OVER_OVER, DIV, 10_000, 10_000, 100_000)])
    # adj of 1 is positive: kept, and dur = 10000 * 1 / DIV = 0, floored at d_init
    one = start(sr_last=0)
    one.adj = 100_001
    drive(one, params, [(O, Case.OVER_OVER, 1, 100, 10_000, 100_000)])


def test_dur_below_d_init_is_floored_and_reported() -> None:
    params = PasParams(d_init=100, adaptive=Adaptive.OFF)
    state = start(dur=105, sr_pnlt=0, sr_last=1)
    assert state.feedback(1, O)  # under then over: adj 0.9, 105 * 0.9 = 94
    update = state.update(params)
    assert update is not None and update.floored and state.dur == 100


def test_dur_equal_to_d_init_is_not_a_floor_event() -> None:
    params = PasParams(d_init=900, adaptive=Adaptive.OFF)
    state = start(dur=1_000)
    assert state.feedback(1, O)
    update = state.update(params)
    assert update is not None and not update.floored and state.dur == 900


def test_no_pending_result_means_no_update() -> None:
    state = start()
    assert state.update(PasParams()) is None
    assert (state.dur, state.dur_cnt, state.adj) == (10_000, 1, DIV)


def test_forced_update_runs_without_a_result() -> None:
    state = start()  # sr_pnlt 0, sr_last 1: over, under
    update = state.update(PasParams(adaptive=Adaptive.OFF), force=True)
    assert update is not None and update.case == Case.OVER_UNDER and state.dur == 10_100


def test_only_the_current_generation_reports_and_only_once() -> None:
    state = start()
    assert not state.feedback(0, O)  # a stale generation
    assert state.feedback(1, U)
    assert not state.feedback(1, O)  # same generation again: ignored
    assert (state.sr_pnlt, state.sr_last, state.dur_cnt_checked, state.update_req) == (1, 1, 1, 1)
    state.update(PasParams())
    assert state.dur_cnt == 2 and state.update_req == 0


def test_dur_cnt_is_a_byte_and_wraps() -> None:
    state = start(dur_cnt=255, dur_cnt_checked=254)
    assert state.feedback(255, U)
    state.update(PasParams())
    assert state.dur_cnt == 0
    assert state.feedback(0, U)  # generation 0 after the wrap still reports


def test_initial_state_follows_the_queue_constants() -> None:
    params = PasParams(d_init=2_000, up_init=20_000, dn_init=200_000)
    s = PasState.initial(params)
    assert (s.dur, s.adj, s.up, s.dn) == (2_000, DIV, 20_000, 200_000)
    assert (s.sr_pnlt, s.sr_last, s.dur_cnt, s.dur_cnt_checked, s.update_req) == (0, 1, 1, 0, 0)


def test_policy_keeps_state_per_cpu_and_per_bucket() -> None:
    policy = PasPolicy(PasParams(adaptive=Adaptive.OFF))
    read4k, write4k = Request(Op.READ, 4096), Request(Op.WRITE, 4096)
    io = policy.on_submit(0, read4k, 0)
    assert io.bucket == 6 and policy.on_wait_start(io, 0) == 100
    policy.on_complete(io, 1_000, found_on_first_poll=False)
    assert policy.state(0, 6).update_req == 1
    assert policy.state(1, 6).update_req == 0
    assert policy.state(0, 7).update_req == 0
    other = policy.on_submit(0, write4k, 0)
    assert other.bucket == 7 and policy.on_wait_start(other, 0) == 100


def test_feedback_from_another_cpu_is_ignored() -> None:
    policy = PasPolicy()
    io = policy.on_submit(0, Request(Op.READ, 4096), 0)
    policy.on_wait_start(io, 0)
    policy.on_complete(io, 500, found_on_first_poll=True, cpu=1)
    assert policy.state(0, io.bucket).update_req == 0
    policy.on_complete(io, 500, found_on_first_poll=True, cpu=0)
    assert policy.state(0, io.bucket).update_req == 1


def test_a_completion_without_a_poll_verdict_is_an_undersleep() -> None:
    """found_on_first_poll defaults to False: a caller that does not say is not overslept."""
    policy = PasPolicy()
    io = policy.on_submit(0, Request(Op.READ, 4096), 0)
    policy.on_wait_start(io, 0)
    policy.on_complete(io, 500)
    state = policy.state(0, io.bucket)
    assert (state.update_req, state.sr_last) == (1, 1)


def test_overlapping_ios_of_one_generation_report_once() -> None:
    policy = PasPolicy(PasParams(adaptive=Adaptive.OFF))
    r = Request(Op.READ, 4096)
    a, b = policy.on_submit(0, r, 0), policy.on_submit(0, r, 0)
    policy.on_wait_start(a, 0)
    policy.on_wait_start(b, 0)
    assert a.dur_cnt == b.dur_cnt == 1
    policy.on_complete(a, 100, found_on_first_poll=False)
    policy.on_complete(b, 100, found_on_first_poll=True)  # too late: ignored
    state = policy.state(0, a.bucket)
    assert (state.sr_pnlt, state.sr_last) == (1, 1)


@pytest.mark.parametrize("field", ["d_init", "up_init", "heat_up", "updn_ratio"])
def test_bad_params_are_refused(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        PasParams(**{field: -1})
