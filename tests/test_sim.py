"""The system simulator: determinism, the wait paths, the pitfalls' symptoms, the metrics."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from dpas.policy import Method, Op, PasParams
from dpas.sim import ProfileError, RunConfig, load, simulate
from dpas.sim.device import Device
from dpas.sim.engine import Engine
from dpas.sim.profile import parse, shipped

LAB = load("qemu-lab")


def run(method: str, jobs: int = 1, profile=LAB, **kw) -> object:  # type: ignore[no-untyped-def]
    kw.setdefault("runtime_s", 0.05)
    return simulate(RunConfig(profile, Method.parse(method), jobs=jobs, **kw))


def test_same_config_same_record_other_seed_other_record() -> None:
    a, b = run("DPAS", 2, seed=5), run("DPAS", 2, seed=5)
    assert a == b
    assert run("DPAS", 2, seed=6) != a


def test_metrics_are_consistent() -> None:
    r = run("DPAS", 4)
    assert r.iops * r.runtime_s == pytest.approx(r.ios)
    assert r.lat_p50_us <= r.lat_p99_us <= r.lat_p999_us
    assert sum(r.breakdown.values()) >= r.ios  # every completed I/O was counted in a mode
    assert [line["text"].startswith("CPU[ 0] MODE[") for line in r.switch_stat] == [True]


def test_cp_busy_polls_the_whole_time_and_never_switches_alone() -> None:
    r = run("CP")
    assert r.cpu_pct == pytest.approx(100, abs=0.5) and r.ctx == 0
    assert r.sleeps_taken == 0


def test_cp_jobs_on_one_cpu_take_turns_by_time_slice() -> None:
    r = run("CP", 2, runtime_s=0.03)
    slice_ns = LAB.host.sched_latency_ns // 2
    assert r.ctx == pytest.approx(0.03e9 / slice_ns, abs=1)
    # one job polls at a time: no more IOPS than one job alone
    assert r.iops == pytest.approx(run("CP", 1, runtime_s=0.03).iops, rel=0.05)


def test_int_sleeps_once_per_io_and_its_cpu_is_the_paths_cost() -> None:
    r = run("INT")
    assert r.ctx == r.ios or r.ctx == r.ios + 1
    h = LAB.host
    # one job: the interrupt arrives while the CPU idles, so its handler is no job's time
    cost = h.submit_ns + h.complete_ns + h.ctx_switch_ns
    assert r.cpu_pct == pytest.approx(100 * cost / (r.lat_mean_us * 1000), rel=0.03)


def test_pas_sleeps_and_its_latency_is_between_cp_and_int() -> None:
    pas, cp, int_ = run("PAS", pas=PasParams(d_init=4500)), run("CP"), run("INT")
    assert pas.sleeps_taken > 0.9 * pas.ios
    assert cp.lat_mean_us < pas.lat_mean_us < int_.lat_mean_us
    assert pas.cpu_pct < cp.cpu_pct


def test_pitfall_stats_sectors_bug_leaves_pas_io_at_zero() -> None:
    buggy = LAB.with_pitfalls(stats_sectors_bug=True)
    r = run("DPAS", 2, profile=buggy)
    assert r.ios > 0 and r.breakdown == {"cp": 0, "pas": 0, "ol": 0, "int": 0}
    assert r.sleeps_taken == 0 and "pas io: 0" in r.switch_stat[0]["text"]
    fixed_by_wbt = buggy.with_pitfalls(queue_stats=True)
    assert run("DPAS", 2, profile=fixed_by_wbt).breakdown["pas"] > 0


@pytest.mark.parametrize("pitfall", [{"poll_queues": False}, {"io_poll_delay": -1}])
def test_pitfall_no_hybrid_path_means_no_sleeping(pitfall: dict) -> None:
    r = run("PAS", 2, profile=LAB.with_pitfalls(**pitfall), pas=PasParams(d_init=4500))
    assert r.ios > 0
    assert r.sleeps_taken == r.sleeps_skipped == 0
    assert r.cpu_pct == pytest.approx(50, abs=1)  # two spinning jobs share CPU 0


def test_pitfall_timer_arming_without_always_yield_keeps_qd_at_one() -> None:
    # a 100 ns sleep expires while the timer is armed (several µs in QEMU): nobody yields.
    # The rates are 0 so that every sleep stays at d_init, as in the lab's measurement.
    short = PasParams(d_init=100, up_init=0, dn_init=0, adaptive=0)
    no_fix = LAB.with_pitfalls(always_yield=False)
    stuck = run("DPAS", 4, profile=no_fix, pas=short)
    assert stuck.max_qd == 1 and stuck.sleeps_taken == 0 and stuck.sleeps_skipped > 0
    fixed = run("DPAS", 4, profile=LAB, pas=short)
    assert fixed.max_qd > 1


def test_queue_depth_rises_only_when_jobs_share_a_cpu() -> None:
    four_cpus = dataclasses.replace(LAB, host=dataclasses.replace(LAB.host, cpus=4))
    alone = run("DPAS", 4, profile=four_cpus, cpus="split", pas=PasParams(d_init=4500))
    assert alone.max_qd == 1 and len(alone.switch_stat) == 4
    shared = run("DPAS", 4, profile=four_cpus, cpus="0", pas=PasParams(d_init=4500))
    assert shared.max_qd > 1


def test_ios_stops_the_run() -> None:
    r = run("INT", 2, ios=500, runtime_s=1.0)
    assert r.ios >= 500 and r.ios <= 502 and r.runtime_s < 0.1


def test_writes_use_the_write_latency() -> None:
    slow_writes = dataclasses.replace(LAB, device=dataclasses.replace(LAB.device, write_ns=60_000))
    r = run("CP", profile=slow_writes, rw=Op.WRITE)
    assert r.rw == "W" and r.lat_mean_us == pytest.approx(60 + 6 + 0.2, rel=0.05)


def test_device_controller_serves_one_command_at_a_time() -> None:
    quiet = dataclasses.replace(LAB.device, serial_cv=0.0, cv=0.0, tail_p=0.0)
    engine = Engine()
    device = Device(engine, quiet, __import__("numpy").random.default_rng(1))
    done: list[int] = []

    class Cmd:
        op, size = Op.READ, 4096

        def device_done(self) -> None:
            done.append(engine.now)

    for _ in range(3):
        device.submit(Cmd())
    engine.run(10**9)
    media = quiet.read_ns - quiet.serial_ns
    assert done == [quiet.serial_ns * k + media for k in (1, 2, 3)]


def test_profiles_ship_and_bad_ones_are_named(tmp_path: Path) -> None:
    assert "qemu-lab" in shipped()
    text = (Path(__file__).parents[1] / "src/dpas/sim/profiles/qemu-lab.toml").read_text()
    with pytest.raises(ProfileError, match=r"\[device\] has no key 'speed'"):
        parse(text.replace("[device]", "[device]\nspeed = 3"), "x.toml")
    with pytest.raises(ProfileError, match=r"\[host\] ctx_switch_ns = 'fast': expected int"):
        parse(text.replace("ctx_switch_ns = 2400", "ctx_switch_ns = 'fast'"), "x.toml")
    with pytest.raises(ProfileError, match=r"\[timer\] cancel_ns is missing"):
        parse(text.replace("cancel_ns = 3500", ""), "x.toml")
    with pytest.raises(ProfileError, match="not a file or a shipped profile"):
        load(str(tmp_path / "none.toml"))
