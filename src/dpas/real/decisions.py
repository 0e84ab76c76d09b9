"""The DPAS kernel's own decisions, read back and replayed through dpas.policy.

The series in kernel/ (its patch 3) has the kernel emit one ``dpas_io`` trace event per
polled request DPAS waited for: the CPU whose state decided, the request's size and
direction, whether it was polled and in which mode, the sleep chosen and the PAS generation
it slept for, the first poll pass's verdict, and the place of each of its four events
(submit, wait start, wait end, complete) among all the events of that CPU's state. Sorted by
(CPU, place), the events are exactly the sequence the kernel applied, so replaying them
through dpas.policy from a fresh state must give every decision the kernel made: the proof
that the kernel's copy of the rules is the reference's.

The kernel starts every CPU afresh when pas_enabled or switch_enabled is written and numbers
that state's generation; a run's replay covers every request of its generation so far (the
runs of one knob block share one). Only ``dpas vm`` arms the trace (in its throw-away guest):
on a host, tracefs is the user's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dpas.engine.rules import COMPLETE, SUBMIT, WAIT_END, WAIT_START, Replay, replay_reference
from dpas.policy import Method, Mode, PasParams, PolicyConfig, SwitchParams
from dpas.results import RunResult

TRACEFS = Path("/sys/kernel/tracing")
EVENT = Path("events/dpas/dpas_io")
#: per CPU; one event takes about 80 bytes of the ring: 100,000 requests a CPU
BUFFER_KB = 8192
_FIELD = re.compile(r"(\w+)=(-?[\d,]+)")
_TIME = re.compile(r"\s(\d+)\.(\d{6}): dpas_io: ")
_COUNTS = re.compile(r"entries-in-buffer/entries-written:\s*(\d+)/(\d+)")
#: differences named in a record, at most
NAMED = 10


@dataclass(frozen=True, slots=True)
class Decision:
    """One dpas_io event: what the kernel decided for one request."""

    gen: int
    cpu: int
    seen: int
    write: int
    bytes: int
    bucket: int
    polled: int
    mode: int
    waited: int
    sleep: int
    dur_cnt: int
    found: int
    qd: int
    seq: tuple[int, int, int, int]
    #: the event's trace time (its completion), ns
    t_ns: int = 0


def parse(text: str) -> tuple[list[Decision], int]:
    """The dpas_io events of tracefs's ``trace`` text, and how many the ring lost (written
    but no longer in the buffer)."""
    decisions: list[Decision] = []
    lost = 0
    for line in text.splitlines():
        if line.startswith("#"):
            counts = _COUNTS.search(line)
            if counts:
                lost = int(counts.group(2)) - int(counts.group(1))
            continue
        at = line.find("dpas_io: ")
        if at < 0:
            continue
        values = dict(_FIELD.findall(line[at:]))
        seq = tuple(int(s) for s in values.pop("seq").split(","))
        numbers = {name: int(value) for name, value in values.items()}
        when = _TIME.search(line)
        t_ns = int(when[1]) * 1_000_000_000 + int(when[2]) * 1000 if when else 0
        decisions.append(Decision(seq=(seq[0], seq[1], seq[2], seq[3]), t_ns=t_ns, **numbers))
    return decisions, lost


def policy_config(knobs: dict[str, str]) -> PolicyConfig:
    """The rules the kernel ran under these knob writes: PAS, or DPAS with switch_enabled."""
    method = Method.DPAS if knobs.get("switch_enabled") == "1" else Method.PAS
    params = {f"param{i}": int(knobs[f"switch_param{i}"]) for i in range(1, 8)
              if f"switch_param{i}" in knobs}  # fmt: skip
    return PolicyConfig(
        method=method,
        pas=PasParams(
            d_init=int(knobs.get("pas_d_init", "100")),
            adaptive=int(knobs.get("pas_adaptive_enabled", "0")),
        ),
        switch=SwitchParams(**params),
    )


def events(decisions: list[Decision]) -> np.ndarray:
    """The policy events of the requests, in the order each CPU's state applied them (rows
    as dpas.engine.rules.replay_reference takes them). The trace has one time a request, its
    completion's: each of its events takes it (the rules of PAS and DPAS read no clock; the
    times only date the mode changes)."""
    rows: list[tuple[int, ...]] = []
    keys: list[tuple[int, int]] = []
    start = min((d.t_ns for d in decisions), default=0)
    for io, d in enumerate(decisions):
        kinds = [SUBMIT] + ([WAIT_START, WAIT_END] if d.polled and d.waited else []) + [COMPLETE]
        for kind in kinds:
            rows.append((kind, io, d.cpu, d.write, d.bytes, d.t_ns - start, d.found, d.seen))
            keys.append((d.cpu, d.seq[kind]))
    order = sorted(range(len(rows)), key=keys.__getitem__)
    return np.array([rows[i] for i in order], dtype=np.int64).reshape(-1, 8)


def differences(decisions: list[Decision], config: PolicyConfig) -> list[str]:
    """Every decision where the kernel and dpas.policy differ, for the feedback the kernel
    saw (the first NAMED, and how many in all). Empty: the same decisions throughout."""
    return replay(decisions, config)[0]


def replay(decisions: list[Decision], config: PolicyConfig) -> tuple[list[str], Replay | None]:
    """differences(), and the reference's replay (its transitions: the DPAS timeline)."""
    if not decisions:
        return [], None
    rows = events(decisions)
    ncpus = int(max(max(d.cpu, d.seen) for d in decisions)) + 1
    replayed = replay_reference(config, rows, ncpus)
    found: list[str] = []
    total = 0
    for row, out in zip(rows.tolist(), replayed.outputs.tolist(), strict=True):
        kind, io = row[0], row[1]
        d = decisions[io]
        if kind == SUBMIT and (d.polled, d.mode) != (out[0], out[1]):
            what = f"kernel polled/mode {(d.polled, d.mode)}, policy {(out[0], out[1])}"
        elif kind == WAIT_START and (d.sleep, d.dur_cnt) != (out[0], out[1]):
            what = f"kernel slept {d.sleep} ns (gen {d.dur_cnt}), policy {out[0]} (gen {out[1]})"
        else:
            continue
        total += 1
        if len(found) < NAMED:
            found.append(f"request {io} on CPU {d.cpu}: {what}")
    if total > len(found):
        found.append(f"... {total} differences in all")
    return found, replayed


def timeline(
    replayed: Replay | None, decisions: list[Decision], since_ns: int
) -> list[tuple[float, int, str, str]]:
    """The DPAS mode changes from ``since_ns`` (trace time) on, as records keep them: (ms
    since then, CPU, old, new). A change is dated by the completion of the request whose
    wait made it."""
    if replayed is None or not decisions:
        return []
    start = min(d.t_ns for d in decisions)
    return [
        (round((start + now - since_ns) / 1e6, 3), cpu, Mode(old).name, Mode(new).name)
        for now, cpu, old, new, *_ in replayed.transitions
        if start + now >= since_ns
    ]


def summary(records: list[RunResult]) -> str | None:
    """One line on the runs whose decisions were replayed (None if none were)."""
    replayed = [r for r in records if r.replay is not None]
    if not replayed:
        return None
    ios = sum(int(r.replay["ios"]) for r in replayed if r.replay)
    lost = sum(int(r.replay["lost"]) for r in replayed if r.replay)
    wrong = [f"{r.mode} x{r.jobs}: {r.replay['differences'][0]}" for r in replayed
             if r.replay and r.replay["differences"]]  # fmt: skip
    line = (
        f"the kernel's decisions: {ios} requests of {len(replayed)} PAS/DPAS runs replayed "
        f"through dpas.policy, {len(wrong)} run(s) with differences"
    )
    line += f" ({'; '.join(wrong[:3])})" if wrong else ""
    return line + (f"; {lost} events lost by the trace ring" if lost else "")


@dataclass
class DecisionTrace:
    """The dpas_io event of one kernel's tracefs (``root``; a test's folder), armed around
    each run and replayed after it."""

    root: Path = TRACEFS
    #: the requests of the current generation so far
    kept: list[Decision] = field(default_factory=list)

    def available(self) -> bool:
        return (self.root / EVENT / "enable").is_file()

    def _write(self, name: str | Path, value: str) -> None:
        (self.root / name).write_text(value)

    def arm(self) -> None:
        """An empty ring, the event on, tracing on: what the run does is all it will hold."""
        self._write("tracing_on", "0")
        self._write("buffer_size_kb", str(BUFFER_KB))
        self._write("trace", "")
        self._write(EVENT / "enable", "1")
        self._write("tracing_on", "1")

    def collect(self, knobs: dict[str, str]) -> dict[str, Any]:
        """The run's events, read and cleared, replayed with its generation so far; what a
        record keeps of it."""
        self._write("tracing_on", "0")
        fresh, lost = parse((self.root / "trace").read_text())
        self._write("trace", "")
        if fresh:
            gen = fresh[-1].gen
            self.kept = [d for d in self.kept if d.gen == gen] + [d for d in fresh if d.gen == gen]
        found, replayed = replay(self.kept, policy_config(knobs))
        since = min((d.t_ns for d in fresh), default=0)
        return {
            "timeline": timeline(replayed, self.kept, since) if fresh else [],
            "ios": len(fresh),
            "replayed": len(self.kept),
            "lost": lost,
            "differences": found,
            "verdicts": {
                "overslept": sum(1 for d in fresh if d.dur_cnt >= 0 and d.found),
                "underslept": sum(1 for d in fresh if d.dur_cnt >= 0 and not d.found),
            },
        }
