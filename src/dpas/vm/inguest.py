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
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dpas.bench.backend import Sweep
    from dpas.real.site import RealBench

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
    from dpas.doctor.diagnose import examine, records
    from dpas.machine.where import Where

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
    from dpas.real.runner import Runner
    from dpas.real.site import RealBench, RealConfig

    sweep = Sweep.from_record(spec["sweep"])
    device = spec.get("device", DRIVE)  # another: a test's, run on the host
    engines = str(spec.get("engine", "fio")).split(",")
    config = RealConfig(
        device,
        ioengine=spec.get("ioengine"),
        destroy_data=device == DRIVE,  # the guest's drive: a sparse file made for this boot
        fio=spec.get("fio", "/usr/bin/fio"),
        log_dir=LOGS if spec.get("log") else None,
        # a throw-away guest's tracefs: dpas may arm it
        tracefs=Path("/sys/kernel/tracing") if spec.get("replay", True) else None,
    )
    crash_after, hang_after = int(spec.get("crash_after", 0)), int(spec.get("hang_after", 0))
    dump_after_s = float(spec.get("dump_after_s", 0))
    out = RealBench()
    emitted = 0
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
        nonlocal emitted
        if watchdog is not None:
            watchdog.cancel()
        record = now.records[-1]
        emit("RECORD", asdict(record))
        if record.log is not None:
            packed = zlib.compress(Path(record.log).read_bytes())
            emit("LOG", f"{Path(record.log).name} {base64.b64encode(packed).decode()}")
        emit("END")
        emitted += 1
        if crash_after and emitted == crash_after:
            Path("/proc/sysrq-trigger").write_text("c")

    error = ""
    before = dpas_knobs()
    skip = frozenset((m, int(j), int(r)) for m, j, r in spec.get("skip", []))
    now = out
    try:
        for engine, repeat in rounds(engines, sweep.repeats):
            runner = Runner(replace(config, engine=engine), LocalExecutor())
            runner.starting = starting
            runner.skip = skip | _other_rounds(sweep, repeat)
            now = out if len(engines) == 1 else RealBench()
            d_init = sweep.d_init_ns or out.d_init_ns or None  # one d_init for every round
            runner.run(replace(sweep, d_init_ns=d_init), finished, now)
            if now is not out:
                _merge(out, now, engine)
    except DpasError as err:
        error = str(err)
    except Exception as err:  # a bug: the host says what, in one line, instead of no result
        error = f"{type(err).__name__}: {err}"
    knobs = {"before": before, "after": dpas_knobs()}
    ended = {"refused": out.refused, "d_init_ns": out.d_init_ns, "error": error}
    emit("BENCH", {**ended, "knobs": knobs})


def rounds(engines: list[str], repeats: int) -> list[tuple[str, int | None]]:
    """Who runs which repeat: one engine, the whole sweep (None); two, repeat by repeat, each
    engine in turn, so that a guest's drift from round to round reaches both alike."""
    if len(engines) == 1:
        return [(engines[0], None)]
    return [(engine, r) for r in range(1, repeats + 1) for engine in engines]


def _other_rounds(sweep: Sweep, repeat: int | None) -> frozenset[tuple[str, int, int]]:
    if repeat is None:
        return frozenset()
    return frozenset((m.value, j, r) for m, j, r in sweep.runs() if r != repeat)


def _merge(out: RealBench, now: RealBench, engine: str) -> None:
    """One engine's round into the sweep's: its refusals under the engine's name (fio refuses
    HYB, which the engine runs), the first d_init found kept for every later round."""
    out.records += now.records
    out.refused.update({f"{mode} ({engine})": why for mode, why in now.refused.items()})
    out.d_init_ns = out.d_init_ns or now.d_init_ns


def dpas_knobs(queue: Path = Path("/sys/block/nvme0n1/queue")) -> dict[str, str]:
    """The drive's DPAS knobs (those its kernel has) as they are now: the host checks that
    the sweep left them as it found them."""
    from dpas.machine.knobs import DPAS_KNOBS

    found = {}
    for name in DPAS_KNOBS:
        try:
            found[name] = (queue / name).read_text().strip()
        except OSError:
            continue
    return found


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
