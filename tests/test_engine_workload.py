"""Workloads through the engine on this machine: INT on a file (no polled drive here), each
group's jobs doing their own I/O on the real clock: bursts per epoch, a rate, think time spun
on the CPU, seeded zipf offsets, reads and writes together, and the record of a workload run
through the Runner (one GroupResult a group, the series, the foreground's key)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dpas.bench.backend import Sweep
from dpas.engine.record import workload_record
from dpas.engine.run import EngineResult, EngineRun, run
from dpas.policy import Method, Op, SwitchParams
from dpas.real.executor import LocalExecutor
from dpas.real.runner import Runner
from dpas.real.site import RealBench, RealConfig
from dpas.workload import Group, Pattern, Role, Workload

SIZE = 16 << 20
MS = 1_000_000
ONLINE = 2


@pytest.fixture
def data_file(tmp_path: Path) -> Path:
    path = tmp_path / "data.img"
    path.write_bytes(np.random.default_rng(11).bytes(SIZE))
    return path


def int_run(
    target: Path, *groups: Group, runtime_s: float = 1.0, seed: int = 1, **rest: int
) -> EngineResult:
    config = EngineRun(
        target, "INT", runtime_s=runtime_s, region_bytes=SIZE, seed=seed, log_ios=100_000, **rest
    )
    return run(config.with_workload(Workload("test", groups), ONLINE))


def test_bursts_go_out_per_epoch(data_file: Path) -> None:
    """20 I/Os at the start of every 50 ms epoch, each job: never more in an epoch, about
    20 x 1000 / 50 a second. An epoch is found where the job waited (a gap of over 1 ms from a
    completion to the next submission): not on a grid from the first I/O, which may itself have
    gone out later after its epoch began than the next epoch's first one did."""
    bursts = Group("bursts", jobs=2, cpus="split", pattern=Pattern(burst_ios=20, period_ns=50 * MS))
    result = int_run(data_file, bursts)
    for job in result.jobs:
        waited = job.log["submit_ns"][1:] - job.log["done_ns"][:-1] > MS
        epochs = np.concatenate(([0], np.cumsum(waited)))
        assert np.bincount(epochs).max() <= 20
        assert 0.9 * 400 <= job.ios <= 400
        assert job.bins[:, 0].max() <= 40  # two epochs a 100 ms bin


def test_a_rate_is_kept(data_file: Path) -> None:
    result = int_run(data_file, Group("paced", pattern=Pattern(rate_iops=300)))
    record = workload_record(result, 1, SwitchParams(), ONLINE)
    (group,) = record.groups or []
    assert group["iops"] == pytest.approx(300, rel=0.15)
    assert record.iops == pytest.approx(300, rel=0.15)
    gaps = np.diff(result.jobs[0].log["submit_ns"])
    assert np.median(gaps) == pytest.approx(1e9 / 300, rel=0.15)


def test_think_time_is_spent_on_the_cpu(data_file: Path) -> None:
    """200 us of CPU work after each I/O: the group's CPU share is at least the share of the
    run its jobs spent thinking."""
    result = int_run(data_file, Group("thinker", pattern=Pattern(think_ns=200_000)), runtime_s=0.5)
    record = workload_record(result, 1, SwitchParams(), ONLINE)
    (group,) = record.groups or []
    thinking = group["ios"] * 200_000 / result.runtime_ns
    assert thinking > 0.3
    assert group["cpu_pct"] / 100 >= 0.9 * thinking


def test_zipf_offsets_are_seeded_and_skewed(data_file: Path) -> None:
    """The same seed gives the same offsets, I/O for I/O; another seed others; and zipf:1.2
    over the region's 4096 blocks puts about a fifth of the I/Os on the hottest one."""
    zipf = Group("hot", jobs=2, cpus="split", offsets="zipf:1.2")

    def offsets(seed: int) -> list[np.ndarray]:
        result = int_run(data_file, zipf, runtime_s=60, seed=seed, ios_per_job=2000)
        return [job.log["offset"].copy() for job in result.jobs]

    first, again, other = offsets(7), offsets(7), offsets(8)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not any(np.array_equal(a, b) for a, b in zip(first, other, strict=True))
    assert not np.array_equal(first[0], first[1])  # each job its own stream
    for job in first:
        assert np.all(job % 4096 == 0) and np.all(job < SIZE)
        counts = np.unique(job, return_counts=True)[1]
        assert 0.1 < counts.max() / len(job) < 0.4
    uniform = int_run(data_file, Group("flat"), runtime_s=60, ios_per_job=2000)
    flat = np.unique(uniform.jobs[0].log["offset"], return_counts=True)[1]
    assert flat.max() / 2000 < 0.01


def test_a_write_group_beside_a_read_group(data_file: Path) -> None:
    """The target is opened for both; each job does its own group's op and size."""
    before = data_file.read_bytes()
    reader = Group("reader", cpus="0")
    writer = Group("writer", Role.BACKGROUND, cpus="1", rw=Op.WRITE, bs=8192)
    result = int_run(data_file, reader, writer, runtime_s=60, ios_per_job=300)
    assert [j.ios for j in result.jobs] == [300, 300]
    assert np.all(result.jobs[1].log["offset"] % 8192 == 0)
    assert data_file.read_bytes() != before


def test_two_groups_through_the_runner_give_two_group_results(tmp_path: Path) -> None:
    """dpas.real.engine_runs: a workload's record keyed by its foreground (its jobs, its
    first group's rw), one GroupResult and one series a group, the host's CPU share."""
    data = tmp_path / "data"
    data.write_bytes(np.random.default_rng(2).bytes(SIZE))
    config = RealConfig(str(data), journal=tmp_path / "j.json", size=SIZE, engine="dpas")
    runner = Runner(config, LocalExecutor(tmp_path / "empty-sys"))
    runner.site.fio_size = SIZE
    runner.site.online_cpus = ONLINE
    workload = Workload(
        "two",
        (
            Group("front", jobs=2, cpus="split"),
            Group("back", Role.BACKGROUND, cpus="1", pinned=False, bs=65536,
                  pattern=Pattern(rate_iops=200)),
        ),
    )  # fmt: skip
    sweep = Sweep((Method.INT,), jobs=(2,), runtime_s=0.5, d_init_ns=4000, workload=workload)
    plan = runner.plan(Method.INT, sweep, 4000)
    record = runner.run_one(sweep, plan, 2, 1, RealBench(model="file"))
    assert record.workload == "two" and (record.mode, record.jobs, record.rw) == ("INT", 2, "R")
    groups = record.groups or []
    assert [(g["name"], g["role"], g["jobs"]) for g in groups] == [
        ("front", "foreground", 2),
        ("back", "background", 1),
    ]
    front, back = groups
    assert record.ios == front["ios"] > 0 and record.iops == front["iops"]
    assert back["iops"] == pytest.approx(200, rel=0.2)
    assert 0 < front["lat_p50_us"] <= front["lat_p99_us"] <= front["lat_p999_us"]
    assert record.host_cpu_pct is not None and record.host_cpu_pct > 0
    assert record.mode_share is None and record.timeline is None  # INT: no DPAS state
    series = (record.series or {})["groups"]
    assert set(series) == {"front", "back"}
    assert len(series["front"]["iops"]) == 5
    assert sum(series["front"]["iops"]) * 100 / 1000 == front["ios"]
