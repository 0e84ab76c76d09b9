"""The DPAS knobs changed at random while polled reads run: a kernel's knob handling, stressed.

Run in the guest (``python3 -m dpas.vm.inguest stress SECONDS SEED``): fio reads the drive
with two polled jobs while the queue's DPAS knobs (those the kernel has) take random values
every few milliseconds; each write is streamed to the host as it is made (``@@KNOB name
value``), so when the kernel oopses the host's console log and the last writes say what
did it. A knob write the kernel refuses (an errno) is part of the test, not a failure.
"""

from __future__ import annotations

import json
import random
import subprocess
import time
from pathlib import Path

from dpas.machine.kernel import Kernel

QUEUE = Path("/sys/block/nvme0n1/queue")
#: each knob and the values drawn for it: on and off, and the settings the lab and the
#: paper use with their neighbours (the switch's params at their defaults and beyond)
VALUES: dict[str, tuple[int, ...]] = {
    "pas_enabled": (0, 1),
    "pas_adaptive_enabled": (0, 1),
    "ehp_enabled": (0, 1),
    "switch_enabled": (0, 1),
    "pas_d_init": (100, 1000, 4000, 20000),
    "io_poll_delay": (-1, 0, 4),
    "switch_param1": (0, 1, 5),
    "switch_param2": (1, 10, 50),
    "switch_param3": (1, 10, 50),
    "switch_param4": (0, 1, 2),
    "switch_param5": (10, 100),
    "switch_param6": (100, 1000),
    "switch_param7": (1000, 10000),
}
#: pause between writes, drawn uniformly (seconds)
PAUSE_S = (0.001, 0.02)


def knobs_here(queue: Path = QUEUE) -> list[str]:
    return [name for name in VALUES if (queue / name).exists()]


def fio_argv(seconds: float, release: str, fio: str = "/usr/bin/fio") -> list[str]:
    """Two jobs of 4 KiB polled random reads: synchronous hipri where it polls (up to 5.18),
    io_uring's IOPOLL after."""
    engine = "pvsync2" if Kernel.parse(release).sync_hipri_polls else "io_uring"
    return [
        fio, "--name=stress", "--filename=/dev/nvme0n1", "--direct=1", "--rw=randread",
        "--bs=4096", f"--ioengine={engine}", "--hipri=1", "--numjobs=2", "--time_based",
        f"--runtime={seconds:g}", "--output-format=json", "--group_reporting",
    ]  # fmt: skip


def stress(
    seconds: float,
    seed: int,
    release: str,
    queue: Path = QUEUE,
    command: list[str] | None = None,
) -> dict[str, object]:
    """Random knob writes for ``seconds`` while fio (or a test's ``command``) runs; returns
    what was done. The knobs and values come from a generator seeded with ``seed``."""
    rng = random.Random(seed)
    names = knobs_here(queue)
    fio = subprocess.Popen(
        command or fio_argv(seconds, release),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    writes, refused = 0, 0
    end = time.monotonic() + seconds
    while names and time.monotonic() < end and fio.poll() is None:
        name = rng.choice(names)
        value = rng.choice(VALUES[name])
        print(f"@@KNOB {name} {value}", flush=True)
        try:
            (queue / name).write_text(f"{value}\n")
            writes += 1
        except OSError:
            refused += 1
        time.sleep(rng.uniform(*PAUSE_S))
    out, err = fio.communicate(timeout=seconds + 120)
    try:
        ios = sum(j["read"]["total_ios"] for j in json.loads(out)["jobs"])
    except (ValueError, KeyError, TypeError):
        ios = 0
    return {
        "knobs": names,
        "writes": writes,
        "refused": refused,
        "fio_exit": fio.returncode,
        "ios": ios,
        "fio_error": err.strip()[-300:],
    }
