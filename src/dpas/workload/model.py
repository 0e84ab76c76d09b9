"""A workload: job groups, each with its jobs, placement, I/O and a pattern in time.

Every backend runs the same Workload: the simulator (dpas.sim), fio (a job file, one section
per group), dpas's engine (its C loop) and the guest (either, inside); dpas.workload.pacer
says when each job may issue its next I/O.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any

from dpas.machine.fio import cpu_list, pinned
from dpas.policy import Op

#: the default workload: bench.sh's N identical jobs, back to back (records unchanged)
STEADY = "steady"


class Role(Enum):
    """What a group is to the experiment: the application measured, or load around it."""

    FOREGROUND = "foreground"
    BACKGROUND = "background"


@dataclass(frozen=True, slots=True)
class Pattern:
    """When a job issues: back to back unless one of these says otherwise. Times in ns."""

    #: at most this many I/Os a second per job, paced on absolute time (fio's rate_iops)
    rate_iops: int = 0
    #: CPU work between two I/Os, spent on the CPU (fio's thinktime with thinktime_spin)
    think_ns: int = 0
    #: ``burst_ios`` back to back at the start of every ``period_ns`` epoch, then idle
    #: (the artifact's io_gen); an epoch that overruns its period ends early
    burst_ios: int = 0
    period_ns: int = 0
    #: the job starts at ``start_ns`` and stops at ``stop_ns`` (0: the run's end)
    start_ns: int = 0
    stop_ns: int = 0
    #: from its start the job is on for ``on_ns``, then off for ``off_ns``, in turn (0: on)
    on_ns: int = 0
    off_ns: int = 0

    @property
    def paced(self) -> bool:
        """Whether anything says when a job may issue (a job that is not: back to back)."""
        return bool(self.rate_iops or self.burst_ios or self.start_ns or self.stop_ns or self.on_ns)


@dataclass(frozen=True, slots=True)
class Group:
    """Jobs that do the same thing: one section of a fio job file."""

    name: str
    role: Role = Role.FOREGROUND
    jobs: int = 1
    #: as --cpus: "0", "split" or a CPU list such as 0-3
    cpus: str = "0"
    #: each job on one CPU of ``cpus`` in turn; False: every job may run on any of them
    pinned: bool = True
    rw: Op = Op.READ
    bs: int = 4096
    #: "uniform" or "zipf:THETA" (fio's random_distribution)
    offsets: str = "uniform"
    pattern: Pattern = field(default_factory=Pattern)

    @property
    def foreground(self) -> bool:
        return self.role is Role.FOREGROUND

    @property
    def zipf_theta(self) -> float:
        """The zipf exponent (0: uniform offsets)."""
        return float(self.offsets.split(":")[1]) if self.offsets.startswith("zipf:") else 0.0

    def cpus_of(self, online: int) -> tuple[int, ...]:
        """Each job's CPU, as fio's cpus_allowed_policy=split places them (unpinned jobs: the
        CPU a backend that cannot migrate them puts them on, the same rule)."""
        return pinned(self.cpus, self.jobs, online)

    def allowed(self, online: int) -> list[int]:
        """The CPUs the group's jobs may run on."""
        if self.cpus == "0":
            return [0]
        return list(range(online)) if self.cpus == "split" else cpu_list(self.cpus)

    def record(self) -> dict[str, Any]:
        return {
            **{k: v for k, v in asdict(self).items() if k not in ("role", "rw", "pattern")},
            "role": self.role.value,
            "rw": "R" if self.rw is Op.READ else "W",
            "pattern": asdict(self.pattern),
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Group:
        return cls(
            **{k: v for k, v in record.items() if k not in ("role", "rw", "pattern")},
            role=Role(record["role"]),
            rw=Op.parse(record["rw"]),
            pattern=Pattern(**record["pattern"]),
        )


@dataclass(frozen=True, slots=True)
class Workload:
    """Job groups that run together for one run; ``steady`` stands for bench.sh's run."""

    name: str = STEADY
    groups: tuple[Group, ...] = ()
    #: seconds per run when --runtime is not given (a pattern's natural length)
    runtime_s: float | None = None
    #: where the built-in comes from (docs and results.json)
    source: str = ""

    @property
    def steady(self) -> bool:
        return not self.groups

    @property
    def foreground_jobs(self) -> int:
        return sum(g.jobs for g in self.groups if g.foreground)

    @property
    def writes(self) -> bool:
        return any(g.rw is Op.WRITE for g in self.groups)

    def cpus(self, online: int) -> list[int]:
        """Every CPU a job of the workload may run on: what host_cpu_pct is a share of."""
        return sorted({c for g in self.groups for c in g.allowed(online)})

    def beyond(self, online: int, where: str) -> str | None:
        """Why the workload cannot run on ``where``'s ``online`` CPUs (a group names a CPU
        past them), in one line; None when it can."""
        for g in self.groups:
            past = [cpu for cpu in g.allowed(online) if cpu >= online]
            if past:
                return (
                    f"workload {self.name}: group {g.name!r} has cpus = {g.cpus!r}, which names "
                    f"CPU {past[0]}, and {where} has {online} CPU{'s' if online > 1 else ''}"
                )
        return None

    def record(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "groups": [g.record() for g in self.groups],
            "runtime_s": self.runtime_s,
            "source": self.source,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any] | None) -> Workload:
        if not record:
            return cls()
        return cls(
            name=record["name"],
            groups=tuple(Group.from_record(g) for g in record["groups"]),
            runtime_s=record.get("runtime_s"),
            source=record.get("source", ""),
        )
