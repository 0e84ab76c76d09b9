"""What dpas runs inside the guest: ``python3 -m dpas.vm.inguest doctor|hybrid|bench [...]``.

It prints JSON on stdout, which the host reads back from the guest's second serial port: the
doctor's records (the host prints them as ``dpas doctor`` does), whether the guest kernel
accepts io_uring's hybrid polling, or a sweep on the guest's drive, by fio or by the engine,
each run streamed as it ends. The same code as on the host, run in the guest.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import threading
import time
import zlib
from dataclasses import asdict
from pathlib import Path
from typing import Any

#: the guest's drive: a sparse file made for this boot, so writes destroy nothing
DRIVE = "/dev/nvme0n1"
LOGS = Path("/tmp/dpas-logs")


def preload() -> None:
    """Import what the commands load, so that the host can list what the guest needs."""
    from dpas.doctor import diagnose, syscalls  # noqa: F401
    from dpas.real import runner  # noqa: F401
    from dpas.vm import stress  # noqa: F401


def hybrid() -> dict[str, object]:
    """io_uring_setup with IOPOLL | HYBRID_IOPOLL (6.13+), as the doctor probes it."""
    from dpas.doctor.syscalls import IORING_SETUP_HYBRID_IOPOLL, IORING_SETUP_IOPOLL, io_uring_setup

    result = io_uring_setup(IORING_SETUP_IOPOLL | IORING_SETUP_HYBRID_IOPOLL)
    if result is None:
        return {"accepted": None, "reason": "not probed on this architecture"}
    return {"accepted": result.accepted, "reason": result.reason}


def doctor(devices: list[str]) -> dict[str, object]:
    from dpas.doctor.checks import Where
    from dpas.doctor.diagnose import examine, records

    return records(examine(devices, Where(), fio="/usr/bin/fio"))


def emit(tag: str, value: object = None) -> None:
    """One line to the host, at once (the guest may die at any moment after it)."""
    text = (
        ""
        if value is None
        else " " + (value if isinstance(value, str) else json.dumps(value, allow_nan=False))
    )
    print(f"@@{tag}{text}", flush=True)


def dump_blocked(run: str) -> None:
    """A run past its time: the kernel lists its blocked tasks on the console (sysrq w)
    before the host stops the guest, so the host can say which task hung where."""
    emit("STUCK", run)
    try:
        Path("/proc/sysrq-trigger").write_text("w")
    except OSError:  # a kernel without magic sysrq: the console says nothing more
        pass


def bench(spec: dict[str, Any]) -> None:
    """The sweep ``spec["sweep"]`` (Sweep.record()) on the guest's drive, as the host's ``dpas
    bench --device`` runs it (the lock, knobs, settling, switch_stat, records), by fio or by
    the engine (``spec["engine"]``). Each run is streamed as it ends: ``@@BEGIN
    MODE:JOBS:REPEAT`` when it starts, then ``@@RECORD`` (the record), ``@@LOG`` (its per-I/O
    log, compressed, when asked for) and ``@@END``; ``@@BENCH`` closes the sweep (refused
    modes, d_init, the error that ended it). A run still going ``dump_after_s`` after it began
    has the kernel dump its blocked tasks. ``crash_after``/``hang_after`` are tests' seams:
    the kernel crashed (sysrq c) after that many runs, or the run after them never ending."""
    from dpas.bench.backend import Sweep
    from dpas.errors import DpasError
    from dpas.real.executor import LocalExecutor
    from dpas.real.runner import RealBench, RealConfig, Runner

    sweep = Sweep.from_record(spec["sweep"])
    device = spec.get("device", DRIVE)  # another: a test's, run on the host
    config = RealConfig(
        device,
        ioengine=spec.get("ioengine"),
        destroy_data=device == DRIVE,  # the guest's drive: a sparse file made for this boot
        fio=spec.get("fio", "/usr/bin/fio"),
        engine=spec.get("engine", "fio"),
        log_dir=LOGS if spec.get("log") else None,
    )
    crash_after, hang_after = int(spec.get("crash_after", 0)), int(spec.get("hang_after", 0))
    dump_after_s = float(spec.get("dump_after_s", 0))
    out = RealBench()
    begun = 0
    watchdog: threading.Timer | None = None

    def starting(run: str) -> None:
        nonlocal begun, watchdog
        emit("BEGIN", run)
        begun += 1
        if dump_after_s > 0:
            watchdog = threading.Timer(dump_after_s, dump_blocked, (run,))
            watchdog.daemon = True
            watchdog.start()
        if hang_after and begun == hang_after + 1:
            time.sleep(1e6)

    def finished(_: str) -> None:
        if watchdog is not None:
            watchdog.cancel()
        record = out.records[-1]
        emit("RECORD", asdict(record))
        if record.log is not None:
            packed = zlib.compress(Path(record.log).read_bytes())
            emit("LOG", f"{Path(record.log).name} {base64.b64encode(packed).decode()}")
        emit("END")
        if crash_after and len(out.records) == crash_after:
            Path("/proc/sysrq-trigger").write_text("c")

    error = ""
    try:
        runner = Runner(config, LocalExecutor())
        runner.starting = starting
        runner.skip = frozenset((m, int(j), int(r)) for m, j, r in spec.get("skip", []))
        runner.run(sweep, finished, out)
    except DpasError as err:
        error = str(err)
    except Exception as err:  # a bug: the host says what, in one line, instead of no result
        error = f"{type(err).__name__}: {err}"
    emit("BENCH", {"refused": out.refused, "d_init_ns": out.d_init_ns, "error": error})


def main(argv: list[str]) -> int:
    command, args = (argv[0], argv[1:]) if argv else ("", [])
    if command == "hybrid":
        print(json.dumps(hybrid()))
    elif command == "doctor":
        print(json.dumps(doctor(args)))
    elif command == "bench" and len(args) == 1:
        bench(json.loads(args[0]))
    elif command == "stress" and len(args) == 2:
        from dpas.vm.stress import stress

        print("@@STRESS " + json.dumps(stress(float(args[0]), int(args[1]), os.uname().release)))
    else:
        print(
            "usage: python3 -m dpas.vm.inguest doctor [DEV]... | hybrid | bench SPEC | "
            "stress SECONDS SEED",
            file=sys.stderr,
        )
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
