"""The engine's per-I/O log: what the policy decided for each I/O and what the poll found.

Each policy event ran under its state domain's lock and took the domain's next sequence
number, so sorting the events by (domain, sequence) gives the exact order the policy core saw
them in: replaying them through dpas.policy must give the same decisions.
"""

from __future__ import annotations

import numpy as np

from dpas.policy import Method, PolicyConfig

#: the C struct io_log, field for field (64 bytes)
LOG_DTYPE = np.dtype(
    [
        ("submit_ns", "<i8"),
        ("wait_start_ns", "<i8"),
        ("wait_end_ns", "<i8"),
        ("done_ns", "<i8"),
        ("sleep_ns", "<i8"),
        ("seq", "<u4", (4,)),
        ("cpu", "<i2"),
        ("mode", "i1"),
        ("flags", "u1"),
        ("dur_cnt", "<i4"),
    ]
)
POLLED, SLEPT, FOUND_FIRST = 1, 2, 4

SUBMIT, WAIT_START, WAIT_END, COMPLETE = 0, 1, 2, 3


def as_log(raw: bytes) -> np.ndarray:
    """A job's log, from the bytes the engine returned."""
    return np.frombuffer(raw, dtype=LOG_DTYPE)


def per_cpu_domains(method: Method) -> bool:
    """PAS and DPAS keep state per CPU; LHP and EHP share one set of statistics windows."""
    return method in (Method.PAS, Method.DPAS)


def events(logs: list[np.ndarray], config: PolicyConfig, op: int, size: int) -> np.ndarray:
    """The policy events of every logged I/O, in the order the policy core applied them.

    Rows as dpas.engine.rules.replay_reference takes them: kind, io, cpu, op, size, now_ns,
    found, seen_cpu.
    """
    rows: list[tuple[int, ...]] = []
    keys: list[tuple[int, int]] = []
    io = 0
    per_cpu = per_cpu_domains(config.method)
    for log in logs:
        for entry in log:
            cpu = int(entry["cpu"])
            domain = cpu if per_cpu else 0
            seq = entry["seq"]
            found = int(bool(entry["flags"] & FOUND_FIRST))
            steps = [(SUBMIT, int(entry["submit_ns"]), 0)]
            if entry["flags"] & POLLED:
                steps += [(WAIT_START, int(entry["wait_start_ns"]), 1)]
                steps += [(WAIT_END, int(entry["wait_end_ns"]), 2)]
            steps += [(COMPLETE, int(entry["done_ns"]), 3)]
            for kind, now, which in steps:
                rows.append((kind, io, cpu, op, size, now, found, cpu))
                keys.append((domain, int(seq[which])))
            io += 1
    order = sorted(range(len(rows)), key=keys.__getitem__)
    return np.array([rows[i] for i in order], dtype=np.int64).reshape(-1, 8)
