"""Do completions really come by polling? Count the device's interrupts during polled reads."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from dpas.doctor.checks import Where
from dpas.doctor.findings import Finding, Status
from dpas.policy import Op
from dpas.real.fio import FioError, parse

PROBE_S = 2
EOPNOTSUPP = 95


def irq_names(disk: str, where: Where) -> list[str]:
    """/proc/interrupts names of the device's queues: nvme0q1..., virtio0-req.0..."""
    device = where.sysfs / "block" / disk / "device"
    if disk.startswith("nvme"):
        ctrl = re.match(r"(nvme\d+)", disk)
        return [rf"{ctrl[1]}q\d+"] if ctrl else []
    try:
        virtio = next((p.name for p in [device.resolve()] if p.name.startswith("virtio")), None)
    except OSError:
        virtio = None
    return [rf"{virtio}-"] if virtio else []


def counts(patterns: list[str], where: Where) -> dict[str, int]:
    text = where.read(where.proc / "interrupts") or ""
    lines = text.splitlines()
    cpus = len(lines[0].split()) if lines else 0
    out = {}
    for line in lines[1:]:
        fields = line.split()
        name = fields[-1] if fields else ""
        if any(re.match(p, name) for p in patterns):
            out[name] = sum(int(f) for f in fields[1 : 1 + cpus] if f.isdigit())
    return out


def probe(disk: str | None, path: Path, kind: str, where: Where, fio: str = "fio") -> Finding:
    check = "interrupts while polling"
    if kind == "file":
        return Finding(
            Status.INFO,
            check,
            f"{path} is a regular file: there is no device interrupt to count for it",
            f"probe its block device: dpas doctor {disk}" if disk else "",
        )
    assert disk is not None
    names = irq_names(disk, where)
    if not names or not counts(names, where):
        return Finding(Status.INFO, check, f"no interrupt lines of {disk} in /proc/interrupts")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
        os.close(fd)
    except OSError as err:
        if os.geteuid() == 0:
            return Finding(
                Status.WARN,
                check,
                f"could not read {path}: {err.strerror}, even as "
                "root (a sandbox or the device's permissions): the probe was skipped",
            )
        return Finding(
            Status.WARN,
            check,
            f"could not read {path}: {err.strerror} (the probe needs read access, usually root)",
            f"sudo dpas doctor {disk}",
        )
    before = counts(names, where)
    argv = [
        fio,
        "--output-format=json",
        "--name=doctor",
        f"--filename={path}",
        "--readonly",
        "--rw=randread",
        "--bs=4k",
        "--direct=1",
        "--ioengine=io_uring",
        "--hipri=1",
        "--iodepth=1",
        "--time_based",
        f"--runtime={PROBE_S}s",
    ]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=PROBE_S + 60)
    except FileNotFoundError:
        return Finding(
            Status.WARN, check, "fio is not installed: the probe was skipped", "apt-get install fio"
        )
    after = counts(names, where)
    try:
        result = parse(done.stdout, Op.READ)
    except FioError as err:
        if err.errno == EOPNOTSUPP:
            return Finding(
                Status.FAIL,
                check,
                f"the kernel refused polled reads on {path} (EOPNOTSUPP): no poll queues",
                "give the driver poll queues",
            )
        return Finding(Status.WARN, check, f"the polled-read probe failed: {err}")
    fired = sum(after.values()) - sum(before.values())
    if fired > 0:
        return Finding(
            Status.FAIL,
            check,
            f"{fired} interrupts in {PROBE_S} s of polled reads "
            f"({result.ios} I/Os): completions come by interrupt (no poll queues)",
            "give the driver poll queues",
        )
    return Finding(
        Status.OK,
        check,
        f"0 interrupts in {PROBE_S} s of polled reads ({result.ios} I/Os): completions are polled",
    )
