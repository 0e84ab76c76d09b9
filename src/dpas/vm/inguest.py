"""What dpas runs inside the guest: ``python3 -m dpas.vm.inguest doctor|hybrid [...]``.

It prints JSON on stdout, which the host reads back from the guest's second serial port: the
doctor's records (the host prints them as ``dpas doctor`` does), or whether the guest kernel
accepts io_uring's hybrid polling. The same code as on the host, run in the guest.
"""

from __future__ import annotations

import json
import sys


def preload() -> None:
    """Import what the commands load, so that the host can list what the guest needs."""
    from dpas.doctor import diagnose, syscalls  # noqa: F401
    from dpas.engine import run  # noqa: F401


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


def main(argv: list[str]) -> int:
    command, args = (argv[0], argv[1:]) if argv else ("", [])
    if command == "hybrid":
        print(json.dumps(hybrid()))
    elif command == "doctor":
        print(json.dumps(doctor(args)))
    else:
        print("usage: python3 -m dpas.vm.inguest doctor [DEV]... | hybrid", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
