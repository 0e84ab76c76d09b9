"""The hot loop's call sequence, where it runs: the compiled loop itself (job threads, domain
locks, policy core, log, histogram) on the fake device, whose I/Os complete at scripted times on
a virtual clock. Every expectation is computed here from the script, not by the engine: which
I/Os slept, which were found on the first poll pass, what each latency was; and the log,
replayed through dpas.policy with the verdicts recomputed from its times, must give the engine's
every decision. A dropped policy call, a wrong order or an inverted verdict fails here, in the
fast suite, without a polled drive."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dpas.engine.audit import replay_differences
from dpas.engine.iolog import (
    BOUNDARY,
    COMPLETE,
    FOUND_FIRST,
    POLLED,
    SLEPT,
    verdicts,
)
from dpas.engine.run import EngineResult, EngineRun, FakeDevice, run
from dpas.policy import EhpParams, Method, Order, PasParams, PolicyConfig

#: device times around PAS's d_init and timer lateness, so that both verdicts occur
DEVICE = FakeDevice(device_ns=(7_000, 9_000, 12_000, 8_000, 30_000, 5_000, 11_000),
                    late_ns=(0, 500, 3_000, 1_200, 6_000))  # fmt: skip
POLICIES = ("LHP", "EHP", "PAS", "DPAS")
PLACEMENTS = ((0,), (0, 0), (0, 1), (1, 0, 1))
IOS = 4000


def fake_run(mode: str, cpus: tuple[int, ...], order: Order = Order.KERNEL) -> EngineResult:
    policy = PolicyConfig(
        pas=PasParams(d_init=4000),
        order=order,
        lhp_window_ns=2_000_000,
        ehp=EhpParams(window_ns=1_000_000),
    )
    config = EngineRun(
        Path("/nonexistent"),
        mode,
        policy=policy,
        cpus=cpus,
        runtime_s=1e6,
        ios_per_job=IOS,
        region_bytes=1 << 20,
        log_ios=IOS,
    )
    return run(config, device=DEVICE)


def script(values: tuple[int, ...], start: int, n: int) -> np.ndarray:
    return np.array([values[(start + k) % len(values)] for k in range(n)], dtype=np.int64)


@pytest.mark.parametrize("cpus", PLACEMENTS, ids=str)
@pytest.mark.parametrize("mode", POLICIES)
def test_each_io_waits_as_the_script_says(mode: str, cpus: tuple[int, ...]) -> None:
    result = fake_run(mode, cpus)
    assert result.ios == IOS * len(cpus) and result.logged_all
    for index, job in enumerate(result.jobs):
        log = job.log
        device = script(DEVICE.device_ns, 7 * index, len(log))
        polled = (log["flags"] & POLLED) != 0
        slept = (log["flags"] & SLEPT) != 0
        assert np.array_equal(slept, polled & (log["sleep_ns"] > 0))
        late = np.zeros(len(log), dtype=np.int64)
        late[slept] = script(DEVICE.late_ns, 5 * index, int(slept.sum()))
        woke = log["sleep_ns"] + late
        # found on the first pass exactly when the sleep outlasted the device
        found = slept & (woke >= device)
        assert np.array_equal((log["flags"] & FOUND_FIRST) != 0, found)
        assert np.array_equal(verdicts(log), found)
        assert (job.overslept, job.underslept, job.sleeps) == (
            int(found.sum()), int((slept & ~found).sum()), int(slept.sum()))  # fmt: skip
        # a found I/O is booked at its wake-up; the others when the device is done
        latency = log["done_ns"] - log["submit_ns"]
        assert np.array_equal(latency, np.where(found, woke, device))
        # the decisions are taken at submission; a sleeping I/O's wake-up after its sleep
        assert np.array_equal(log["wait_start_ns"][polled], log["submit_ns"][polled])
        assert np.array_equal(log["wait_end_ns"][slept], (log["submit_ns"] + woke)[slept])
        unslept = polled & ~slept
        assert np.array_equal(log["wait_end_ns"][unslept], log["submit_ns"][unslept])
        # each I/O's events in order: submit, wait start, wait end, complete (PAS, DPAS: the
        # CPU's event numbers; LHP, EHP: the window epochs they saw, which never go back)
        seq = log["seq"].astype(np.int64)
        before = np.less if mode in ("PAS", "DPAS") else np.less_equal
        assert np.all(before(seq[polled, 0], seq[polled, 1]))
        assert np.all(before(seq[polled, 1], seq[polled, 2]))
        assert np.all(before(seq[polled, 2], seq[polled, 3]))
        assert np.all(before(seq[:, 0], seq[:, 3]))
        # the histogram holds every latency
        assert int(job.hist.sum()) == job.ios and job.lat_sum_ns == int(latency.sum())
    assert replay_differences(result) == []


@pytest.mark.parametrize("mode", POLICIES)
def test_both_verdicts_and_every_path_occur(mode: str) -> None:
    """The script exercises what the sequence test must see: sleeps found and not found."""
    log = np.concatenate([j.log for j in fake_run(mode, (0, 1)).jobs])
    slept = (log["flags"] & SLEPT) != 0
    found = (log["flags"] & FOUND_FIRST) != 0
    assert slept.any() and found.any() and (slept & ~found).any(), mode
    if mode == "DPAS":
        # DPAS also takes CP's path (polled at once) in its CP phase
        assert ((log["flags"] & POLLED != 0) & ~slept).any()


def test_dpas_reaches_the_labs_split_at_one_job() -> None:
    """One job on one CPU: DPAS settles in CP with a PAS evaluation phase, as the lab shows
    (10:1), in either test order."""
    for order in Order:
        (cpu,) = fake_run("DPAS", (0,), order).cpus
        assert cpu.totals["cp"] > 5 * cpu.totals["pas"] > 0, (order, cpu.totals)


def test_the_fake_run_is_deterministic() -> None:
    """One job per CPU, PAS and DPAS (per-CPU state only): the same script, the same run.
    (Jobs that share a CPU or LHP's windows interleave as their threads are scheduled.)"""
    a, b = (fake_run("DPAS", (0, 1)) for _ in range(2))
    for x, y in zip(a.jobs, b.jobs, strict=True):
        assert np.array_equal(x.log, y.log) and np.array_equal(x.hist, y.hist)


@pytest.mark.parametrize("flip", ["verdict", "sleep", "order"])
def test_the_replay_catches_a_tampered_log(flip: str) -> None:
    """What a broken loop would log, the replay names: a verdict that its times contradict,
    a sleep the policy did not decide, events out of the order they were applied in."""
    result = fake_run("DPAS" if flip == "order" else "PAS", (0,))
    log = result.jobs[0].log.copy()
    slept = np.flatnonzero(log["flags"] & SLEPT)
    i = int(slept[len(slept) // 2])
    if flip == "verdict":
        log["flags"][i] ^= FOUND_FIRST
    elif flip == "sleep":
        log["sleep_ns"][i] += 1
    else:
        log["seq"][i, 1], log["seq"][i, 2] = log["seq"][i, 2], log["seq"][i, 1]
        log["wait_end_ns"][i] = log["wait_start_ns"][i]
    tampered = EngineResult(result.run, [_with_log(result.jobs[0], log)], result.cpus,
                            result.runtime_ns)  # fmt: skip
    assert replay_differences(tampered) != []


def _with_log(job: object, log: np.ndarray) -> object:
    from dataclasses import replace

    return replace(job, log=log)  # type: ignore[type-var]


def test_kernel_waits_on_the_fake_device_take_the_device_time() -> None:
    """INT, CP and HYB: one submit-and-wait, latency the device's time, no decisions."""
    for mode in ("INT", "CP", "HYB"):
        result = run(
            EngineRun(
                Path("/x"),
                mode,
                cpus=(0,),
                runtime_s=1e6,
                ios_per_job=100,
                region_bytes=1 << 20,
                log_ios=100,
            ),  # fmt: skip
            device=DEVICE,
        )
        log = result.jobs[0].log
        assert np.array_equal(log["done_ns"] - log["submit_ns"], script(DEVICE.device_ns, 0, 100))
        assert result.jobs[0].sleeps == 0
        assert bool(log["flags"][0] & POLLED) is (mode != "INT")
        assert Method(mode if mode != "HYB" else "CP") is not None


@pytest.mark.parametrize("mode", ["LHP", "EHP"])
def test_windows_open_and_close_once_each_across_the_cpus(mode: str) -> None:
    """LHP and EHP keep their statistics per CPU; each window is opened by one completion and
    closed by one event, on whichever CPU, holding every CPU: the epochs count them."""
    result = fake_run(mode, (0, 1, 0, 1))
    log = np.concatenate([j.log for j in result.jobs])
    boundaries = sum(int(((log["flags"] & (BOUNDARY << k)) != 0).sum()) for k in range(4))
    epochs = int(log["seq"].max())
    assert boundaries == epochs > 4
    assert ((log["flags"] & (BOUNDARY << COMPLETE)) != 0).any()  # completions open them
    assert replay_differences(result) == []
