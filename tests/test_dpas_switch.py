"""Every DPAS transition of reference §4, reached with crafted queue depths and floor events.

Waits overlap on one CPU in steps of ``jobs`` I/Os (conftest.overlapped): all the step's I/Os
are submitted (and counted) before the first starts waiting, and the step adds
1 + 2 + ... + jobs to qd_sum. With two jobs, the 100th I/O is counted at the submission of
step 50, so the evaluation runs at that step's first wait: qd_sum = 49*3 + 1 = 148, avg_qd 14;
the step's second wait then counts qd 2 in the new window. Oversleeping at d_init makes
timer-floor events (tf); undersleeping makes none.
"""

from __future__ import annotations

from conftest import Clock, overlapped, read_4k, steps

from dpas.policy import Bucketing, DpasPolicy, Mode, Order, SwitchParams, Transition

O, U = True, False


def fresh(**switch: int) -> tuple[DpasPolicy, Clock]:
    return DpasPolicy(switch=SwitchParams(**switch)), Clock()


def last(policy: DpasPolicy) -> Transition:
    return policy.transitions[-1]


def into_ol(policy: DpasPolicy, clock: Clock) -> None:
    steps(policy, clock, 50, jobs=2, overslept=O)
    assert policy.switch_state(0).mode == Mode.OL


def test_queue_depth_rises_with_overlapping_waits_and_falls_at_wait_end() -> None:
    policy, clock = fresh()
    now = clock.tick()
    ios = [policy.on_submit(0, read_4k(), now) for _ in range(3)]
    for io in ios:
        policy.on_wait_start(io, now)
    sw = policy.switch_state(0)
    assert (sw.qd, sw.qd_sum) == (3, 1 + 2 + 3)
    for io in ios:
        policy.on_wait_end(io, now + io.sleep_ns)
        policy.on_wait_end(io, now + io.sleep_ns)  # a second end changes nothing
    assert (sw.qd, sw.qd_sum) == (0, 6)


def test_pas_to_cp_when_one_job_never_floors() -> None:
    policy, clock = fresh()
    ios = steps(policy, clock, 99, jobs=1, overslept=U)
    sw = policy.switch_state(0)
    assert sw.mode == Mode.PAS and (sw.pas_cnt, sw.qd_sum, sw.tf) == (99, 99, 0)
    (io,) = overlapped(policy, clock, 1, U)
    assert sw.mode == Mode.CP and io.sleep_ns == 0 and io.pas_update is None
    assert last(policy) == Transition(0, clock.now, Mode.PAS, Mode.CP, 100, 10, 0)
    assert (sw.cp_cnt, sw.qd_sum, sw.tf, sw.pas_cnt) == (0, 0, 0, 100)
    assert sw.totals == {"cp": 0, "pas": 100, "ol": 0, "int": 0}
    assert all(i.sleep_ns >= 100 for i in ios)
    # in CP the queue depth is not touched and nobody sleeps
    more = steps(policy, clock, 5, jobs=2, overslept=U)
    assert (sw.qd, sw.qd_sum) == (0, 0) and all(i.sleep_ns == 0 for i in more)
    assert sw.cp_cnt == 10 and sw.totals["cp"] == 10


def test_cp_to_pas_after_param6_ios_forces_a_pas_update() -> None:
    policy, clock = fresh()
    steps(policy, clock, 100, jobs=1, overslept=U)
    policy.state(0, 6).update_req = 0  # no result pending: only the forced update can run
    steps(policy, clock, 999, jobs=1, overslept=U)
    sw = policy.switch_state(0)
    assert sw.mode == Mode.CP and sw.cp_cnt == 999
    (io,) = overlapped(policy, clock, 1, U)
    assert last(policy) == Transition(0, clock.now, Mode.CP, Mode.PAS, 1000, None, 0)
    assert sw.mode == Mode.PAS and (sw.pas_cnt, sw.qd_sum, sw.tf) == (0, 0, 0)
    assert io.pas_update is not None and io.sleep_ns > 0
    assert not sw.force_update
    assert sw.totals == {"cp": 1000, "pas": 100, "ol": 0, "int": 0}


def test_pas_to_ol_when_the_timer_floor_was_hit() -> None:
    policy, clock = fresh()
    into_ol(policy, clock)
    t = last(policy)
    assert (t.old, t.new, t.count, t.avg_qd) == (Mode.PAS, Mode.OL, 100, 14)
    assert t.tf > 0
    sw = policy.switch_state(0)
    assert (sw.ol_cnt, sw.qd_sum) == (0, 2)
    assert sw.totals == {"cp": 0, "pas": 100, "ol": 0, "int": 0}


def test_pas_stays_when_no_floor_and_queue_depth_is_not_one() -> None:
    policy, clock = fresh()
    steps(policy, clock, 50, jobs=2, overslept=U)
    sw = policy.switch_state(0)
    assert policy.transitions == []
    assert sw.mode == Mode.PAS and (sw.pas_cnt, sw.qd_sum, sw.tf) == (0, 2, 0)
    steps(policy, clock, 3, jobs=2, overslept=U)
    assert (sw.pas_cnt, sw.qd_sum) == (6, 2 + 9)  # a new window counts from zero


def test_ol_to_pas_when_the_queue_depth_falls() -> None:
    policy, clock = fresh()
    into_ol(policy, clock)
    steps(policy, clock, 99, jobs=1, overslept=O)
    sw = policy.switch_state(0)
    assert sw.mode == Mode.OL and (sw.ol_cnt, sw.qd_sum) == (99, 2 + 99)
    overlapped(policy, clock, 1, O)
    t = last(policy)
    assert (t.old, t.new, t.count, t.avg_qd) == (Mode.OL, Mode.PAS, 100, 1020 // 100)
    # the evaluation resets tf before this I/O's own update floors: that floor is the new
    # window's first
    assert sw.mode == Mode.PAS and (sw.pas_cnt, sw.qd_sum, sw.tf) == (0, 0, 1)
    assert sw.totals["ol"] == 100


def test_ol_to_int_when_the_queue_depth_stays_high() -> None:
    policy, clock = fresh()
    into_ol(policy, clock)
    steps(policy, clock, 50, jobs=2, overslept=O)
    t = last(policy)
    # qd_sum = 2 (left from the PAS->OL step) + 49*3 + 1
    assert (t.old, t.new, t.count, t.avg_qd) == (Mode.OL, Mode.INT, 100, 1500 // 100)
    sw = policy.switch_state(0)
    # the step's second I/O was already polled; its wait counts even in INT (only CP skips)
    assert sw.mode == Mode.INT and (sw.int_cnt, sw.qd_sum) == (0, 2)


def test_ol_stays_between_param2_and_param3() -> None:
    policy, clock = fresh(param3=20)
    into_ol(policy, clock)
    steps(policy, clock, 50, jobs=2, overslept=O)
    sw = policy.switch_state(0)
    assert sw.mode == Mode.OL and len(policy.transitions) == 1
    assert (sw.ol_cnt, sw.qd_sum) == (0, 2)
    assert sw.totals["ol"] == 100


def test_int_forces_interrupts_then_returns_to_ol_after_param7() -> None:
    policy, clock = fresh()
    into_ol(policy, clock)
    steps(policy, clock, 50, jobs=2, overslept=O)
    sw = policy.switch_state(0)
    assert sw.mode == Mode.INT
    forced = steps(policy, clock, 9_999, jobs=1, overslept=O)
    assert not any(io.polled for io in forced) and sw.int_cnt == 9_999 and sw.mode == Mode.INT
    (io,) = overlapped(policy, clock, 1, O)
    assert not io.polled  # the I/O that completes the period is still an interrupt I/O
    t = last(policy)
    assert (t.now_ns, t.old, t.new, t.count, t.avg_qd) == (
        clock.now,
        Mode.INT,
        Mode.OL,
        10_000,
        None,
    )
    assert sw.mode == Mode.OL and (sw.ol_cnt, sw.qd_sum, sw.tf) == (0, 0, 0)
    assert sw.totals == {"cp": 0, "pas": 100, "ol": 100, "int": 10_000}
    (io,) = overlapped(policy, clock, 1, O)
    assert io.polled and io.mode == Mode.OL and sw.ol_cnt == 1


def test_kernel_and_guide_orders_disagree_when_both_tests_hold() -> None:
    # one job oversleeping at the floor: avg_qd is exactly 10 and tf > 0
    outcomes = {}
    for order in Order:
        policy, clock = DpasPolicy(order=order), Clock()
        steps(policy, clock, 100, jobs=1, overslept=O)
        t = last(policy)
        assert t.avg_qd == 10 and t.tf > 0
        outcomes[order] = t.new
    assert outcomes == {Order.KERNEL: Mode.OL, Order.GUIDE: Mode.CP}


def test_an_evaluation_already_running_makes_others_skip() -> None:
    policy, clock = fresh()
    with policy.evaluation_held(0):
        steps(policy, clock, 120, jobs=1, overslept=U)
    sw = policy.switch_state(0)
    assert sw.mode == Mode.PAS and sw.evaluations_skipped == 120 and not sw.evaluating
    overlapped(policy, clock, 1, U)
    t = last(policy)
    assert (t.new, t.count, t.avg_qd) == (Mode.CP, 121, 10)


def test_floor_events_count_as_tf_on_the_cpu_that_floored() -> None:
    policy, clock = fresh()
    steps(policy, clock, 3, jobs=1, overslept=O, cpu=1)
    assert policy.switch_state(1).tf == 2  # the 2nd and 3rd I/O floored (under->over, over->over)
    assert policy.switch_state(0).tf == 0
    assert policy.cpus == [0, 1]


def test_unpatched_bucket_without_queue_statistics_never_engages() -> None:
    buggy = DpasPolicy(bucketing=Bucketing(stats_sectors_bug=True))
    clock = Clock()
    ios = steps(buggy, clock, 300, jobs=1, overslept=U)
    assert all(io.polled and io.sleep_ns == 0 and io.bucket == -1 for io in ios)
    assert buggy.switch_state(0).totals == {"cp": 0, "pas": 0, "ol": 0, "int": 0}
    assert buggy.transitions == []
    with_wbt = DpasPolicy(bucketing=Bucketing(stats_sectors_bug=True, queue_stats=True))
    steps(with_wbt, clock, 300, jobs=1, overslept=U)
    assert with_wbt.switch_state(0).totals["pas"] == 100
