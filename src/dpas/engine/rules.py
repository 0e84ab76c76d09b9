"""The policy core's side of the contract: its config, and one replay through either copy.

``policy_core.c`` is the compiled copy of :mod:`dpas.policy`. Both replay the same array of
events and report the same outputs, so a test (or a logged engine run) can hold the C copy's
decisions against the reference, event for event:

    events  n x 8 int64: kind, io, cpu, op, size, now_ns, found, seen_cpu
            kind 0 submit (cpu, op, size), 1 wait_start, 2 wait_end, 3 complete (found: the
            first poll found it; seen_cpu: the CPU that saw it). io names the I/O (0..n-1; an id
            is reused from its next submit on). Times are ns >= 0. The cpu column of the other
            kinds is not read: an I/O's events run on the CPU it was submitted on. A wait event
            of an I/O that was not polled is skipped, as a caller skips the wait.
    outputs n x 4 int64, per kind:
            submit      polled, io.mode (-1: none), bucket, 0
            wait_start  the sleep returned, io.dur_cnt, the CPU's mode after (-1: not DPAS),
                        the case of the PAS update this wait applied (-1: none)
            wait_end    the CPU's qd after (0: not DPAS), 0, 0, 0
            complete    0, 0, 0, 0 (and any skipped wait event)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dpas.engine.native import native
from dpas.policy import (
    LAB,
    DpasPolicy,
    Io,
    Method,
    Op,
    Order,
    PasPolicy,
    PolicyConfig,
    Request,
    make_policy,
)
from dpas.policy.pas import PasUpdate
from dpas.policy.request import STATS_BUCKETS

SUBMIT, WAIT_START, WAIT_END, COMPLETE = range(4)
#: the columns of an event
COLUMNS = ("kind", "io", "cpu", "op", "size", "now_ns", "found", "seen_cpu")
#: the columns of pol_switch_stat(): the four totals, then live values
SWITCH_STAT = ("cp", "pas", "ol", "int", "mode", "qd", "qd_sum", "tf", "skipped")
#: the PasState fields, in the order of Replay.pas
PAS_FIELDS = (
    "dur",
    "adj",
    "up",
    "dn",
    "sr_pnlt",
    "sr_last",
    "dur_cnt",
    "dur_cnt_checked",
    "update_req",
)
MAX_CPUS = 1 << 16
_METHODS = list(Method)


def config_dict(config: PolicyConfig) -> dict[str, int]:
    """The dict ``_engine`` turns into a pol_config (replay.c: engine_config). The compiled
    copy holds the lab's rules only: the artifact's differences are the kernel's own."""
    if config.rules != LAB:
        raise ValueError(f"the engine runs the lab's rules, not {config.rules.name}")
    pas, switch, ehp = config.pas, config.switch, config.ehp
    return {
        "method": _METHODS.index(config.method),
        "d_init": pas.d_init,
        "up_init": pas.up_init,
        "dn_init": pas.dn_init,
        "heat_up": pas.heat_up,
        "cool_dn": pas.cool_dn,
        "min_dn": pas.min_dn,
        "max_dn": pas.max_dn,
        "updn_ratio": pas.updn_ratio,
        "adaptive": int(pas.adaptive),
        "param1": switch.param1,
        "param2": switch.param2,
        "param3": switch.param3,
        "param4": switch.param4,
        "param5": switch.param5,
        "param6": switch.param6,
        "param7": switch.param7,
        "order_guide": int(config.order is Order.GUIDE),
        "io_poll_delay": config.io_poll_delay,
        "lhp_window_ns": config.lhp_window_ns,
        "ehp_ctx_ns": ehp.ctx_ns,
        "ehp_isr_ns": ehp.isr_ns,
        "ehp_benefit_ratio": ehp.benefit_ratio,
        "ehp_window_ns": ehp.window_ns,
        "stats_sectors_bug": int(config.bucketing.stats_sectors_bug),
        "queue_stats": int(config.bucketing.queue_stats),
    }


@dataclass(frozen=True, slots=True, eq=False)
class Replay:
    """What one replay reports; ``diff`` compares two (arrays make ``==`` ambiguous)."""

    #: n x 4: the decisions of each event (module docstring)
    outputs: np.ndarray
    #: ncpus x 9: pol_switch_stat() of each CPU (SWITCH_STAT); zeros unless DPAS
    switch_stat: np.ndarray
    #: (now_ns, cpu, old, new, count, avg_qd (-1: none), tf), by CPU, then in order
    transitions: list[tuple[int, ...]]
    #: ncpus x 16 x 9: each bucket's PasState (PAS_FIELDS); zeros for a CPU that has not
    #: slept a PAS duration, and unless PAS or DPAS
    pas: np.ndarray

    def diff(self, other: Replay, events: np.ndarray | None = None, context: int = 5) -> str | None:
        """None when equal, else where they first differ (with the events around it)."""
        if self.outputs.shape != other.outputs.shape:
            return f"outputs: shape {self.outputs.shape} != {other.outputs.shape}"
        rows = np.flatnonzero((self.outputs != other.outputs).any(axis=1))
        if rows.size:
            i = int(rows[0])
            lines = [
                f"event {i}: outputs {self.outputs[i].tolist()} != {other.outputs[i].tolist()}"
            ]
            if events is not None:
                for j in range(max(0, i - context), min(len(events), i + 2)):
                    mark = ">" if j == i else " "
                    lines.append(
                        f"{mark} {j}: {dict(zip(COLUMNS, events[j].tolist(), strict=True))} "
                        f"-> {self.outputs[j].tolist()} / {other.outputs[j].tolist()}"
                    )
            return "\n".join(lines)
        for name in ("switch_stat", "pas"):
            mine, theirs = getattr(self, name), getattr(other, name)
            if mine.shape != theirs.shape or (mine != theirs).any():
                where = np.argwhere(mine != theirs) if mine.shape == theirs.shape else "shape"
                return f"{name} differs at {where[:3] if len(where) else where}"
        if self.transitions != other.transitions:
            for k, (a, b) in enumerate(zip(self.transitions, other.transitions, strict=False)):
                if a != b:
                    return f"transition {k}: {a} != {b}"
            return f"transitions: {len(self.transitions)} != {len(other.transitions)}"
        return None


#: what replay.c says of a bad column, in the order it checks them
_BAD = {
    "kind": "expected 0 submit, 1 wait_start, 2 wait_end or 3 complete",
    "io": "expected an id in 0..n_events-1",
    "now_ns": "expected >= 0",
    "cpu": "expected 0..ncpus-1",
    "op": "expected 0 (read) or 1 (write)",
    "size": "expected bytes >= 0",
    "found": "expected 0 or 1",
    "seen_cpu": "expected 0..ncpus-1",
}


def as_events(events: np.ndarray, ncpus: int) -> np.ndarray:
    """The events as n x 8 int64, checked as replay.c checks them: ValueError, same message."""
    arr = np.asarray(events)
    if arr.ndim != 2 or arr.shape[1] != len(COLUMNS) or arr.dtype.kind not in "iu":
        raise ValueError(f"events: expected an integer array of shape (n, 8), got {arr.shape}")
    if not 1 <= ncpus <= MAX_CPUS:
        raise ValueError(f"ncpus {ncpus}: expected 1..{MAX_CPUS}")
    arr = np.ascontiguousarray(arr, dtype=np.int64)
    kind, io, cpu, op, size, now, found, seen = arr.T
    submit, complete = kind == SUBMIT, kind == COMPLETE
    bad = {
        "kind": (kind < SUBMIT) | (kind > COMPLETE),
        "io": (io < 0) | (io >= len(arr)),
        "now_ns": now < 0,
        "cpu": submit & ((cpu < 0) | (cpu >= ncpus)),
        "op": submit & (op != 0) & (op != 1),
        "size": submit & (size < 0),
        "found": complete & (found != 0) & (found != 1),
        "seen_cpu": complete & ((seen < 0) | (seen >= ncpus)),
    }
    anywhere = np.logical_or.reduce(list(bad.values())) if len(arr) else np.zeros(0, dtype=bool)
    if anywhere.any():
        i = int(np.flatnonzero(anywhere)[0])
        column = next(name for name, rows in bad.items() if rows[i])
        raise ValueError(f"event {i} (kind {kind[i]}, io {io[i]}): {column}: {_BAD[column]}")
    return arr


def replay_native(config: PolicyConfig, events: np.ndarray, ncpus: int) -> Replay:
    """The events through policy_core.c (``dpas.engine._engine.replay``; EngineMissing when
    the extension was not built)."""
    outputs, switch_stat, transitions, pas = native().replay(
        config_dict(config), as_events(events, ncpus), ncpus
    )
    return Replay(
        np.frombuffer(outputs, dtype=np.int64).reshape(-1, 4),
        np.frombuffer(switch_stat, dtype=np.int64).reshape(ncpus, len(SWITCH_STAT)),
        transitions,
        np.frombuffer(pas, dtype=np.int64).reshape(ncpus, STATS_BUCKETS, len(PAS_FIELDS)),
    )


def replay_reference(config: PolicyConfig, events: np.ndarray, ncpus: int) -> Replay:
    """The events through dpas.policy, reported as replay_native reports them.

    Bad events raise the ValueError replay.c raises, in the same words. Written with locals:
    the differential test runs millions of events through it.
    """
    arr = as_events(events, ncpus)
    policy = make_policy(config)
    dpas = policy if isinstance(policy, DpasPolicy) else None
    pas = policy if isinstance(policy, PasPolicy) else None
    on_submit, on_wait_start = policy.on_submit, policy.on_wait_start
    on_wait_end, on_complete = policy.on_wait_end, policy.on_complete
    ios: dict[int, Io] = {}
    requests: dict[tuple[int, int], Request] = {}
    ops = (Op.READ, Op.WRITE)
    # PasPolicy creates a CPU's states at its first PAS sleep, which sets io.dur_cnt >= 0
    pas_cpus: set[int] = set()
    out: list[tuple[int, int, int, int]] = []
    append = out.append
    for i, (kind, io_id, cpu, op, size, now, found, seen) in enumerate(arr.tolist()):
        if kind == SUBMIT:
            request = requests.get((op, size))
            if request is None:
                request = requests[(op, size)] = Request(ops[op], size)
            io = ios[io_id] = on_submit(cpu, request, now)
            append((int(io.polled), -1 if io.mode is None else int(io.mode), io.bucket, 0))
            continue
        if io_id not in ios:
            raise ValueError(f"event {i} (kind {kind}, io {io_id}): before its submit")
        io = ios[io_id]
        if kind == COMPLETE:
            on_complete(io, now, bool(found), seen)
            append((0, 0, 0, 0))
        elif not io.polled:
            append((0, 0, 0, 0))
        elif kind == WAIT_START:
            before = io.pas_update
            sleep = on_wait_start(io, now)
            if io.dur_cnt >= 0:
                pas_cpus.add(io.cpu)
            mode = -1 if dpas is None else int(dpas.switch_state(io.cpu).mode)
            append((sleep, io.dur_cnt, mode, _case(io.pas_update, before)))
        else:
            on_wait_end(io, now)
            append((0 if dpas is None else dpas.switch_state(io.cpu).qd, 0, 0, 0))
    return Replay(
        np.array(out, dtype=np.int64).reshape(-1, 4),
        _switch_stat(dpas, ncpus),
        _transitions(dpas),
        _pas_states(pas, pas_cpus, ncpus),
    )


def _case(update: PasUpdate | None, before: PasUpdate | None) -> int:
    """The case of the update the wait applied; Io keeps the last one, so compare identity."""
    return -1 if update is None or update is before else int(update.case)


def _switch_stat(policy: DpasPolicy | None, ncpus: int) -> np.ndarray:
    # switch_state() creates an unused CPU's state with the initial values, which is what the
    # C copy (eagerly initialised) reports for it
    stat = np.zeros((ncpus, len(SWITCH_STAT)), dtype=np.int64)
    if policy is not None:
        for cpu in range(ncpus):
            sw = policy.switch_state(cpu)
            stat[cpu] = (
                sw.cp_total,
                sw.pas_total,
                sw.ol_total,
                sw.int_total,
                sw.mode,
                sw.qd,
                sw.qd_sum,
                sw.tf,
                sw.evaluations_skipped,
            )
    return stat


def _transitions(policy: DpasPolicy | None) -> list[tuple[int, ...]]:
    if policy is None:
        return []
    ordered = sorted(policy.transitions, key=lambda t: t.cpu)  # stable: record order per CPU
    return [
        (
            t.now_ns,
            t.cpu,
            int(t.old),
            int(t.new),
            t.count,
            -1 if t.avg_qd is None else t.avg_qd,
            t.tf,
        )
        for t in ordered
    ]


def _pas_states(policy: PasPolicy | None, cpus: set[int], ncpus: int) -> np.ndarray:
    states = np.zeros((ncpus, STATS_BUCKETS, len(PAS_FIELDS)), dtype=np.int64)
    if policy is not None:
        for cpu in cpus:
            for bucket in range(STATS_BUCKETS):
                s = policy.state(cpu, bucket)
                states[cpu, bucket] = [getattr(s, name) for name in PAS_FIELDS]
    return states
