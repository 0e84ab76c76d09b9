"""The engine's per-I/O log: what the policy decided for each I/O and what the poll found.

PAS and DPAS: each policy event ran under its CPU's lock and took that domain's next sequence
number, so sorting the events by (CPU, sequence) gives the exact order the policy core saw
them in: replaying them through dpas.policy must give the same decisions. LHP and EHP keep
their statistics per CPU: an event that opened or closed a window held every CPU's lock and
began a new epoch, and every event logs the epoch it saw. Within an epoch the events of
different CPUs only add to their own CPU's statistics and read the published ones, which
commutes, so the order (epoch, the boundary event first, I/O, event) replays exactly too.

The verdict fed back is not taken from the log's flag but recomputed from the times: the engine
reads the clock once after a sleeping I/O's first poll pass (``wait_end_ns``), and when that pass
found the completion, the same reading is its completion time. So an I/O that slept was found on
the first pass exactly when ``done_ns == wait_end_ns``; a spin reads the clock again, later.
"""

from __future__ import annotations

import numpy as np

from dpas.engine.rules import Replay, replay_reference
from dpas.policy import Method, PolicyConfig

#: the C struct io_log, field for field (72 bytes)
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
        ("offset", "<i8"),
    ]
)
POLLED, SLEPT, FOUND_FIRST = 1, 2, 4
#: LHP, EHP: BOUNDARY << event: that event of the I/O opened or closed a window
BOUNDARY = 8

SUBMIT, WAIT_START, WAIT_END, COMPLETE = 0, 1, 2, 3


def as_log(raw: bytes) -> np.ndarray:
    """A job's log, from the bytes the engine returned."""
    return np.frombuffer(raw, dtype=LOG_DTYPE)


def verdicts(log: np.ndarray) -> np.ndarray:
    """Found on the first poll pass after a sleep, per I/O, from the logged times."""
    slept = (log["flags"] & SLEPT) != 0
    return slept & (log["done_ns"] == log["wait_end_ns"])


def windowed(method: Method) -> bool:
    """LHP and EHP log window epochs; the other methods their CPU's sequence numbers."""
    return method in (Method.LHP, Method.EHP)


def events(
    logs: list[np.ndarray], config: PolicyConfig, op: int | np.ndarray, size: int | np.ndarray
) -> np.ndarray:
    """The policy events of every logged I/O, in the order the policy core applied them.
    ``op`` and ``size``: the run's, or each I/O's (a workload's jobs differ), in log order.

    Rows as dpas.engine.rules.replay_reference takes them: kind, io, cpu, op, size, now_ns,
    found, seen_cpu.
    """
    rows: list[tuple[int, ...]] = []
    keys: list[tuple[int, ...]] = []
    io = 0
    by_epoch = windowed(config.method)
    total = sum(len(log) for log in logs)
    ops = np.broadcast_to(np.asarray(op, dtype=np.int64), (total,)).tolist()
    sizes = np.broadcast_to(np.asarray(size, dtype=np.int64), (total,)).tolist()
    for log in logs:
        for entry, found in zip(log, verdicts(log).tolist(), strict=True):
            cpu, op_, size_ = int(entry["cpu"]), ops[io], sizes[io]
            seq, flags = entry["seq"], int(entry["flags"])
            steps = [(SUBMIT, int(entry["submit_ns"]))]
            if flags & POLLED:
                steps += [(WAIT_START, int(entry["wait_start_ns"]))]
                steps += [(WAIT_END, int(entry["wait_end_ns"]))]
            steps += [(COMPLETE, int(entry["done_ns"]))]
            for kind, now in steps:
                rows.append((kind, io, cpu, op_, size_, now, found, cpu))
                if by_epoch:
                    boundary = bool(flags & (BOUNDARY << kind))
                    keys.append((int(seq[kind]), not boundary, io, kind))
                else:
                    keys.append((cpu, int(seq[kind])))
            io += 1
    order = sorted(range(len(rows)), key=keys.__getitem__)
    return np.array([rows[i] for i in order], dtype=np.int64).reshape(-1, 8)


def replay_log(
    log: np.ndarray,
    config: PolicyConfig,
    op: int | np.ndarray,
    size: int | np.ndarray,
    ncpus: int = 1,
) -> tuple[list[str], Replay]:
    """A whole run's log (every job's I/Os) back through dpas.policy, in the order the
    compiled copy applied its events: where a decision differs (polled or interrupt, the
    mode, the sleep; at most 10 named), and the reference's replay (its switch_stat and
    transitions, to hold against what the engine reported). ``op``, ``size``: as events();
    ``ncpus``: at least this many CPUs' states (an unpinned job's CPU may see no I/O)."""
    rows = events([log], config, op, size)
    ncpus = max(ncpus, int(log["cpu"].max()) + 1 if len(log) else 1)
    replayed = replay_reference(config, rows, ncpus)
    found: list[str] = []
    flagged = (log["flags"] & FOUND_FIRST) != 0
    for io in np.flatnonzero(flagged != verdicts(log))[:10].tolist():
        found.append(f"I/O {io}: logged verdict {bool(flagged[io])}, its times say otherwise")
    for row, out in zip(rows.tolist(), replayed.outputs.tolist(), strict=True):
        kind, io = row[0], row[1]
        entry = log[io]
        if kind == SUBMIT:
            logged = (int(bool(entry["flags"] & POLLED)), int(entry["mode"]))
            if logged != (out[0], out[1]):
                found.append(f"I/O {io}: engine polled/mode {logged}, policy {tuple(out[:2])}")
        elif kind == WAIT_START and int(entry["sleep_ns"]) != out[0]:
            found.append(f"I/O {io}: engine slept {int(entry['sleep_ns'])} ns, policy {out[0]}")
        if len(found) >= 10:
            break
    return found, replayed
