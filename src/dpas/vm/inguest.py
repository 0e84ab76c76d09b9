"""What dpas runs inside the guest: ``python3 -m dpas.vm.inguest doctor|hybrid|bench [...]``.

It prints JSON on stdout, which the host reads back from the guest's second serial port: the
doctor's records (the host prints them as ``dpas doctor`` does), whether the guest kernel
accepts io_uring's hybrid polling, or a sweep run by the engine on the guest's drive (with
each run's per-I/O log, compressed, when asked for). The same code as on the host, run in
the guest.
"""

from __future__ import annotations

import base64
import json
import sys
import zlib
from dataclasses import asdict
from pathlib import Path

#: the guest's drive: a sparse file made for this boot, so writes destroy nothing
DRIVE = "/dev/nvme0n1"
LOGS = Path("/tmp/dpas-logs")


def preload() -> None:
    """Import what the commands load, so that the host can list what the guest needs."""
    from dpas.doctor import diagnose, syscalls  # noqa: F401
    from dpas.real import runner  # noqa: F401


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


def bench(spec: dict[str, object]) -> dict[str, object]:
    """The sweep ``spec["sweep"]`` (Sweep.record()) by the engine on the guest's drive, as the
    host's ``dpas bench --device --engine dpas`` runs it: the lock, knobs, records."""
    from dpas.bench.backend import Interrupted, Sweep
    from dpas.errors import DpasError
    from dpas.real.executor import LocalExecutor
    from dpas.real.runner import RealBackend, RealConfig

    sweep = Sweep.from_record(spec["sweep"])  # type: ignore[arg-type]
    log_dir = LOGS if spec.get("log") else None
    config = RealConfig(DRIVE, destroy_data=True, engine="dpas", log_dir=log_dir)
    try:
        outcome = RealBackend(config, LocalExecutor()).run(sweep, lambda _: None)
    except Interrupted as err:
        outcome = err.outcome
    except DpasError as err:
        return {"error": str(err)}
    except Exception as err:  # a bug: the host says what, in one line, instead of no result
        return {"error": f"{type(err).__name__}: {err}"}
    logs = {}
    for record in outcome.records:
        if record.log is not None:
            packed = zlib.compress(Path(record.log).read_bytes())
            logs[Path(record.log).name] = base64.b64encode(packed).decode()
    return {
        "records": [asdict(r) for r in outcome.records],
        "refused": outcome.refused,
        "d_init_ns": outcome.d_init_ns,
        "ended_early": outcome.ended_early,
        "logs": logs,
    }


def main(argv: list[str]) -> int:
    command, args = (argv[0], argv[1:]) if argv else ("", [])
    if command == "hybrid":
        print(json.dumps(hybrid()))
    elif command == "doctor":
        print(json.dumps(doctor(args)))
    elif command == "bench" and len(args) == 1:
        print(json.dumps(bench(json.loads(args[0])), allow_nan=False))
    else:
        print(
            "usage: python3 -m dpas.vm.inguest doctor [DEV]... | hybrid | bench SPEC",
            file=sys.stderr,
        )
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
