"""The doctor's checks: each reads something, and says OK, WARN, FAIL or INFO, with the fix.

Everything is read-only. Paths go through ``Where`` (a sysfs and a proc root) so the checks
run against directories made in a test as well as against this machine.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from dpas.doctor.findings import Finding, Status
from dpas.doctor.syscalls import (
    IORING_SETUP_HYBRID_IOPOLL,
    IORING_SETUP_IOPOLL,
    io_uring_setup,
    statx_atomic_write,
)
from dpas.doctor.timers import TimerRow, reliable_from
from dpas.machine.kernel import Kernel
from dpas.machine.knobs import DPAS_KNOBS
from dpas.machine.where import Where

OK, WARN, FAIL, INFO = Status.OK, Status.WARN, Status.FAIL, Status.INFO


@dataclass(slots=True)
class DeviceReport:
    name: str
    kind: str  # "block" or "file"
    findings: list[Finding] = field(default_factory=list)


def block_devices(where: Where) -> list[str]:
    """Every block device with a size (unused loop and zram devices have none)."""
    root = where.sysfs / "block"
    names = sorted(p.name for p in root.iterdir()) if root.is_dir() else []
    return [n for n in names if (where.read(root / n / "size") or "0") != "0"]


def _selected(text: str | None) -> str | None:
    if text is None:
        return None
    chosen = re.search(r"\[([^\]]+)\]", text)
    return chosen[1] if chosen else text


def driver_of(disk: str, where: Where) -> str:
    """nvme, virtio_blk, loop, ... from the device's driver link (or the name)."""
    for link in (
        where.sysfs / "block" / disk / "device" / "driver",
        where.sysfs / "block" / disk / "device" / "device" / "driver",
    ):
        if link.exists():
            return link.resolve().name
    return "nvme" if disk.startswith("nvme") else disk.rstrip("0123456789")


# -- the kernel --------------------------------------------------------------------------------
def kernel_findings(kernel: Kernel) -> list[Finding]:
    v = ".".join(map(str, kernel.version))
    out = [Finding(INFO, "kernel", f"{kernel.release}")]
    if kernel.sync_hipri_polls:
        out.append(Finding(OK, "sync polled I/O", f"{v} <= 5.18: preadv2(RWF_HIPRI) polls"))
    else:
        out.append(
            Finding(
                INFO,
                "sync polled I/O",
                f"{v} >= 5.19: sync hipri no longer polls; polling needs io_uring "
                "IOPOLL (fio --ioengine=io_uring --hipri=1)",
            )
        )
    if kernel.block_hybrid_polling:
        out.append(Finding(OK, "block hybrid polling", f"{v} < 6.4: queue/io_poll_delay works"))
    else:
        out.append(
            Finding(
                INFO,
                "block hybrid polling",
                f"{v} >= 6.4: io_poll_delay was removed (LHP as the lab runs it is "
                "gone); the DPAS patch targets 5.18",
            )
        )
    if kernel.io_uring_hybrid_polling:
        out.append(Finding(OK, "io_uring hybrid polling", f"{v} >= 6.13: HYBRID_IOPOLL exists"))
    else:
        out.append(Finding(INFO, "io_uring hybrid polling", f"{v} < 6.13: no HYBRID_IOPOLL"))
    return out


def io_uring_findings() -> list[Finding]:
    """What this kernel accepts, asked through io_uring_setup itself."""
    iopoll = io_uring_setup(IORING_SETUP_IOPOLL)
    if iopoll is None:
        return [Finding(INFO, "io_uring setup", "not probed on this architecture")]
    out = [
        Finding(
            OK if iopoll.accepted else FAIL,
            "io_uring IOPOLL setup",
            f"io_uring_setup(IOPOLL): {iopoll.reason}",
            "" if iopoll.accepted else "a kernel with io_uring (5.1+) and it enabled",
        )
    ]
    hybrid = io_uring_setup(IORING_SETUP_IOPOLL | IORING_SETUP_HYBRID_IOPOLL)
    assert hybrid is not None
    out.append(
        Finding(
            OK if hybrid.accepted else INFO,
            "io_uring HYBRID_IOPOLL setup",
            f"io_uring_setup(IOPOLL|HYBRID_IOPOLL): {hybrid.reason}",
            "" if hybrid.accepted else "kernel 6.13 or later for hybrid IOPOLL",
        )
    )
    return out


# -- one device's queue ---------------------------------------------------------------------------
def queue_findings(disk: str, kernel: Kernel, where: Where) -> list[Finding]:
    queue = where.sysfs / "block" / disk / "queue"
    q = f"/sys/block/{disk}/queue"
    driver = driver_of(disk, where)
    dpas = all((queue / k).exists() for k in ("pas_enabled", "switch_enabled"))
    out: list[Finding] = []
    if dpas:
        missing = [k for k in DPAS_KNOBS if not (queue / k).exists()]
        out.append(
            Finding(
                OK if not missing else WARN,
                "DPAS knobs",
                "present" + (f" except {', '.join(missing)}" if missing else ""),
            )
        )
    else:
        out.append(
            Finding(
                WARN,
                "DPAS knobs",
                f"{q}/pas_enabled is missing: not the DPAS kernel, so PAS, DPAS and EHP cannot run",
                "boot the DPAS kernel (5.18 + dpas.patch)",
            )
        )
    out += _poll_findings(disk, driver, kernel, where, queue, q, dpas)
    out += _stats_findings(queue, q, dpas, where)
    return out


def _poll_fix(driver: str) -> str:
    if driver.startswith("nvme"):
        return "modprobe -r nvme && modprobe nvme poll_queues=2 (or boot with nvme.poll_queues=2)"
    if driver.startswith("virtio"):
        return "boot with virtio_blk.poll_queues=2 (or modprobe virtio_blk poll_queues=2)"
    return f"the {driver} driver has no poll queues: use an NVMe drive with poll_queues > 0"


def _poll_findings(
    disk: str, driver: str, kernel: Kernel, where: Where, queue: Path, q: str, dpas: bool
) -> list[Finding]:
    out = []
    io_poll = where.read(queue / "io_poll")
    if io_poll is None:
        out.append(Finding(WARN, "poll queues", f"{q}/io_poll could not be read"))
    elif io_poll == "1":
        out.append(Finding(OK, "poll queues", f"{q}/io_poll = 1"))
    else:
        out.append(
            Finding(
                FAIL,
                "poll queues",
                f"{q}/io_poll = {io_poll}: {driver} has no poll queues, so nothing is ever polled",
                _poll_fix(driver),
            )
        )
    delay = where.read(queue / "io_poll_delay")
    hybrid_knob = kernel.block_hybrid_polling or dpas
    if delay is None:
        out.append(Finding(INFO, "io_poll_delay", f"{q}/io_poll_delay is missing"))
    elif not hybrid_knob:
        out.append(
            Finding(
                INFO,
                "io_poll_delay",
                f"{q}/io_poll_delay = {delay}: a stub since "
                "6.4; hybrid polling here means io_uring HYBRID_IOPOLL",
            )
        )
    elif delay == "-1":
        out.append(
            Finding(
                WARN,
                "io_poll_delay",
                f"{q}/io_poll_delay = -1: classic polling "
                "only, the hybrid path (LHP, EHP, PAS, DPAS) is never entered",
                f"echo 0 > {q}/io_poll_delay",
            )
        )
    else:
        out.append(
            Finding(
                OK, "io_poll_delay", f"{q}/io_poll_delay = {delay} (0 adaptive, N > 0 fixed N us)"
            )
        )
    nomerges = where.read(queue / "nomerges")
    if nomerges is not None:
        out.append(
            Finding(
                OK if nomerges == "2" else INFO,
                "nomerges",
                f"{q}/nomerges = {nomerges}",
                ""
                if nomerges == "2"
                else f"echo 2 > {q}/nomerges (bench.sh's setting: no merging of random I/O)",
            )
        )
    sched = _selected(where.read(queue / "scheduler"))
    if sched is not None:
        out.append(
            Finding(
                OK if sched == "none" else WARN,
                "scheduler",
                f"{q}/scheduler = {sched}",
                ""
                if sched == "none"
                else f"echo none > {q}/scheduler (a scheduler "
                "adds latency the completion methods are compared without)",
            )
        )
    if driver.startswith("nvme"):
        param = where.read(where.sysfs / "module" / "nvme" / "parameters" / "poll_queues")
        if param is not None:
            out.append(
                Finding(
                    OK if param != "0" else FAIL,
                    "nvme poll_queues",
                    f"/sys/module/nvme/parameters/poll_queues = {param}",
                    "" if param != "0" else _poll_fix(driver),
                )
            )
    return out


def _stats_findings(queue: Path, q: str, dpas: bool, where: Where) -> list[Finding]:
    wbt = where.read(queue / "wbt_lat_usec")
    if wbt not in (None, "0"):
        return [
            Finding(
                OK,
                "queue statistics",
                f"{q}/wbt_lat_usec = {wbt}: write-back throttling keeps the queue's statistics on",
            )
        ]
    evidence = f"{q}/wbt_lat_usec = {wbt}" if wbt is not None else f"{q}/wbt_lat_usec is missing"
    if not dpas:
        return [
            Finding(
                INFO,
                "queue statistics",
                f"{evidence}: no write-back throttling, so the "
                "queue collects no statistics (it matters only on the DPAS kernel)",
            )
        ]
    return [
        Finding(
            WARN,
            "queue statistics",
            f"{evidence}: the queue collects no statistics; "
            "an unpatched DPAS kernel computes buckets from statistics sectors, so DPAS "
            "stays idle (switch_stat shows pas io: 0)",
            f"use the lab's patched kernel (fix 1: blk_rq_sectors), or echo 2000 > "
            f"{q}/wbt_lat_usec where supported; check: cat {q}/switch_stat",
        )
    ]


# -- device facts ---------------------------------------------------------------------------------
def device_facts(disk: str, where: Where, file: Path | None = None) -> list[Finding]:
    queue = where.sysfs / "block" / disk / "queue"
    q = f"/sys/block/{disk}/queue"
    page = os.sysconf("SC_PAGE_SIZE")
    out = []
    logical, physical = (
        where.read(queue / "logical_block_size"),
        where.read(queue / "physical_block_size"),
    )
    if logical is not None:
        big = int(logical) > page
        out.append(
            Finding(
                WARN if big else INFO,
                "block size",
                f"logical {logical} B, physical {physical} B, page {page} B"
                + (": a logical block above the page size needs a recent kernel" if big else ""),
                "" if not big else "kernel 6.x with large-block-size support",
            )
        )
    atomic = {
        k: where.read(queue / f"atomic_write_{k}")
        for k in ("unit_min_bytes", "unit_max_bytes", "max_bytes", "boundary_bytes")
    }
    if any(v is not None for v in atomic.values()):
        shown = ", ".join(f"{k} {v}" for k, v in atomic.items() if v is not None)
        usable = atomic["unit_max_bytes"] not in (None, "0")
        out.append(
            Finding(
                INFO,
                "atomic writes",
                f"{q}/atomic_write_*: {shown}"
                + ("" if usable else " (no atomic writes: pwritev2 RWF_ATOMIC will fail)"),
            )
        )
    else:
        out.append(Finding(INFO, "atomic writes", "no atomic_write_* attributes (kernel < 6.11)"))
    if file is not None:
        result = statx_atomic_write(str(file))
        text = (
            "no atomic-write limits reported"
            if result is None
            else result
            if isinstance(result, str)
            else f"unit {result.unit_min}-{result.unit_max} B, {result.segments_max} segment(s)"
        )
        out.append(Finding(INFO, "statx atomic write", f"{file}: {text}"))
    rotational = where.read(queue / "rotational")
    if rotational is not None:
        out.append(
            Finding(
                WARN if rotational == "1" else OK,
                "rotational",
                f"{q}/rotational = "
                f"{rotational}"
                + (
                    ": a disk with seek times gains nothing from polling"
                    if rotational == "1"
                    else ""
                ),
            )
        )
    cache = where.read(queue / "write_cache")
    if cache is not None:
        out.append(Finding(INFO, "write cache", f"{q}/write_cache = {cache}"))
    return out


# -- the CPUs -------------------------------------------------------------------------------------
def cpu_findings(where: Where) -> list[Finding]:
    online = os.cpu_count() or 1
    allowed = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else online
    out = [
        Finding(
            INFO,
            "CPUs",
            f"{online} online, {allowed} this process may use; "
            "dpas bench pins every job to CPU 0 by default (--cpus 0), as the lab does",
        )
    ]
    idle = where.sysfs / "devices" / "system" / "cpu" / "cpuidle"
    governor = where.read(idle / "current_governor") or where.read(idle / "current_governor_ro")
    driver = where.read(idle / "current_driver")
    if governor is None and driver is None:
        out.append(
            Finding(
                INFO,
                "cpuidle",
                "no cpuidle (idle CPUs halt directly; waking one costs a VM exit in a guest)",
            )
        )
    else:
        haltpoll = "haltpoll" in f"{governor} {driver}"
        out.append(
            Finding(
                INFO,
                "cpuidle",
                f"governor {governor}, driver {driver}"
                + (
                    "; haltpoll polls before halting, which shortens wake-ups and "
                    "changes what INT and the sleeps cost"
                    if haltpoll
                    else ""
                ),
            )
        )
    return out


# -- timers ---------------------------------------------------------------------------------------
def timer_findings(rows: list[TimerRow]) -> list[Finding]:
    best = reliable_from(rows)
    longest = max((r for r in rows if r.method == "clock_nanosleep"), key=lambda r: r.requested_ns)
    if best is None:
        return [
            Finding(
                WARN,
                "short sleeps",
                f"no requested sleep up to {longest.requested_ns} ns "
                f"slept reliably (at {longest.requested_ns} ns: "
                f"{longest.sleep_ratio:.1%}); arming a timer here takes longer",
                f"set pas_d_init above {longest.requested_ns} ns, or keep the lab's "
                "always-yield fix",
            )
        ]
    return [
        Finding(
            OK,
            "short sleeps",
            f"sleeps of {best} ns and longer slept in at least 99% of requests",
            f"set pas_d_init to at least {best} ns",
        )
    ]
