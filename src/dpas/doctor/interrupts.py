"""Do completions really come by polling? Count the device's interrupts during polled reads."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from dpas.doctor.findings import Finding, Status
from dpas.machine.fio import FioError, parse
from dpas.machine.interrupts import Counter
from dpas.machine.where import Where
from dpas.policy import Op
from dpas.results import RunKey

PROBE_S = 2
EOPNOTSUPP = 95


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
    counter = Counter(disk, None, where)  # fio runs unpinned: the queues of every CPU
    if not counter.lines():
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
    counter.mark("start")
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
    counter.mark("stop")
    try:
        result = parse(done.stdout, RunKey.of("CP", 1, Op.READ, 1))
    except FioError as err:
        if err.errno == EOPNOTSUPP:
            return Finding(
                Status.FAIL,
                check,
                f"the kernel refused polled reads on {path} (EOPNOTSUPP): no poll queues",
                "give the driver poll queues",
            )
        return Finding(Status.WARN, check, f"the polled-read probe failed: {err}")
    fired = counter.total() or 0
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
