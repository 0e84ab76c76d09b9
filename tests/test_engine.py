"""The engine on this machine: no polled drive here, so INT on a file, the refusals, the stop,
and the arithmetic around the compiled loop. What needs a polled drive runs in the guest
(tests/test_engine_guest.py)."""

from __future__ import annotations

import errno
import hashlib
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from dpas.engine import EngineError, EngineRefused, EngineRun, run
from dpas.engine.audit import replay_differences
from dpas.engine.latency import VAL, bucket_value, percentiles
from dpas.machine.kernel import Kernel
from dpas.policy import Op

SIZE = 16 << 20


@pytest.fixture
def data_file(tmp_path: Path) -> Path:
    """A file of seeded random data on the test's file system (ext4 here: O_DIRECT works)."""
    path = tmp_path / "data.img"
    path.write_bytes(np.random.default_rng(5).bytes(SIZE))
    return path


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_int_reads_a_file_and_never_writes_it(data_file: Path) -> None:
    before = digest(data_file)
    result = run(EngineRun(data_file, "INT", cpus=(0, 1), runtime_s=0.3, region_bytes=SIZE))
    assert result.ios > 0 and result.iops > 0
    assert all(job.ios > 0 for job in result.jobs)
    p50, p99, p999 = result.lat_percentiles_us()
    assert 0 < p50 <= p99 <= p999
    assert 0 < result.lat_mean_us
    assert 0 < result.cpu_pct <= 100
    # INT waits in the kernel: the thread sleeps, it never polls, it never sleeps on a timer
    assert sum(j.ctx_voluntary for j in result.jobs) > 0
    assert all(j.sleeps == j.overslept == j.underslept == 0 for j in result.jobs)
    assert result.cpus == []  # no DPAS state
    assert digest(data_file) == before


def test_a_budget_of_ios_per_job(data_file: Path) -> None:
    result = run(EngineRun(data_file, "INT", runtime_s=60, ios_per_job=50, region_bytes=SIZE))
    assert [j.ios for j in result.jobs] == [50]


def test_writes_change_only_the_region(data_file: Path) -> None:
    original = data_file.read_bytes()
    run(
        EngineRun(
            data_file,
            "INT",
            rw=Op.WRITE,
            runtime_s=60,
            ios_per_job=200,
            region_start=1 << 20,
            region_bytes=1 << 20,
        )
    )
    after = data_file.read_bytes()
    assert after[: 1 << 20] == original[: 1 << 20]
    assert after[2 << 20 :] == original[2 << 20 :]
    assert after[1 << 20 : 2 << 20] != original[1 << 20 : 2 << 20]


def test_a_file_cannot_be_polled_here(data_file: Path) -> None:
    """ext4 on a virtio disk without poll queues: an IOPOLL ring gets EOPNOTSUPP."""
    for mode in ("CP", "PAS"):
        with pytest.raises(EngineRefused, match="cannot poll .*EOPNOTSUPP"):
            run(EngineRun(data_file, mode, runtime_s=0.2, region_bytes=SIZE))


def test_hybrid_polling_is_refused_with_the_kernels_answer_or_runs(data_file: Path) -> None:
    """A kernel of 6.13 or later (this host's, asked) accepts HYBRID_IOPOLL, and a file still
    cannot be polled; an older one refuses HYBRID_IOPOLL itself, naming 6.13."""
    with pytest.raises(EngineRefused) as refused:
        run(EngineRun(data_file, "HYB", runtime_s=0.2, region_bytes=SIZE))
    if Kernel.parse(os.uname().release).io_uring_hybrid_polling:
        assert "EOPNOTSUPP" in str(refused.value)
    else:
        assert "6.13" in str(refused.value)


def test_should_stop_ends_a_long_run(data_file: Path) -> None:
    asked = threading.Event()
    start = time.monotonic()

    def should_stop() -> bool:
        asked.set()
        return time.monotonic() - start > 0.3

    result = run(
        EngineRun(data_file, "INT", cpus=(0, 1), runtime_s=600, region_bytes=SIZE), should_stop
    )
    assert asked.is_set()
    assert time.monotonic() - start < 10
    assert result.ios > 0


def test_bad_runs_are_refused(tmp_path: Path, data_file: Path) -> None:
    with pytest.raises(ValueError, match="engine mode 'XX'"):
        EngineRun(data_file, "XX")
    with pytest.raises(EngineError, match="smaller than one block"):
        run(EngineRun(data_file, "INT", region_bytes=100))
    with pytest.raises(EngineError, match="cannot open"):
        run(EngineRun(tmp_path / "missing", "INT", region_bytes=SIZE))


def test_the_log_holds_every_io_and_replays(data_file: Path) -> None:
    """INT has no decisions; the log still records each I/O with its times in order."""
    result = run(
        EngineRun(data_file, "INT", runtime_s=60, ios_per_job=300, region_bytes=SIZE, log_ios=1000)
    )
    log = result.jobs[0].log
    assert len(log) == 300 and result.logged_all
    assert np.all(log["done_ns"] >= log["submit_ns"])
    assert np.all(np.diff(log["submit_ns"]) > 0)
    assert replay_differences(result) == []


def test_bucket_values_follow_fios_plat_idx_to_val() -> None:
    # exact below two groups, then the middle of each bucket, truncated
    assert [bucket_value(i) for i in (0, 1, 127)] == [0, 1, 127]
    assert bucket_value(2 * VAL) == 129  # error_bits 1: [128, 130) -> 128 + 0.5 * 2
    assert bucket_value(2 * VAL + 1) == 131
    assert bucket_value(3 * VAL) == 258  # error_bits 2: [256, 260) -> 256 + 0.5 * 4


def test_percentiles_are_the_first_bucket_reaching_p() -> None:
    hist = np.zeros(200, dtype=np.uint64)
    hist[10], hist[20], hist[30] = 50, 49, 1
    assert percentiles(hist, (50, 99, 99.9, 100)) == [10, 20, 30, 30]
    assert percentiles(np.zeros(5, dtype=np.uint64), (50,)) == [0]


def test_a_kernel_without_op_read_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    """Before 5.6 io_uring has no IORING_OP_READ: its EINVAL says the engine's floor."""
    run_module = sys.modules["dpas.engine.run"]  # the package's ``run`` is the function

    def uname(release: str) -> os.uname_result:
        return os.uname_result(("Linux", "host", release, "#1", "x86_64"))

    monkeypatch.setattr(run_module.os, "uname", lambda: uname("5.4.0-150-generic"))
    config = EngineRun(Path("/dev/x"), "PAS", region_bytes=SIZE)
    refused = run_module._failure(config, errno.EINVAL, "an I/O")
    assert isinstance(refused, EngineRefused) and "5.6 or newer" in str(refused)
    monkeypatch.setattr(run_module.os, "uname", lambda: uname("6.1.0-28-amd64"))
    assert not isinstance(run_module._failure(config, errno.EINVAL, "an I/O"), EngineRefused)
