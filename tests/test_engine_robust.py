"""The engine under what a hostile world does to a run: signals at its job threads, a failure
while an I/O is in flight. On this machine's file system (INT reads for real; CP and PAS are
refused, the kernel cannot poll a file), and on the fake device with real sleeps for the
policy modes."""

from __future__ import annotations

import ctypes
import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from dpas.engine import EngineError, EngineRefused, EngineRun, run
from dpas.engine.audit import replay_differences
from dpas.engine.run import FakeDevice, Seams
from dpas.policy import PasParams, PolicyConfig

SIZE = 16 << 20
SYS_TGKILL = 234  # x86_64
LIBC = ctypes.CDLL(None, use_errno=True)


@pytest.fixture
def data_file(tmp_path: Path) -> Path:
    path = tmp_path / "data.img"
    path.write_bytes(np.random.default_rng(7).bytes(SIZE))
    return path


def job_threads() -> list[int]:
    """The engine's job threads: they are named dpas-job."""
    tids = []
    for task in Path("/proc/self/task").iterdir():
        try:
            if (task / "comm").read_text().strip() == "dpas-job":
                tids.append(int(task.name))
        except OSError:
            pass  # the thread ended meanwhile
    return tids


@contextmanager
def flood(sig: int = signal.SIGUSR1) -> Iterator[dict[str, int]]:
    """Sends ``sig`` to every job thread, as fast as it can, until the block ends; a Python
    handler is installed for it, as a profiler's or a library's would be."""
    sent = {"signals": 0, "handled": 0}
    done = threading.Event()

    def handler(signum: int, frame: object) -> None:
        sent["handled"] += 1

    def send() -> None:
        pid = os.getpid()
        while not done.is_set():
            for tid in job_threads():
                if LIBC.syscall(SYS_TGKILL, pid, tid, sig) == 0:
                    sent["signals"] += 1

    previous = signal.signal(sig, handler)
    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    try:
        yield sent
    finally:
        done.set()
        sender.join()
        signal.signal(sig, previous)


@pytest.mark.parametrize("block", [True, False], ids=["blocked", "delivered"])
def test_int_runs_through_thousands_of_signals(data_file: Path, block: bool) -> None:
    """Blocked (the default) or delivered to the job threads (each wait then returns EINTR and
    is retried), a signal never ends a run."""
    with flood() as sent:
        for _ in range(20):  # runs, until thousands of signals were sent during them
            result = run(
                EngineRun(data_file, "INT", cpus=(0, 1), runtime_s=0.5, region_bytes=SIZE),
                seams=Seams(block_signals=block),
            )
            assert result.ios > 0 and all(j.ios > 0 for j in result.jobs)
            if sent["signals"] > 2000:
                break
    assert sent["signals"] > 2000, sent


@pytest.mark.parametrize("block", [True, False], ids=["blocked", "delivered"])
@pytest.mark.parametrize("mode", ["CP", "PAS"])
def test_a_refusal_stays_a_refusal_under_signals(data_file: Path, mode: str, block: bool) -> None:
    with flood() as sent:
        for _ in range(50):
            with pytest.raises(EngineRefused, match="EOPNOTSUPP"):
                run(
                    EngineRun(data_file, mode, cpus=(0, 1), runtime_s=1.0, region_bytes=SIZE),
                    seams=Seams(block_signals=block),
                )
    assert sent["signals"] > 0


@pytest.mark.parametrize("block", [True, False], ids=["blocked", "delivered"])
@pytest.mark.parametrize("mode", ["LHP", "EHP", "PAS", "DPAS"])
def test_policy_sleeps_run_through_signals(mode: str, block: bool) -> None:
    """The policy modes sleep for real here (clock_nanosleep, which a delivered signal cuts
    short); the run ends normally and its decisions are still dpas.policy's."""
    device = FakeDevice(device_ns=(40_000, 60_000, 90_000), late_ns=(0, 20_000), real_sleep=True)
    config = EngineRun(
        Path("/nonexistent"),
        mode,
        policy=PolicyConfig(pas=PasParams(d_init=50_000), lhp_window_ns=1_000_000),
        cpus=(0, 1),
        runtime_s=1e6,
        ios_per_job=3000,
        region_bytes=1 << 20,
        log_ios=3000,
    )
    with flood() as sent:
        for _ in range(50):  # runs, until thousands of signals were sent during them
            result = run(config, device=device, seams=Seams(block_signals=block))
            assert result.ios == 6000 and sum(j.sleeps for j in result.jobs) > 0
            assert replay_differences(result) == []
            if sent["signals"] > 2000:
                break
    assert sent["signals"] > 2000, sent
    if not block:
        assert sent["handled"] > 0  # they did reach the job threads


def test_the_job_threads_block_handled_signals(data_file: Path) -> None:
    """With a handler installed, the job threads' masks hold the signal; SIGSEGV never."""
    masks: list[int] = []
    previous = signal.signal(signal.SIGUSR2, lambda *_: None)
    stop_after = time.monotonic() + 0.3

    def should_stop() -> bool:
        for tid in job_threads():
            status = Path(f"/proc/self/task/{tid}/status").read_text()
            masks.append(int(status.split("SigBlk:")[1].split()[0], 16))
        return time.monotonic() > stop_after

    try:
        run(EngineRun(data_file, "INT", cpus=(0,), runtime_s=5, region_bytes=SIZE), should_stop)
    finally:
        signal.signal(signal.SIGUSR2, previous)
    assert masks
    for mask in masks:
        assert mask & (1 << (signal.SIGUSR2 - 1)) and mask & (1 << (signal.SIGINT - 1))
        assert not mask & (1 << (signal.SIGSEGV - 1))


def test_no_byte_is_written_after_the_buffer_is_released(data_file: Path) -> None:
    """A failure while a read is in flight: the job reaps the read before it releases the
    buffer, so a canary written into the buffer at its release stays whole. (Without the wait,
    the read lands in the released memory, over the canary.)"""
    for _ in range(10):
        with pytest.raises(EngineError, match="injected") as failed:
            run(
                EngineRun(data_file, "INT", cpus=(0, 1), runtime_s=60, region_bytes=SIZE),
                seams=Seams(fail_at=20, canary_ns=20_000_000),
            )
        jobs = failed.value.jobs
        assert jobs and not any(j.leaked for j in jobs)
        assert [j.canary_changed for j in jobs] == [0] * len(jobs)
        assert any(j.ios == 19 for j in jobs)


def test_a_stop_mid_run_leaves_nothing_in_flight(data_file: Path) -> None:
    """A stop request ends each job between I/Os; the canary proves none was left behind."""
    start = time.monotonic()
    result = run(
        EngineRun(data_file, "INT", cpus=(0, 1, 0, 1), runtime_s=60, region_bytes=SIZE),
        lambda: time.monotonic() - start > 0.2,
        seams=Seams(canary_ns=10_000_000),
    )
    assert result.ios > 0
    assert [j.canary_changed for j in result.jobs] == [0, 0, 0, 0]


def test_marks_bracket_the_measurement(data_file: Path) -> None:
    seen: list[tuple[str, float]] = []
    run(
        EngineRun(data_file, "INT", cpus=(0,), runtime_s=60, ios_per_job=100, region_bytes=SIZE),
        marks=lambda what: seen.append((what, time.monotonic())),
    )
    assert [what for what, _ in seen] == ["start", "stop"]
    assert seen[0][1] <= seen[1][1]


def test_a_failing_mark_fails_the_run_after_the_jobs_end(data_file: Path) -> None:
    def marks(what: str) -> None:
        raise RuntimeError(f"mark {what}")

    with pytest.raises(RuntimeError, match="mark start"):
        run(EngineRun(data_file, "INT", runtime_s=60, ios_per_job=10, region_bytes=SIZE),
            marks=marks)  # fmt: skip
    assert job_threads() == []
