"""The event API's contract, the same for every method."""

from __future__ import annotations

import pytest
from conftest import Clock, steps

from dpas.policy import (
    Adaptive,
    Bucketing,
    DpasPolicy,
    EhpParams,
    Method,
    Mode,
    Op,
    Order,
    PasParams,
    PasPolicy,
    PolicyConfig,
    Request,
    SwitchParams,
    make_policy,
)

METHODS = list(Method.policies())


@pytest.mark.parametrize("method", METHODS)
def test_submit_records_the_request_cpu_and_time(method: Method) -> None:
    policy = make_policy(PolicyConfig(method=method))
    request = Request(Op.WRITE, 8192)
    io = policy.on_submit(5, request, 1_234)
    assert (io.request, io.cpu, io.submit_ns, io.bucket) == (request, 5, 1_234, 9)
    assert io.polled is (method is not Method.INT)


@pytest.mark.parametrize("method", [Method.LHP, Method.EHP, Method.PAS, Method.DPAS])
def test_bucket_zero_is_a_bucket_and_no_bucket_never_sleeps(method: Method) -> None:
    config = PolicyConfig(method=method, lhp_window_ns=1_000, ehp=EhpParams(window_ns=1_000))
    policy = make_policy(config)
    small = Request(Op.READ, 512)  # one sector: bucket 0
    for t in range(0, 5_000, 500):  # completions of 6 µs fill the statistics windows
        io = policy.on_submit(0, small, t)
        if io.polled:
            policy.on_wait_start(io, t)
            policy.on_wait_end(io, t)
        policy.on_complete(io, t + 6_000, found_on_first_poll=False)
    io = policy.on_submit(0, small, 10_000)
    assert io.bucket == 0 and io.polled
    assert policy.on_wait_start(io, 10_000) > 0
    tiny = policy.on_submit(0, Request(Op.READ, 256), 10_000)
    assert tiny.bucket == -1 and tiny.polled and policy.on_wait_start(tiny, 10_000) == 0


@pytest.mark.parametrize("method", METHODS)
def test_the_configs_bucketing_reaches_every_method(method: Method) -> None:
    policy = make_policy(PolicyConfig(method=method, bucketing=Bucketing(stats_sectors_bug=True)))
    assert policy.on_submit(0, Request(Op.READ, 4096), 0).bucket == -1


def test_the_configs_parameters_reach_the_policy() -> None:
    pas = PasParams(d_init=777, adaptive=Adaptive.UP)
    switch = SwitchParams(param3=30)
    dpas = make_policy(PolicyConfig(method=Method.DPAS, pas=pas, switch=switch, order=Order.GUIDE))
    assert isinstance(dpas, DpasPolicy)
    assert (dpas.params, dpas.switch, dpas.order) == (pas, switch, Order.GUIDE)
    plain = make_policy(PolicyConfig(method=Method.PAS, pas=pas))
    assert type(plain) is PasPolicy and plain.params == pas
    ehp = make_policy(PolicyConfig(method=Method.EHP, ehp=EhpParams(ctx_ns=1)))
    assert ehp.params.overhead_ns == 2 + 1076  # type: ignore[attr-defined]
    lhp = make_policy(PolicyConfig(method=Method.LHP, io_poll_delay=3))
    assert lhp.on_wait_start(lhp.on_submit(0, Request(Op.READ, 4096), 0), 0) == 3_000


def test_pas_feedback_still_arrives_after_the_generation_wraps_to_zero() -> None:
    policy, clock = PasPolicy(PasParams(adaptive=Adaptive.OFF)), Clock()
    ios = steps(policy, clock, 256, jobs=1, overslept=False)
    assert ios[-1].dur_cnt == 0  # the 256th I/O slept generation 0
    state = policy.state(0, 6)
    assert state.dur_cnt_checked == 0 and state.update_req == 1


def test_lhp_fixed_delay_of_one_microsecond() -> None:
    policy = make_policy(PolicyConfig(method=Method.LHP, io_poll_delay=1))
    io = policy.on_submit(0, Request(Op.READ, 4096), 0)
    assert policy.on_wait_start(io, 0) == 1_000 == io.sleep_ns


def test_evaluation_with_a_period_of_one() -> None:
    policy, clock = DpasPolicy(switch=SwitchParams(param5=1)), Clock()
    steps(policy, clock, 1, jobs=1, overslept=False)
    t = policy.transitions[-1]
    assert (t.old, t.new, t.count, t.avg_qd) == (Mode.PAS, Mode.CP, 1, 10)


def test_a_period_of_zero_is_refused_where_the_kernel_would_divide_by_zero() -> None:
    with pytest.raises(ValueError, match="divide by zero"):
        SwitchParams(param5=0)


def test_ol_at_exactly_param3_stays() -> None:
    policy, clock = DpasPolicy(switch=SwitchParams(param2=9, param3=10, param5=4)), Clock()
    sw = policy.switch_state(0)
    sw.mode = Mode.OL
    # two 2-job steps: the evaluation at the 2nd step's first wait sees qd_sum 3 + 1 over 4
    steps(policy, clock, 2, jobs=2, overslept=False)
    assert sw.mode == Mode.OL and policy.transitions == []
    # then qd_sum 2 (left) + 3 + 1 over 4 I/Os: avg 15 > 10
    steps(policy, clock, 2, jobs=2, overslept=False)
    t = policy.transitions[-1]
    assert (t.new, t.avg_qd) == (Mode.INT, 15)


def test_int_to_ol_records_the_tf_it_reset() -> None:
    policy, clock = DpasPolicy(switch=SwitchParams(param7=3)), Clock()
    sw = policy.switch_state(0)
    sw.mode, sw.tf = Mode.INT, 4
    steps(policy, clock, 3, jobs=1, overslept=False)
    t = policy.transitions[-1]
    assert (t.old, t.new, t.tf, sw.tf) == (Mode.INT, Mode.OL, 4, 0)


@pytest.mark.parametrize("value", [-1, 0, 5])
def test_switch_params_accept_minus_one_and_up(value: int) -> None:
    assert SwitchParams(param1=value).param1 == value


@pytest.mark.parametrize("value", [-2, 1.5, "3"])
def test_switch_params_refuse_others(value: object) -> None:
    """A wrong type is a TypeError where dpas.policy is compiled (mypyc checks annotations)."""
    with pytest.raises((ValueError, TypeError), match="switch_param1|int object expected"):
        SwitchParams(param1=value)  # type: ignore[arg-type]


def test_pas_params_refuse_a_zero_updn_ratio_but_allow_zero_rates() -> None:
    with pytest.raises(ValueError, match="updn_ratio"):
        PasParams(updn_ratio=0)
    assert PasParams(up_init=0, heat_up=0).up_init == 0


def test_requests_without_a_bucket_are_still_recorded_by_dpas() -> None:
    policy = DpasPolicy()
    request = Request(Op.READ, 256)
    io = policy.on_submit(2, request, 99)
    assert (io.request, io.cpu, io.submit_ns, io.bucket, io.polled, io.mode) == (
        request,
        2,
        99,
        -1,
        True,
        None,
    )


def test_dpas_counts_bucket_zero_requests() -> None:
    policy = DpasPolicy()
    io = policy.on_submit(0, Request(Op.READ, 512), 0)
    assert io.mode == Mode.PAS and policy.switch_state(0).totals["pas"] == 1


def test_ehp_judges_bucket_zero_too() -> None:
    ehp = make_policy(PolicyConfig(method=Method.EHP, ehp=EhpParams(window_ns=1_000)))
    small = Request(Op.READ, 512)
    ehp.on_complete(ehp.on_submit(0, small, 0), 50_000)
    assert not ehp.on_submit(0, small, 60_000).polled


def test_ol_evaluation_with_a_period_of_one() -> None:
    policy, clock = DpasPolicy(switch=SwitchParams(param5=1)), Clock()
    policy.switch_state(0).mode = Mode.OL
    steps(policy, clock, 1, jobs=1, overslept=False)
    t = policy.transitions[-1]
    assert (t.old, t.new, t.count, t.avg_qd) == (Mode.OL, Mode.PAS, 1, 10)


def test_no_bucket_never_reads_another_buckets_statistics() -> None:
    # bucket 15 (large writes) has statistics; a request with no bucket must not use them
    lhp = make_policy(PolicyConfig(method=Method.LHP, lhp_window_ns=1_000))
    big = lhp.on_submit(0, Request(Op.WRITE, 1 << 20), 0)
    assert big.bucket == 15
    lhp.on_complete(big, 50_000)
    tiny = lhp.on_submit(0, Request(Op.READ, 256), 60_000)
    assert lhp.on_wait_start(tiny, 60_000) == 0
    assert lhp.on_wait_start(lhp.on_submit(0, Request(Op.WRITE, 1 << 20), 60_000), 60_000) > 0
