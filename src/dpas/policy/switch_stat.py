"""The ``switch_stat`` attribute: one line per CPU, in the kernel's exact format (reference §4).

The lab kernel returns the lines from the read; the artifact kernel prints them to the
kernel log, where each gets a timestamp prefix. ``parse`` accepts both.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

from dpas.errors import DpasError
from dpas.policy.switch import Mode, SwitchParams, SwitchState

FORMAT = (
    "CPU[{cpu:2d}] MODE[{mode:d}] QD[{qd:2d}] param1: {param1:d} param2: {param2:d} "
    "param3: {param3:d} polled io: {cp_io:d}, pas io: {pas_io:d}, ol io: {ol_io:d}, "
    "int io: {int_io:d}"
)

#: Matched at the start of each line (``match``, not ``search``): the leading ``.*?`` already
#: finds the record anywhere in the line, and a search would retry it from every position,
#: quadratic in the line's length. The timestamp is only ever taken at the line's start.
_LINE = re.compile(
    r"(?:\[\s*(?P<ts>\d+\.\d+)\]\s*)?.*?"
    r"CPU\[\s*(?P<cpu>-?\d+)\]\s+MODE\[(?P<mode>\d+)\]\s+QD\[\s*(?P<qd>-?\d+)\]\s+"
    r"param1:\s*(?P<param1>-?\d+)\s+param2:\s*(?P<param2>-?\d+)\s+param3:\s*(?P<param3>-?\d+)\s+"
    r"polled io:\s*(?P<cp_io>\d+),\s*pas io:\s*(?P<pas_io>\d+),\s*ol io:\s*(?P<ol_io>\d+),\s*"
    r"int io:\s*(?P<int_io>\d+)"
)

#: What the kernel prints each field with: %d (int) or %llu (u64)
_INT = (-(2**31), 2**31 - 1)
_U64 = (0, 2**64 - 1)
FIELD_RANGES = {
    "cpu": _INT,
    "qd": _INT,
    "param1": _INT,
    "param2": _INT,
    "param3": _INT,
    "cp_io": _U64,
    "pas_io": _U64,
    "ol_io": _U64,
    "int_io": _U64,
}


class SwitchStatError(DpasError, ValueError):
    """A switch_stat line with a value the kernel cannot print; the message shows the line."""


@dataclass(frozen=True, slots=True)
class SwitchStatLine:
    """One CPU's line: its mode and queue depth now, and the I/O totals of each mode.

    ``cp_io`` is what the kernel labels "polled io": the I/Os submitted in CP.
    """

    cpu: int
    mode: Mode
    qd: int
    param1: int
    param2: int
    param3: int
    cp_io: int
    pas_io: int
    ol_io: int
    int_io: int
    #: seconds since boot, when parsed from a kernel-log line
    timestamp: float | None = None

    @classmethod
    def of(cls, cpu: int, state: SwitchState, params: SwitchParams) -> SwitchStatLine:
        return cls(
            cpu,
            state.mode,
            state.qd,
            params.param1,
            params.param2,
            params.param3,
            state.cp_total,
            state.pas_total,
            state.ol_total,
            state.int_total,
        )

    def render(self) -> str:
        return FORMAT.format(
            cpu=self.cpu,
            mode=int(self.mode),
            qd=self.qd,
            param1=self.param1,
            param2=self.param2,
            param3=self.param3,
            cp_io=self.cp_io,
            pas_io=self.pas_io,
            ol_io=self.ol_io,
            int_io=self.int_io,
        )

    @property
    def totals(self) -> dict[str, int]:
        return {"cp": self.cp_io, "pas": self.pas_io, "ol": self.ol_io, "int": self.int_io}


def render(lines: Iterable[SwitchStatLine]) -> str:
    """The attribute's text: one line per CPU, newline-terminated."""
    return "".join(line.render() + "\n" for line in lines)


def parse(text: str) -> list[SwitchStatLine]:
    """Every switch_stat line in ``text``, in order; other lines (log noise) are skipped."""
    records = []
    for raw in text.splitlines():
        m = _LINE.match(raw)
        if m is not None:
            records.append(_record(raw, m))
    return records


def _record(raw: str, m: re.Match[str]) -> SwitchStatLine:
    g = m.groupdict()
    ts = g.pop("ts")
    mode = _field(raw, "MODE", g.pop("mode"), (0, 2**31 - 1))
    if mode not in Mode._value2member_map_:
        raise SwitchStatError(f"switch_stat line {_shown(raw)}: MODE[{mode}] is not 0-4")
    values = {k: _field(raw, k, v, FIELD_RANGES[k]) for k, v in g.items()}
    timestamp = None if ts is None else float(ts)
    if timestamp is not None and not math.isfinite(timestamp):
        raise SwitchStatError(
            f"switch_stat line {_shown(raw)}: timestamp {ts[:24]}: expected finite seconds"
        )
    return SwitchStatLine(mode=Mode(mode), timestamp=timestamp, **values)


def _field(raw: str, name: str, digits: str, accepted: tuple[int, int]) -> int:
    """A field's value if the kernel's format can print it (checked before int(), which
    refuses strings of thousands of digits with a ValueError of its own)."""
    low, high = accepted
    value = int(digits) if len(digits) <= 21 else None
    if value is None or not low <= value <= high:
        raise SwitchStatError(
            f"switch_stat line {_shown(raw)}: {name} {digits[:24]}: expected {low} to {high}"
        )
    return value


def _shown(raw: str) -> str:
    """The line as the message quotes it: on one line and cut short."""
    line = raw.strip()
    return repr(line if len(line) <= 120 else line[:117] + "...")


def latest(records: Iterable[SwitchStatLine]) -> dict[int, SwitchStatLine]:
    """The last line of each CPU: a kernel log holds one snapshot per read of the attribute."""
    return {r.cpu: r for r in records}


class NoBreakdown(DpasError, ValueError):
    """Two snapshots whose difference is no count of I/Os; the message says why."""


def delta(before: Iterable[SwitchStatLine], after: Iterable[SwitchStatLine]) -> dict[str, int]:
    """The I/Os counted in each mode between two snapshots, summed over CPUs.

    Each snapshot may hold several reads (a kernel log does): the last line of each CPU counts.
    NoBreakdown when the two show different CPUs or a CPU's total went backwards: their
    difference would then count what the counters held before, or come out negative.
    """
    old, new = latest(before), latest(after)
    if old.keys() != new.keys():
        came, went = sorted(new.keys() - old.keys()), sorted(old.keys() - new.keys())
        changes = [f"{_cpus(came)} appeared"] if came else []
        changes += [f"{_cpus(went)} disappeared"] if went else []
        raise NoBreakdown(f"switch_stat's CPUs changed between its reads ({', '.join(changes)})")
    back = [
        cpu
        for cpu, line in sorted(new.items())
        if any(value < old[cpu].totals[key] for key, value in line.totals.items())
    ]
    if back:
        raise NoBreakdown(f"switch_stat counters went backwards on {_cpus(back)} during the run")
    totals = dict.fromkeys(("cp", "pas", "ol", "int"), 0)
    for cpu, line in new.items():
        for key, value in line.totals.items():
            totals[key] += value - old[cpu].totals[key]
    return totals


def _cpus(cpus: list[int]) -> str:
    return f"CPU{'s' if len(cpus) > 1 else ''} {', '.join(map(str, cpus))}"
