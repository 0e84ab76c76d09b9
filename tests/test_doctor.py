"""dpas doctor: each check on a sysfs root made in the test (good and bad), and on this
machine's real /sys, kernel, timers and io_uring."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from conftest import need, run_dpas

from dpas.doctor import checks, timers
from dpas.doctor.diagnose import examine
from dpas.doctor.findings import Status
from dpas.doctor.interrupts import probe
from dpas.machine.interrupts import Counter
from dpas.machine.kernel import Kernel
from dpas.machine.where import Where

K518, K618 = Kernel.parse("5.18.0-dpas"), Kernel.parse("6.18.44")


def fake(tmp_path: Path, **knobs: str) -> Where:
    """A sysfs root with nvme0n1 (driver nvme) whose queue holds ``knobs``."""
    root = tmp_path / "sys"
    queue = root / "block" / "nvme0n1" / "queue"
    queue.mkdir(parents=True)
    (root / "block" / "nvme0n1" / "size").write_text("1000\n")
    for name, value in knobs.items():
        (queue / name).write_text(f"{value}\n")
    return Where(root, tmp_path / "proc")


def by_check(findings: list) -> dict:  # type: ignore[type-arg]
    return {f.check: f for f in findings}


GOOD = dict(
    io_poll="1",
    io_poll_delay="0",
    nomerges="2",
    scheduler="[none] mq-deadline",
    wbt_lat_usec="2000",
    pas_enabled="0",
    switch_enabled="0",
    pas_adaptive_enabled="0",
    pas_d_init="100",
    ehp_enabled="0",
    **{f"switch_param{i}": "0" for i in range(1, 8)},
)


def test_a_good_dpas_queue_is_all_ok(tmp_path: Path) -> None:
    found = by_check(checks.queue_findings("nvme0n1", K518, fake(tmp_path, **GOOD)))
    for check in (
        "DPAS knobs",
        "poll queues",
        "io_poll_delay",
        "nomerges",
        "scheduler",
        "queue statistics",
    ):
        assert found[check].status is Status.OK, check
        assert found[check].fix == ""


def test_a_bad_dpas_queue_fails_with_the_fixes(tmp_path: Path) -> None:
    bad = {
        **GOOD,
        "io_poll": "0",
        "io_poll_delay": "-1",
        "nomerges": "0",
        "scheduler": "[mq-deadline] none",
        "wbt_lat_usec": "0",
    }
    where = fake(tmp_path, **bad)
    (where.sysfs / "module" / "nvme" / "parameters").mkdir(parents=True)
    (where.sysfs / "module" / "nvme" / "parameters" / "poll_queues").write_text("0\n")
    found = by_check(checks.queue_findings("nvme0n1", K518, where))
    assert found["poll queues"].status is Status.FAIL
    assert "modprobe nvme poll_queues=2" in found["poll queues"].fix
    assert found["nvme poll_queues"].status is Status.FAIL
    assert found["io_poll_delay"].status is Status.WARN
    assert found["io_poll_delay"].fix == "echo 0 > /sys/block/nvme0n1/queue/io_poll_delay"
    assert found["scheduler"].fix.startswith("echo none > /sys/block/nvme0n1/queue/scheduler")
    assert found["nomerges"].fix.startswith("echo 2 >")
    stats = found["queue statistics"]
    assert stats.status is Status.WARN and "pas io: 0" in stats.evidence
    assert "blk_rq_sectors" in stats.fix


def test_a_stock_kernel_queue(tmp_path: Path) -> None:
    found = by_check(
        checks.queue_findings(
            "nvme0n1", K618, fake(tmp_path, io_poll="1", io_poll_delay="-1", wbt_lat_usec="0")
        )
    )
    assert (
        found["DPAS knobs"].status is Status.WARN
        and "pas_enabled is missing" in found["DPAS knobs"].evidence
    )
    assert (
        found["io_poll_delay"].status is Status.INFO
        and "stub since 6.4" in found["io_poll_delay"].evidence
    )
    assert found["queue statistics"].status is Status.INFO


def test_device_facts(tmp_path: Path) -> None:
    where = fake(
        tmp_path,
        logical_block_size="8192",
        physical_block_size="8192",
        rotational="1",
        write_cache="write back",
        atomic_write_unit_max_bytes="16384",
        atomic_write_unit_min_bytes="4096",
    )
    found = by_check(checks.device_facts("nvme0n1", where))
    assert found["block size"].status is Status.WARN  # 8 KiB logical blocks > 4 KiB pages
    assert found["rotational"].status is Status.WARN
    assert "unit_max_bytes 16384" in found["atomic writes"].evidence


def test_kernel_facts_by_version() -> None:
    old = by_check(checks.kernel_findings(K518))
    new = by_check(checks.kernel_findings(K618))
    assert (
        old["sync polled I/O"].status is Status.OK and new["sync polled I/O"].status is Status.INFO
    )
    assert old["block hybrid polling"].status is Status.OK
    assert new["io_uring hybrid polling"].status is Status.OK
    assert old["io_uring hybrid polling"].status is Status.INFO


def test_this_machines_kernel_is_judged_by_its_own_version() -> None:
    """The running kernel, asked (uname), and each version fact from the kernel's history:
    hipri preadv2 polled up to 5.18, io_poll_delay was removed in 6.4, io_uring's
    HYBRID_IOPOLL came in 6.13; io_uring IOPOLL itself is there since 5.1."""
    release = os.uname().release
    version = tuple(int(n) for n in re.findall(r"\d+", release)[:2])
    host = by_check(examine([], timer_probe=False, interrupt_probe=False).host)
    assert host["kernel"].evidence == release
    ok_if = {
        "sync polled I/O": version <= (5, 18),
        "block hybrid polling": version < (6, 4),
        "io_uring hybrid polling": version >= (6, 13),
    }
    for check, ok in ok_if.items():
        assert host[check].status is (Status.OK if ok else Status.INFO), (check, release)
    assert host["io_uring IOPOLL setup"].status is Status.OK


def test_this_machines_virtio_disk_is_seen_as_it_is() -> None:
    """A virtio disk without poll queues (the project's machines, CI's among them): what
    `dpas doctor` must say of it."""
    need(Path("/sys/block/vda/queue").is_dir(), "no virtio disk vda on this machine")
    exam = examine(["vda"], timer_probe=False, interrupt_probe=False)
    found = by_check(exam.devices[0].findings)
    assert found["poll queues"].status is Status.FAIL and "virtio_blk" in found["poll queues"].fix


def test_timer_probe_measures_more_sleeping_at_longer_requests() -> None:
    rows = timers.probe(count=150, requests=(100, 200_000))
    short, long_ = rows[0], rows[1]
    assert short.requested_ns == 100 and long_.requested_ns == 200_000
    assert long_.sleep_ratio > short.sleep_ratio or long_.sleep_ratio == 1.0
    assert long_.sleep_ratio >= 0.9
    # measured: a 200 µs sleep takes at least 200 µs, by either way of sleeping (the overshoot
    # is the time taken past the request: at the median, and more for the slowest 1%)
    assert [(r.method, r.requested_ns) for r in (long_, rows[3])] == [
        ("clock_nanosleep", 200_000),
        ("timerfd", 200_000),
    ]
    for row in (long_, rows[3]):
        assert row.p99_overshoot_ns >= row.median_overshoot_ns >= 0, row


def test_interrupt_probe_on_a_file_has_nothing_to_count(tmp_path: Path) -> None:
    f = tmp_path / "data"
    f.write_bytes(b"x")
    finding = probe("vda", f, "file", Where())
    assert finding.status is Status.INFO and "no device interrupt to count" in finding.evidence


def test_interrupt_counts_read_proc_interrupts(tmp_path: Path) -> None:
    """The probe's counter (dpas.real.interrupts): the I/O queues, every CPU's column, never
    the admin queue; its fio is not pinned, so the queues of every CPU."""
    proc = tmp_path / "proc"
    proc.mkdir()
    lines = (
        "           CPU0       CPU1\n"
        " 24:         10          5   PCI-MSIX-0000:00:04.0   0-edge      nvme0q0\n"
        " 25:        100          7   PCI-MSIX-0000:00:04.0   1-edge      nvme0q1\n"
        " 30:          1          1   PCI-MSI  virtio0-req.0\n"
    )
    (proc / "interrupts").write_text(lines)
    counter = Counter("nvme0n1", None, Where(tmp_path, proc))
    assert counter.lines() == ["nvme0q1"]
    counter.mark("start")
    (proc / "interrupts").write_text(lines.replace("10          5", "90          5")
                                     .replace("100          7", "103          8"))  # fmt: skip
    counter.mark("stop")
    assert counter.total() == 4


def test_doctor_cli_json_and_errors(tmp_path: Path) -> None:
    f = tmp_path / "data"
    f.write_bytes(b"x" * 4096)
    out = run_dpas("doctor", str(f), "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["schema"] == "dpas.doctor/1" and data["devices"][0]["kind"] == "file"
    assert {t["requested_ns"] for t in data["timers"]} == set(timers.REQUESTS_NS)
    checks_seen = {f["check"] for f in data["devices"][0]["findings"]}
    assert "interrupts while polling" in checks_seen and "statx atomic write" in checks_seen
    bad = run_dpas("doctor", "nosuchdisk")
    assert bad.returncode == 2 and "no /sys/block/nosuchdisk" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


def test_records_read_back_into_the_same_examination() -> None:
    """A guest's doctor sends its records home; the host shows them as its own."""
    from dpas.doctor.checks import DeviceReport
    from dpas.doctor.diagnose import DoctorError, Examination, examination, records
    from dpas.doctor.findings import Finding, Status
    from dpas.doctor.timers import TimerRow

    exam = Examination(
        host=[Finding(Status.OK, "kernel", "7.2.13", ""), Finding(Status.WARN, "cpu", "x", "y")],
        timers=[TimerRow("clock_nanosleep", 1000, 3, 297, 812.5, 2400.0)],
        devices=[DeviceReport("nvme0n1", "block", [Finding(Status.FAIL, "io_poll", "0", "fix")])],
    )
    text = json.dumps(records(exam))
    assert records(examination(json.loads(text))) == records(exam)
    with pytest.raises(DoctorError, match="not a dpas doctor record"):
        examination({"schema": "dpas.doctor/1", "host": [{"status": "MAYBE"}]})
