"""LHP's windowed mean, EHP's benefit test, and the two fixed methods (reference §1, §3)."""

from __future__ import annotations

import pytest
from conftest import read_4k

from dpas.policy import (
    CpPolicy,
    EhpParams,
    EhpPolicy,
    IntPolicy,
    LhpPolicy,
    Method,
    Op,
    Policy,
    PolicyConfig,
    Request,
    make_policy,
)
from dpas.policy.windows import BucketStat, StatWindows

MS = 1_000_000


def complete(
    policy: Policy, submit_ns: int, latency_ns: int, request: Request | None = None
) -> None:
    io = policy.on_submit(0, request or read_4k(), submit_ns)
    policy.on_complete(io, submit_ns + latency_ns)


def sleep_at(policy: Policy, now_ns: int, request: Request | None = None) -> int:
    io = policy.on_submit(0, request or read_4k(), now_ns)
    return policy.on_wait_start(io, now_ns)


def test_lhp_does_not_sleep_before_the_first_window_closes() -> None:
    lhp = LhpPolicy()
    complete(lhp, 0, 20_000)  # opens the window at 20 µs; it closes at 100.02 ms
    complete(lhp, 50 * MS, 30_000)
    assert sleep_at(lhp, 99 * MS) == 0
    assert lhp.stats.windows_closed == 0


def test_lhp_sleeps_half_the_last_windows_mean_rounded_up() -> None:
    lhp = LhpPolicy()
    complete(lhp, 0, 20_000)
    complete(lhp, 1 * MS, 30_001)  # mean (20000 + 30001) // 2 = 25000
    assert sleep_at(lhp, 101 * MS) == (25_000 + 1) // 2 == 12_500
    assert lhp.stats.windows_closed == 1


def test_lhp_latency_shelving_lasts_until_the_window_ends() -> None:
    lhp = LhpPolicy()
    complete(lhp, 0, 40_000)
    assert sleep_at(lhp, 101 * MS) == 20_000
    # the device got faster; the sleep does not follow until the next window closes
    complete(lhp, 102 * MS, 10_000)
    assert sleep_at(lhp, 150 * MS) == 20_000
    assert sleep_at(lhp, 203 * MS) == 5_000


def test_lhp_keeps_a_buckets_mean_when_its_window_had_no_samples() -> None:
    lhp = LhpPolicy()
    write = Request(Op.WRITE, 4096)
    complete(lhp, 0, 40_000)
    complete(lhp, 0, 60_000, write)
    assert sleep_at(lhp, 101 * MS) == 20_000
    complete(lhp, 102 * MS, 80_000, write)  # the next window has writes only
    assert sleep_at(lhp, 203 * MS) == 20_000
    assert sleep_at(lhp, 203 * MS, write) == 40_000


def test_lhp_window_length_is_a_parameter() -> None:
    lhp = make_policy(PolicyConfig(method=Method.LHP, lhp_window_ns=10 * MS))
    complete(lhp, 0, 20_000)
    assert sleep_at(lhp, 11 * MS) == 10_000


def test_lhp_fixed_delay_sleeps_n_microseconds_from_the_start() -> None:
    lhp = LhpPolicy(io_poll_delay=7)
    assert sleep_at(lhp, 0) == 7_000
    with pytest.raises(ValueError, match="io_poll_delay"):
        LhpPolicy(io_poll_delay=-1)


def test_windows_mean_is_an_integer_division_and_min_tracks_the_smallest() -> None:
    w = StatWindows(100)
    for value in (10, 11, 11):
        w.add(0, value, now_ns=0)
    w.add(1, -5, now_ns=0)  # a completion stamped before its start counts as 0
    stat = w.stat(0, 100)
    assert stat is not None and (stat.mean, stat.min, stat.nr_samples) == (10, 10, 3)
    assert type(stat.mean) is int
    neg = w.published[1]
    assert neg is not None and (neg.min, neg.mean) == (0, 0)
    w.add(0, 50, now_ns=200)
    w.advance(300)
    assert w.windows_closed == 2


def test_per_cpu_windows_merge_the_cpus_in_order_truncating_at_each() -> None:
    """The artifact's blk_rq_stat_sum, by hand: CPUs 0, 1, 2 of bucket 1 hold (2 samples, sum
    21), (3, 19), (1, 30). In CPU order: 21 // 2 = 10; (19 + 10 x 2) // 5 = 7; (30 + 7 x 5) // 6
    = 10, where the window's own mean is 70 // 6 = 11 (and CPU order 2, 1, 0 would give 11).
    The samples arrive out of CPU order; bucket 3 (CPU 1 alone) is merged apart."""
    w = StatWindows(1_000, per_cpu=True)
    for cpu, value in ((2, 30), (1, 5), (0, 10), (1, 6), (1, 8), (0, 11)):
        w.add(1, value, now_ns=0, cpu=cpu)
    w.add(3, 100, now_ns=0, cpu=1)
    w.add(3, 103, now_ns=0, cpu=1)
    assert w.stat(1, 1_000) == BucketStat(6, 10, 5)
    assert w.published[3] == BucketStat(2, 101, 100)
    # the next window starts from empty sums: CPU 0's 40 alone
    w.add(1, 40, now_ns=2_000, cpu=0)
    assert w.stat(1, 3_000) == BucketStat(1, 40, 40)
    assert w.published[3] == BucketStat(2, 101, 100)  # no samples: kept
    whole = StatWindows(1_000)
    for value in (30, 5, 10, 6, 8, 11):
        whole.add(1, value, now_ns=0)
    assert whole.stat(1, 1_000) == BucketStat(6, 11, 5)


@pytest.mark.parametrize("window", [0, -1])
def test_windows_need_a_positive_length(window: int) -> None:
    with pytest.raises(ValueError, match="expected > 0"):
        StatWindows(window)
    assert StatWindows(1).window_ns == 1


def test_windows_open_at_the_first_sample_after_a_close() -> None:
    w = StatWindows(100)
    w.add(0, 10, now_ns=1_000)
    assert w.end_ns == 1_100
    w.add(0, 30, now_ns=1_100)  # at the end: closes first, then opens the next window
    assert w.windows_closed == 1 and w.end_ns == 1_200
    assert w.published[0] is not None and w.published[0].mean == 10
    w.add(0, 20, now_ns=1_150)
    assert w.stat(0, 1_200) == w.published[0] and w.published[0].min == 20
    assert w.published[0].nr_samples == 2 and w.published[0].mean == 25


def test_ehp_polls_when_interrupt_overhead_matters_and_sleeps_min_minus_overhead() -> None:
    ehp = EhpPolicy()
    assert ehp.params.overhead_ns == 2 * 1487 + 1076 == 4050
    complete(ehp, 0, 9_000)
    complete(ehp, 1 * MS, 7_000)
    io = ehp.on_submit(0, read_4k(), 11 * MS)
    assert io.polled and ehp.on_wait_start(io, 11 * MS) == 7_000 - 4_050


def test_ehp_sleep_is_zero_when_min_is_below_the_overhead() -> None:
    ehp = EhpPolicy()
    complete(ehp, 0, 3_000)
    assert sleep_at(ehp, 11 * MS) == 0


def test_ehp_takes_interrupts_when_latency_dwarfs_the_overhead() -> None:
    ehp = EhpPolicy()
    complete(ehp, 0, 40_500)  # 4050 * 10 is not > 40500
    assert not ehp.on_submit(0, read_4k(), 11 * MS).polled
    ehp2 = EhpPolicy()
    complete(ehp2, 0, 40_499)
    assert ehp2.on_submit(0, read_4k(), 11 * MS).polled


def test_ehp_polls_without_sleeping_before_its_first_window() -> None:
    ehp = EhpPolicy(EhpParams(window_ns=5 * MS))
    complete(ehp, 0, 100_000)
    io = ehp.on_submit(0, read_4k(), 4 * MS)
    assert io.polled and ehp.on_wait_start(io, 4 * MS) == 0
    assert not ehp.on_submit(0, read_4k(), 6 * MS).polled


def test_int_never_polls_and_cp_never_sleeps() -> None:
    int_io = IntPolicy().on_submit(3, read_4k(), 0)
    assert not int_io.polled and int_io.cpu == 3
    cp = CpPolicy()
    io = cp.on_submit(0, read_4k(), 0)
    assert io.polled and cp.on_wait_start(io, 0) == 0


def test_every_method_builds_from_its_name() -> None:
    names = {
        make_policy(PolicyConfig(method=Method.parse(m.lower()))).name
        for m in ("int", "cp", "lhp", "ehp", "pas", "dpas")
    }
    assert names == {"INT", "CP", "LHP", "EHP", "PAS", "DPAS"}
    with pytest.raises(ValueError, match="expected one of INT, CP, LHP, EHP, PAS, DPAS"):
        Method.parse("hybrid")
