"""What every backend of ``dpas bench`` runs, what it gives back, and results.json's shape.

A backend (the simulator, fio on a device, the QEMU guest) takes a ``Sweep``, bench.sh's
sweep of modes, job counts and repeats, and returns an ``Outcome``: the records, the modes it
refused, and what ran where. ``results_record`` turns the two into results.json, the same
shape for every backend.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Protocol

from dpas.errors import DpasError
from dpas.policy import LAB, Method, Op, Order, Rules, SwitchParams
from dpas.results import SCHEMA, RunResult
from dpas.workload import Workload

#: bench.sh's ALL; EHP is the paper's extra baseline and must be named
ALL_MODES = (Method.INT, Method.CP, Method.LHP, Method.PAS, Method.DPAS)
#: ALL for the engine, which runs every policy (HYB, the kernel's, is named on its own)
ENGINE_ALL_MODES = (Method.INT, Method.CP, Method.LHP, Method.EHP, Method.PAS, Method.DPAS)
DEFAULT_JOBS = (1, 2, 4, 8, 16)


@dataclass(frozen=True, slots=True)
class Sweep:
    """bench.sh's sweep: every mode at every job count, ``repeats`` times, 4 KiB at depth 1."""

    modes: tuple[Method, ...] = ALL_MODES
    rw: Op = Op.READ
    repeats: int = 1
    jobs: tuple[int, ...] = DEFAULT_JOBS
    #: "0": every job on CPU 0 (the lab); "split": one CPU per job (the paper); real runs also
    #: take a fio cpus_allowed list
    cpus: str = "0"
    runtime_s: float = 1.0
    #: stop each run after this many I/Os instead of after runtime_s; None: by runtime
    ios: int | None = None
    seed: int = 1
    bs: int = 4096
    #: None: auto, a tenth of the mean latency of a first short plain run (bench.sh)
    d_init_ns: int | None = None
    switch: SwitchParams = field(default_factory=SwitchParams)
    order: Order = Order.KERNEL
    #: whose kernel the simulator's policy follows: the lab's or the artifact's
    rules: Rules = LAB
    #: pas_adaptive_enabled (0 off, 1 dn, 2 up): bench.sh and the paper set 1; a profile's
    #: [published] section can name another, which ``dpas validate`` runs
    adaptive: int = 1
    #: job groups with patterns in time (dpas.workload); steady: bench.sh's identical jobs.
    #: A workload fixes its jobs: ``jobs`` is then its foreground's count alone
    workload: Workload = field(default_factory=Workload)
    #: the IUs whose WAF_IU each write run records (dpas.bench.waf), ascending; empty: none
    ius: tuple[int, ...] = ()

    @property
    def waf_ius(self) -> tuple[int, ...]:
        """The IUs a run counts its writes against: a steady write sweep's ``ius`` (a read
        sweep has no writes to count; the CLI refuses --iu with one, and with a workload)."""
        return self.ius if self.rw is Op.WRITE and self.workload.steady else ()

    def runs(self) -> list[tuple[Method, int, int]]:
        """(mode, jobs, repeat) in bench.sh's order: mode, then jobs, then repeat (from 1)."""
        return [
            (mode, jobs, repeat)
            for mode in self.modes
            for jobs in self.jobs
            for repeat in range(1, self.repeats + 1)
        ]

    def rounds(self) -> list[tuple[Method, int, int]]:
        """The same runs round by round: every mode and job count of repeat 1, then of repeat
        2 (A B C, A B C). A real drive or a guest drifts (heat, caches, the host's load): this
        way drift reaches every mode alike instead of one mode's repeats all at once. The
        simulator keeps ``runs``: its runs do not drift and their seeds ignore the order."""
        return sorted(self.runs(), key=lambda run: run[2])

    def record(self) -> dict[str, Any]:
        """The sweep as it goes into results.json's config."""
        return {
            "modes": [m.value for m in self.modes],
            "rw": "R" if self.rw is Op.READ else "W",
            "repeats": self.repeats,
            "jobs": list(self.jobs),
            "cpus": self.cpus,
            "runtime_s": self.runtime_s,
            "ios": self.ios,
            "seed": self.seed,
            "bs": self.bs,
            "d_init": "auto" if self.d_init_ns is None else self.d_init_ns,
            "switch": asdict(self.switch),
            "order": self.order.value,
            "rules": self.rules.name,
            "adaptive": self.adaptive,
            "workload": self.workload.record() if not self.workload.steady else "steady",
            "ius": list(self.ius),
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Sweep:
        """The sweep of ``record()`` (how the host hands a sweep to the guest)."""
        d_init = record["d_init"]
        return cls(
            modes=tuple(Method(m) for m in record["modes"]),
            rw=Op.parse(record["rw"]),
            repeats=record["repeats"],
            jobs=tuple(record["jobs"]),
            cpus=record["cpus"],
            runtime_s=record["runtime_s"],
            ios=record["ios"],
            seed=record["seed"],
            bs=record["bs"],
            d_init_ns=None if d_init == "auto" else d_init,
            switch=SwitchParams(**record["switch"]),
            order=Order(record["order"]),
            rules=Rules.named(record.get("rules", "lab")),
            adaptive=record.get("adaptive", 1),  # records before the field ran with 1
            workload=Workload.from_record(
                None if record.get("workload", "steady") == "steady" else record["workload"]
            ),
            ius=tuple(record.get("ius", ())),
        )


@dataclass(slots=True)
class Outcome:
    """What a backend produced: the records, and what results.json and the screen say of them."""

    records: list[RunResult] = field(default_factory=list)
    #: mode -> why it cannot run here (one line)
    refused: dict[str, str] = field(default_factory=dict)
    #: the pas_d_init used (auto: as measured)
    d_init_ns: int = 0
    #: what ran where, at results.json's top level (profile; kernel, fio_version, device, ...)
    context: dict[str, Any] = field(default_factory=dict)
    #: the lines printed above the tables
    header: list[str] = field(default_factory=list)
    #: why the sweep ended before its last run; None when it ran to the end
    ended_early: str | None = None
    #: the backend's own options, added to the sweep's in results.json's config
    config: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Measuring:
    """What a real or guest sweep has measured so far, filled in as its runs end: a backend
    that stops part-way still has it. ``outcome`` is its Outcome."""

    records: list[RunResult] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)
    d_init_ns: int = 0
    kernel: str = ""
    fio_version: str = ""

    def outcome(self, **said: Any) -> Outcome:
        """The Outcome of these records; ``said``: context, header, config."""
        return Outcome(records=self.records, refused=self.refused, d_init_ns=self.d_init_ns, **said)


class Backend(Protocol):
    """Runs a sweep somewhere: ``done(label)`` after each run ("DPAS x4"), for the progress bar.

    A sweep stopped part-way (a signal, a failing fio) raises ``Interrupted`` with what was
    measured, when anything was; otherwise the error itself.
    """

    name: str

    def run(self, sweep: Sweep, done: Callable[[str], None]) -> Outcome: ...


class Interrupted(DpasError):
    """A sweep that ended early with what it had measured: the cause's message and exit code,
    and the partial outcome, its ``ended_early`` set to the cause."""

    def __init__(self, cause: DpasError, outcome: Outcome) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.outcome = replace(outcome, ended_early=str(cause))
        self.exit_code = cause.exit_code


def results_record(sweep: Sweep, backend: str, outcome: Outcome) -> dict[str, Any]:
    """results.json: the schema, the backend and what ran where, the config, one record a run."""
    return {
        "schema": SCHEMA,
        "backend": backend,
        **outcome.context,
        "config": {**sweep.record(), **outcome.config},
        "d_init_ns": outcome.d_init_ns,
        "refused": outcome.refused,
        "ended_early": outcome.ended_early,
        "records": [asdict(r) for r in outcome.records],
    }
