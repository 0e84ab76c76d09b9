"""The engine's C pacer against dpas.workload.Pacer, the one rule of when a job may issue.

``_engine.pace`` runs the loop's own pacer (the functions workload_loop calls) over a list of
calls, as CPython's _heapq sits beside heapq: every answer and the state after every call must
be the reference's, for hypothesis's patterns and call sequences, arbitrary and job-like. Then
the whole loop on the fake device (virtual clock): each job's I/Os go out exactly when the
Pacer, fed the job's own completion times, lets them; and a DPAS workload run fills the
record's timeline and mode shares, its every decision replaying through dpas.policy.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dpas.engine import _engine
from dpas.engine.audit import replay_differences
from dpas.engine.record import workload_record
from dpas.engine.run import EngineResult, EngineRun, FakeDevice, JobResult, run
from dpas.policy import Op, PasParams, PolicyConfig, SwitchParams
from dpas.workload import NEVER, Group, Pacer, Pattern, Role, Workload

MS = 1_000_000
S = 1_000_000_000
NEXT_AT, ISSUED = 0, 1

#: times on a coarse grid too, so that the rule's boundaries (an epoch's end, a phase's, the
#: stop) are met exactly, not only straddled
grid = st.integers(0, 200).map(lambda k: k * 10 * MS)
times = st.one_of(grid, st.integers(0, 20 * S))
spans = st.one_of(grid.filter(bool), st.integers(1, 3 * S))
patterns = st.builds(
    Pattern,
    rate_iops=st.one_of(st.just(0), st.sampled_from((1, 100, 1000)), st.integers(1, 2_000_000)),
    think_ns=st.integers(0, 10 * MS),
    burst_ios=st.one_of(st.just(0), st.integers(1, 40)),
    period_ns=st.one_of(st.just(0), spans),
    start_ns=st.one_of(st.just(0), times),
    stop_ns=st.one_of(st.just(0), times),
    on_ns=st.one_of(st.just(0), spans),
    off_ns=st.one_of(st.just(0), spans),
).map(lambda p: p if p.on_ns else Pattern(**{**asdict(p), "off_ns": 0}))


def reference(pattern: Pattern, end_ns: int, calls: list[tuple[int, int]]) -> list[tuple[int, ...]]:
    """What _engine.pace answers, from dpas.workload.Pacer."""
    pacer = Pacer(pattern, end_ns)
    out = []
    for kind, now in calls:
        answer = pacer.next_at(now) if kind == NEXT_AT else -1
        if kind == ISSUED:
            pacer.issued(now)
        out.append((answer, pacer.epoch_start, pacer.in_epoch, pacer.count, pacer.first))
    return out


def job_calls(pattern: Pattern, end_ns: int, gaps: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """A job's calls: ask, wake up ``late`` after the answer, issue, take ``busy`` (service
    and think time) before asking again, until the Pacer says never."""
    pacer = Pacer(pattern, end_ns)
    calls, now = [], 0
    for late, busy in gaps:
        calls.append((NEXT_AT, now))
        at = pacer.next_at(now)
        if at == NEVER:
            break
        calls.append((ISSUED, at + late))
        pacer.issued(at + late)
        now = at + late + busy
    return calls


@settings(max_examples=400, deadline=None)
@given(
    pattern=patterns,
    end_ns=times,
    calls=st.lists(st.tuples(st.sampled_from((NEXT_AT, ISSUED)), times), max_size=60),
)
def test_the_c_pacer_answers_as_the_reference_for_any_calls(
    pattern: Pattern, end_ns: int, calls: list[tuple[int, int]]
) -> None:
    assert _engine.pace(asdict(pattern), end_ns, calls) == reference(pattern, end_ns, calls)


@settings(max_examples=400, deadline=None)
@given(
    pattern=patterns,
    end_ns=times,
    gaps=st.lists(
        st.tuples(st.sampled_from((0, 0, 1, 50_000)), st.one_of(grid, st.integers(0, 5 * MS))),
        min_size=1,
        max_size=120,
    ),
)
def test_the_c_pacer_answers_as_the_reference_for_a_jobs_calls(
    pattern: Pattern, end_ns: int, gaps: list[tuple[int, int]]
) -> None:
    calls = job_calls(pattern, end_ns, gaps)
    assert _engine.pace(asdict(pattern), end_ns, calls) == reference(pattern, end_ns, calls)


tiny = st.integers(0, 6)
#: every time a few ns: each boundary of the rule (==, one either side) is met all the time
tiny_patterns = st.builds(
    Pattern,
    rate_iops=st.sampled_from((0, 250_000_000, 333_333_333, 1_000_000_000)),
    burst_ios=st.integers(0, 3),
    period_ns=tiny,
    start_ns=tiny,
    stop_ns=tiny,
    on_ns=tiny,
    off_ns=tiny,
).map(lambda p: p if p.on_ns else Pattern(**{**asdict(p), "off_ns": 0}))


@settings(max_examples=800, deadline=None)
@given(
    pattern=tiny_patterns,
    end_ns=st.integers(0, 30),
    calls=st.lists(st.tuples(st.sampled_from((NEXT_AT, ISSUED)), st.integers(0, 30)), max_size=30),
)
def test_the_c_pacer_answers_as_the_reference_at_every_boundary(
    pattern: Pattern, end_ns: int, calls: list[tuple[int, int]]
) -> None:
    assert _engine.pace(asdict(pattern), end_ns, calls) == reference(pattern, end_ns, calls)


def test_pace_refuses_what_a_pattern_cannot_be() -> None:
    with pytest.raises(ValueError, match="rate_iops is out of range"):
        _engine.pace({**asdict(Pattern()), "rate_iops": -1}, S, [])
    with pytest.raises(ValueError, match="off_ns needs on_ns"):
        _engine.pace(asdict(Pattern(off_ns=5)), S, [])
    with pytest.raises(KeyError, match="missing think_ns"):
        _engine.pace({"rate_iops": 1}, S, [])
    with pytest.raises(ValueError, match="a call is"):
        _engine.pace(asdict(Pattern()), S, [(2, 0)])


# ---- the loop on the fake device ------------------------------------------------------------

DEVICE = FakeDevice(device_ns=(7_000, 9_000, 12_000, 8_000, 30_000, 5_000, 11_000),
                    late_ns=(0, 500, 3_000, 1_200, 6_000))  # fmt: skip
PATTERNED = Workload(
    "patterned",
    (
        Group("reader", jobs=1, cpus="0"),
        Group("bursts", Role.BACKGROUND, jobs=2, cpus="0-1", pinned=False, bs=65536,
              pattern=Pattern(burst_ios=20, period_ns=50 * MS, think_ns=300_000)),
        Group("phases", Role.BACKGROUND, jobs=1, cpus="1", rw=Op.WRITE, offsets="zipf:0.9",
              pattern=Pattern(rate_iops=3000, start_ns=100 * MS, stop_ns=900 * MS,
                              on_ns=150 * MS, off_ns=100 * MS)),
    ),
)  # fmt: skip


def fake_run(mode: str, workload: Workload, runtime_s: float = 1.0) -> EngineResult:
    config = EngineRun(
        Path("/nonexistent"),
        mode,
        policy=PolicyConfig(pas=PasParams(d_init=4000)),
        runtime_s=runtime_s,
        region_bytes=64 << 20,
        log_ios=400_000,
    ).with_workload(workload, online=2)
    return run(config, device=DEVICE)


def follows_pacer(job: JobResult, pattern: Pattern, end_ns: int) -> None:
    """Each I/O went out when the Pacer, asked after the previous one's completion and think
    time, said; the job ended when it said never, or with an I/O completing past the end."""
    pacer, now = Pacer(pattern, end_ns), 0
    for entry in job.log:
        at = pacer.next_at(now)
        assert at == int(entry["submit_ns"])
        pacer.issued(at)
        now = int(entry["done_ns"]) + pattern.think_ns
    assert pacer.next_at(now) == NEVER or int(job.log["done_ns"][-1]) >= end_ns


def test_every_io_of_a_fake_run_goes_out_when_the_pacer_says() -> None:
    result = fake_run("INT", PATTERNED)
    assert result.logged_all
    for job, spec in zip(result.jobs, result.run.specs, strict=True):
        if spec.group:
            follows_pacer(job, spec.pattern, S)
    bursts = result.group_jobs(1)
    for job in bursts:
        # the epochs at 0, 50, ... 950 ms: 20 I/Os each, back to back from the epoch's start
        epochs = job.log["submit_ns"] // (50 * MS)
        assert np.bincount(epochs).tolist() == [20] * 20
        assert job.log["submit_ns"][::20].tolist() == [k * 50 * MS for k in range(20)]
    (phased,) = result.group_jobs(2)
    submit = phased.log["submit_ns"]
    assert submit[0] == 100 * MS and submit[-1] < 900 * MS
    # each on-window (100-250, 350-500, 600-750, 850-900 ms) paces 3000 a second anew from
    # its first I/O: 450 + 450 + 450 + 150, one fewer in a window whose first I/O went out
    # more than 1/3 ms late
    assert 1500 - 4 <= len(submit) <= 1500
    # every I/O is in a bin of its completion time; the bins' sums are the job's
    for job in result.jobs:
        assert job.bins.shape == (10, 2)
        assert job.bins[:, 0].sum() == job.ios and job.bins[:, 1].sum() == job.lat_sum_ns


def test_a_workloads_jobs_do_their_groups_io() -> None:
    result = fake_run("INT", PATTERNED, runtime_s=0.3)
    for job, spec in zip(result.jobs, result.run.specs, strict=True):
        offsets = job.log["offset"]
        assert np.all(offsets % spec.bs == 0) and np.all(offsets + spec.bs <= 64 << 20)
    assert [s.rw for s in result.run.specs] == [Op.READ, Op.READ, Op.READ, Op.WRITE]
    assert [s.allowed for s in result.run.specs] == [(), (0, 1), (0, 1), ()]
    assert result.run.ops == (Op.READ, Op.READ, Op.READ, Op.WRITE)
    assert result.run.sizes == (4096, 65536, 65536, 4096)


def test_a_dpas_workload_run_fills_the_timeline_and_mode_shares() -> None:
    """One job a CPU (each CPU's DPAS state sees one virtual clock): the bursts' CPU swings
    between the modes, and every decision and transition replays through dpas.policy, each
    I/O with its own job's op and size."""
    workload = Workload(
        "swing",
        (
            Group("reader", jobs=1, cpus="0"),
            Group("bursts", Role.BACKGROUND, jobs=1, cpus="1", bs=131072,
                  pattern=Pattern(burst_ios=50, period_ns=20 * MS)),
        ),
    )  # fmt: skip
    result = fake_run("DPAS", workload, runtime_s=0.5)
    assert replay_differences(result) == []
    record = workload_record(result, 1, SwitchParams(), online=2)
    assert record.timeline and record.mode_share is not None
    assert {cpu for _, cpu, _, _ in record.timeline} == {0, 1}
    assert sum(record.mode_share.values()) == pytest.approx(1.0)
    assert record.breakdown is not None and sum(record.breakdown.values()) == result.ios
    assert record.workload == "swing" and record.jobs == 1
    assert [g["name"] for g in record.groups or []] == ["reader", "bursts"]
