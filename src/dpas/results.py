"""The result record every backend writes: one RunResult per run, and results.json's schema.

The simulator, fio on a device, dpas's engine, the QEMU guest (and any backend to come)
produce the same record; the reports read it without knowing which backend wrote it.

Each field is declared once, here, with what the reports need to know of it (``Column``: its
unit, which backends fill it, its place in results.csv and in a sweep's Parquet rows, its
table heading and format). JSON keeps every field in declaration order; results.csv, the
sweep's rows and the tables are the views ``csv_columns``, ``ROW_COLUMNS`` and
``TABLE_COLUMNS`` derived from these declarations. A new metric is one field here.
"""

from __future__ import annotations

from dataclasses import MISSING, Field, dataclass, field, fields
from typing import Any

from dpas.policy import Op

SCHEMA = "dpas.bench/2"
#: what dpas's own engine calls itself in a record's ``engine`` (fio's runs name fio's engine)
ENGINE = "dpas engine"
#: the DPAS switch's modes, as switch_stat's breakdown names them
BREAKDOWN = ("cp", "pas", "ol", "int")

#: who fills a field: every backend, or only some of them
EVERY = "every backend"
SIMULATOR = "simulator"
REAL = "fio, engine, guest"
FIO = "fio"
ENGINE_RUNS = "engine"
GUEST = "guest"


@dataclass(frozen=True, slots=True)
class Column:
    """What the reports know of one field of the record."""

    unit: str = ""
    #: the backends that fill it (the others leave it None)
    by: str = EVERY
    #: its place in results.csv (a dict field: its keys' places, in turn); None: not there
    csv: int | None = None
    #: its place among a sweep's result columns (Parquet), under ``row_name``; None: not there
    row: int | None = None
    row_name: str = ""
    #: the Arrow type of its Parquet column, where not the one its Python type gives
    arrow: str = ""
    #: its heading and format in bench.sh's per-mode tables (a mean over repeats)
    table: tuple[str, str] | None = None


def _column(default: Any = MISSING, **column: Any) -> Any:
    """A record field and its Column (``field``'s metadata)."""
    return field(default=default, metadata={"column": Column(**column)})


@dataclass(frozen=True, slots=True)
class RunKey:
    """Which run a record is: bench.sh's mode, job count, workload and repeat."""

    mode: str = _column(csv=0)
    jobs: int = _column(csv=1)
    #: "R" or "W"
    rw: str = _column(csv=2)
    #: from 1
    repeat: int = _column(csv=3)

    @classmethod
    def of(cls, mode: str, jobs: int, rw: Op, repeat: int) -> RunKey:
        return cls(mode, jobs, "R" if rw is Op.READ else "W", repeat)

    @property
    def op(self) -> Op:
        return Op.parse(self.rw)


@dataclass(frozen=True, slots=True)
class Measured(RunKey):
    """A run and what every backend measures of it, as fio reports it (fio's JSON gives
    exactly these, dpas.machine.fio)."""

    ios: int = _column(unit="I/Os", csv=18, row=0, row_name="ios_done")
    runtime_s: float = _column(unit="s", csv=17, row=1)
    iops: float = _column(unit="I/O/s", csv=4, row=2, table=("IOPS", ".0f"))
    lat_mean_us: float = _column(unit="µs", csv=5, row=3, table=("lat_us", ".1f"))
    lat_p50_us: float = _column(unit="µs", csv=6, row=4)
    lat_p99_us: float = _column(unit="µs", csv=7, row=5)
    lat_p999_us: float = _column(unit="µs", csv=8, row=6)
    #: fio's cpu line for the group: the jobs' CPU time over jobs x runtime (polling counts)
    cpu_pct: float = _column(unit="%", csv=9, row=7, table=("cpu%", ".1f"))
    ctx: int = _column(unit="switches", csv=10, row=8, table=("ctx", ".0f"))


@dataclass(frozen=True, slots=True, kw_only=True)
class RunResult(Measured):
    """One record of results.json: what fio and bench.sh report, and what the backend saw."""

    #: DPAS switch_stat totals summed over CPUs (BREAKDOWN's keys); None for other modes
    breakdown: dict[str, int] | None = _column(None, unit="I/Os", csv=11, row=15, row_name="bd_")
    switch_stat: list[dict[str, Any]] | None = _column(None)
    #: DPAS mode changes: (ms, cpu, old, new)
    timeline: list[tuple[float, int, str, str]] | None = _column(None)
    #: sleeps that yielded, and timers that expired while armed
    sleeps_taken: int | None = _column(None, by="simulator, engine", csv=12, row=9)
    sleeps_skipped: int | None = _column(None, by=SIMULATOR, csv=13, row=10)
    max_qd: int | None = _column(None, by=SIMULATOR, csv=14, row=11)
    d_init_ns: int = _column(unit="ns", csv=15, row=12)
    seed: int | None = _column(
        None, by="simulator, engine", csv=16, row=13, row_name="run_seed", arrow="uint64"
    )
    events: int | None = _column(None, by=SIMULATOR, row=14)
    #: what ran where
    backend: str = _column("simulator")
    kernel: str | None = _column(None, by=REAL)
    device: str | None = _column(None, by=REAL)
    knobs: dict[str, str] | None = _column(None, by=REAL)
    fio_version: str | None = _column(None, by=FIO)
    engine: str | None = _column(None, by=REAL, csv=24)
    note: str | None = _column(None, by=REAL)
    #: the device's interrupts during the run
    interrupts: int | None = _column(None, by=REAL, table=("irqs", ".0f"))
    #: guest runs: whether the guest kernel accepted io_uring's HYBRID_IOPOLL (6.13+)
    hybrid_iopoll: str | None = _column(None, by=GUEST)
    #: context switches in which the jobs gave up the CPU themselves (blocked, slept)
    ctx_voluntary: int | None = _column(None, by=ENGINE_RUNS, csv=19)
    #: context switches in which the jobs were preempted
    ctx_involuntary: int | None = _column(None, by=ENGINE_RUNS, csv=20)
    #: I/Os whose first poll after the sleep found the completion there
    overslept: int | None = _column(None, by=ENGINE_RUNS, csv=21)
    #: I/Os whose first poll after the sleep did not find the completion
    underslept: int | None = _column(None, by=ENGINE_RUNS, csv=22)
    #: the path of the per-I/O decision log file, where one was written
    log: str | None = _column(None, by=ENGINE_RUNS, csv=23)
    #: fio on the DPAS kernel: every CPU's switch mode (switch_stat's MODE[n], by name) around
    #: the run, {"before": {"0": "PAS", ...}, "after": {...}}; CPU numbers as JSON keeps them
    cpu_modes: dict[str, dict[str, str]] | None = _column(None, by=FIO)
    #: fio on the DPAS series' kernel in dpas vm: its dpas_io decisions replayed through
    #: dpas.policy (dpas.real.decisions): ios (this run's), replayed (its generation's so
    #: far), lost (events the ring dropped), differences (named; [] = the same decisions) and
    #: the first poll pass's verdicts
    replay: dict[str, Any] | None = _column(None, by=GUEST)

    #: a workload run (dpas.workload; None: steady, bench.sh's run): its name; the record's
    #: measures above are then its foreground groups' (``foreground``)
    workload: str | None = _column(None, csv=25)
    #: each group's own measures (GroupResult's fields), in the workload's order
    groups: list[dict[str, Any]] | None = _column(None)
    #: CPU time of every job of every group (background too: it is part of the price) over
    #: the workload's CPUs x runtime
    host_cpu_pct: float | None = _column(None, unit="%", csv=26, row=16)
    #: DPAS: the share of the run's CPU time each switch mode held, over the workload's CPUs
    #: (from the timeline; a CPU starts in PAS)
    mode_share: dict[str, float] | None = _column(None)
    #: a workload run over time: {"bin_ms": B, "groups": {name: {"iops": [...],
    #: "lat_us": [...]}}}, one value per bin of B ms (the mean latency of the bin's I/Os)
    series: dict[str, Any] | None = _column(None)
    #: a write run given --iu (dpas.bench.waf): per IU, ascending, its writes against a drive
    #: that maps its blocks in units of ``iu`` bytes: {"iu", "writes", "logical", "media",
    #: "start_only", "end_only", "both"}, exact counts and bytes (WAF_IU = media / logical)
    waf: list[dict[str, int]] | None = _column(None)

    @classmethod
    def from_measured(cls, measured: Measured, **rest: Any) -> RunResult:
        """The record of ``measured`` (a backend's run and its numbers) and the rest."""
        return cls(**spread(measured, Measured), **rest)


@dataclass(frozen=True, slots=True)
class GroupResult:
    """One job group of a workload run, measured as fio measures a reporting group."""

    name: str
    role: str
    jobs: int
    ios: int
    iops: float
    lat_mean_us: float
    lat_p50_us: float
    lat_p99_us: float
    lat_p999_us: float
    #: its jobs' CPU time over jobs x runtime, as fio's cpu line
    cpu_pct: float
    ctx: int


def foreground(groups: list[GroupResult]) -> dict[str, Any]:
    """The run's headline measures from its foreground groups, on every backend alike: I/Os,
    IOPS and context switches summed, mean latency and CPU weighted (by I/Os, by jobs), and
    each percentile the worst foreground group's (percentiles of groups cannot be merged
    from fio's reports, so no backend merges them)."""
    fg = [g for g in groups if g.role == "foreground"]
    ios = sum(g.ios for g in fg)
    jobs = sum(g.jobs for g in fg)
    return {
        "ios": ios,
        "iops": sum(g.iops for g in fg),
        "lat_mean_us": sum(g.lat_mean_us * g.ios for g in fg) / ios if ios else 0.0,
        "lat_p50_us": max(g.lat_p50_us for g in fg),
        "lat_p99_us": max(g.lat_p99_us for g in fg),
        "lat_p999_us": max(g.lat_p999_us for g in fg),
        "cpu_pct": sum(g.cpu_pct * g.jobs for g in fg) / jobs if jobs else 0.0,
        "ctx": sum(g.ctx for g in fg),
    }


def mode_shares(
    timeline: list[tuple[float, int, str, str]], cpus: list[int], runtime_ms: float
) -> dict[str, float]:
    """The share of ``cpus`` x ``runtime_ms`` each DPAS mode held: every CPU starts in PAS
    and changes at the timeline's (ms, cpu, old, new) entries."""
    held = dict.fromkeys(("PAS", "CP", "OL", "INT"), 0.0)
    since = {cpu: (0.0, "PAS") for cpu in cpus}
    for ms, cpu, _, new in sorted(timeline):
        if cpu not in since:
            continue
        start, mode = since[cpu]
        held[mode] += min(ms, runtime_ms) - start
        since[cpu] = (min(ms, runtime_ms), new)
    for start, mode in since.values():
        held[mode] += runtime_ms - start
    total = runtime_ms * len(cpus)
    return {mode: round(held[mode] / total, 6) if total else 0.0 for mode in held}


def spread(value: Any, cls: type) -> dict[str, Any]:
    """``value``'s fields of the dataclass ``cls`` (one of its bases), by name."""
    return {f.name: getattr(value, f.name) for f in fields(cls)}


def column(f: Field[Any]) -> Column:
    return f.metadata["column"]  # type: ignore[no-any-return]


def _placed(where: str) -> list[Field[Any]]:
    """The record's fields that have a place in ``where`` ("csv", "row"), in their order."""
    placed = [f for f in fields(RunResult) if getattr(column(f), where) is not None]
    return sorted(placed, key=lambda f: getattr(column(f), where))


def csv_columns() -> tuple[str, ...]:
    """results.csv's header: a dict field (the breakdown) as one column per key."""
    names: list[str] = []
    for f in _placed("csv"):
        names += BREAKDOWN if f.name == "breakdown" else (f.name,)
    return tuple(names)


def csv_row(record: dict[str, Any]) -> list[Any]:
    """A JSON record as results.csv's row ("" where a field is None)."""
    flat = {**record, **{k: (record["breakdown"] or {}).get(k) for k in BREAKDOWN}}
    return ["" if flat.get(c) is None else flat[c] for c in CSV_COLUMNS]


def _row_columns() -> tuple[tuple[str, str, str], ...]:
    """(column, field, arrow type) of a sweep's result columns (Parquet)."""
    out: list[tuple[str, str, str]] = []
    for f in _placed("row"):
        c = column(f)
        if f.name == "breakdown":
            out += [(f"{c.row_name}{k}", f.name, "int64") for k in BREAKDOWN]
            continue
        arrow = c.arrow or ("int64" if f.type in ("int", "int | None") else "float64")
        out.append((c.row_name or f.name, f.name, arrow))
    return tuple(out)


def row_values(result: RunResult) -> dict[str, Any]:
    """A record's scalars as a sweep's result columns (the breakdown's None where it has none)."""
    bd = result.breakdown or {}
    values: dict[str, Any] = {}
    for name, source, _ in ROW_COLUMNS:
        key = name.removeprefix(column(_FIELDS[source]).row_name)
        values[name] = bd.get(key) if source == "breakdown" else getattr(result, source)
    return values


_FIELDS = {f.name: f for f in fields(RunResult)}
CSV_COLUMNS = csv_columns()
#: results.csv's columns a steady sweep's file leaves out
WORKLOAD_COLUMNS = ("workload", "host_cpu_pct")
#: a sweep's result columns: (name, the record's field, Arrow type)
ROW_COLUMNS = _row_columns()
#: bench.sh's table: (field, heading, format), in the record's order
TABLE_COLUMNS = tuple((f.name, *t) for f in fields(RunResult) if (t := column(f).table) is not None)
