"""fio's side of a workload (dpas.workload): the job file of one run, and fio's JSON output and
logs read back as one GroupResult a group, its series, and the run's record fields.

The job file has a [global] section (bench.sh's job: direct, iodepth 1, time_based, runtime in
ms, randrepeat=0, norandommap, group_reporting) and, for each group, one section per window
it runs in, each named (``name``) after the group; the group's first section carries
``new_group``, so fio reports each group apart (its ``groupid`` counts the groups that have a
section, in order). fio's ``readonly`` is a command-line option only (a job file cannot set
it): the caller passes ``--readonly`` when ``JobPlan.readonly``.

How a group's pattern becomes fio's options:

* placement: ``cpus`` "0", "split" and lists as FioJob.argv writes them; ``pinned`` is
  cpus_allowed_policy=split, unpinned shared. fio's split numbers the jobs of the whole file
  (job i of a section takes the mask's ((i + jobs before the section) mod n)-th CPU), so where
  that is not the CPU Group.cpus_of names, the section is written once per CPU instead (each
  with its own jobs), so that every job runs where every other backend puts it.
* rate_iops: fio's rate_iops (linear: each I/O due on the job's own clock, as ``Pacer``).
* think_us: thinktime=T, thinktime_spin=T, thinktime_blocks=1: T µs of CPU, spun, after every
  I/O. fio before 3.36 stalls a job for the rest of the run when the spin overruns T by a
  microsecond (fio issue #1588, fixed by 14adf6e3), which a preempted spin does: there the
  think is thinktime=T alone, which fio spins only when T is below its nanosleep granularity
  (tens of µs; longer, it sleeps), and the record's note says so.
* bursts: thinktime=period_us, thinktime_blocks=burst_ios (no spin: slept): each job issues
  burst_ios back to back, then idles a whole period_ms, and again. The artifact's io_gen idles
  only until its epoch's end, a period after the epoch began: fio has no "sleep until", so
  (1) fio's epoch is period_ms plus the burst's own time, and its bursts come that much less
  often (a burst of 320 I/Os of 60 µs: 19 ms in a 320 ms period, 6% fewer I/Os); (2) a burst
  that overruns its period runs to its last I/O, then idles a whole period, where io_gen drops
  the rest of the burst and starts the next epoch at once; (3) in fio before 3.34 a job's last
  idle may run past the run's end (fio then reports a longer runtime for that group).
  thinktime_iotime is not used: it caps a burst by time, which io_gen's count already does.
  A group with both think_us and bursts is refused: fio has one thinktime a job.
* start_s/stop_s: startdelay and runtime. on_s/off_s: one section per window that starts
  before the run's end (the first with new_group), each with its startdelay and runtime.
  fio starts a delayed job from its main loop, which looks every 100 ms: a delayed window
  starts (and ends) up to ~100 ms late, and the series place it as if it had not.

The series come from fio's logs (write_iops_log and write_lat_log, log_avg_msec=100): see
``series``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dpas.errors import DpasError
from dpas.machine.fio import FioError, _number, _object, _percentile, cpu_list, reported_jobs
from dpas.policy import Op
from dpas.results import GroupResult, Measured, RunKey, spread
from dpas.workload.measures import BIN_MS, workload_fields
from dpas.workload.model import Group, Workload

#: fio's limit on jobs in one run (REAL_MAX_JOBS)
FIO_MAX_JOBS = 4096
#: the first fio that spins a think time without the risk of stalling (fio issue #1588)
SPIN_SAFE = (3, 36)
NS_PER_MS = 1_000_000


class WorkloadFioError(DpasError, ValueError):
    """A workload fio cannot run as written, in one line naming the group."""


def spins_think(fio_version: str) -> bool:
    """Whether this fio ("fio-3.33") can spin a think time safely (3.36 and later)."""
    found = re.match(r"fio-(\d+)\.(\d+)", fio_version.strip())
    return found is not None and (int(found[1]), int(found[2])) >= SPIN_SAFE


def windows(group: Group, end_ns: int) -> list[tuple[int, int]]:
    """(start, length) in ms of each stretch the group's jobs run in, within [0, end_ns)."""
    p = group.pattern
    stop = min(p.stop_ns, end_ns) if p.stop_ns else end_ns
    if p.start_ns >= stop:
        return []
    if not p.on_ns or not p.off_ns:  # no off time: one window
        spans = [(p.start_ns, stop - p.start_ns)]
    else:
        cycle = p.on_ns + p.off_ns
        count = -(-(stop - p.start_ns) // cycle)
        if count * group.jobs > FIO_MAX_JOBS:
            raise WorkloadFioError(
                f"workload group {group.name!r}: {count} on-windows of {group.jobs} jobs are "
                f"more than fio's {FIO_MAX_JOBS} jobs in one run"
            )
        starts = (p.start_ns + k * cycle for k in range(count))
        spans = [(s, min(p.on_ns, stop - s)) for s in starts]
    out = [(round(s / NS_PER_MS), round(n / NS_PER_MS)) for s, n in spans]
    return [(s, n) for s, n in out if n > 0]  # fio reads runtime=0 as no limit


@dataclass(frozen=True, slots=True)
class Section:
    """One section of the job file: some of a group's jobs in one of its windows."""

    group: int
    jobs: int
    cpus: str
    policy: str
    #: ms: when it starts, and for how long (None: from the start, to the run's end)
    start_ms: int
    length_ms: int | None
    #: the log files' prefix (write_iops_log, write_lat_log), when logs are written
    log: str | None


def _mask_split(mask: str, online: int, offset: int, jobs: int) -> tuple[int, ...]:
    """Where fio's cpus_allowed_policy=split puts a section's jobs: job i on the mask's
    ((i + offset) mod n)-th CPU, in CPU order (offset: the jobs of the file before it)."""
    cpus = sorted(set(range(online) if mask == f"0-{online - 1}" else cpu_list(mask)))
    return tuple(cpus[(offset + i) % len(cpus)] for i in range(jobs))


def placements(group: Group, online: int, offset: int) -> list[tuple[int, str, str]]:
    """(numjobs, cpus_allowed, cpus_allowed_policy) of the group's sections in one window,
    its first job being the file's ``offset``-th."""
    if group.cpus == "0":
        return [(group.jobs, "0", "shared")]
    mask = f"0-{online - 1}" if group.cpus == "split" else group.cpus
    if not group.pinned:
        return [(group.jobs, mask, "shared")]
    wanted = group.cpus_of(online)
    if _mask_split(mask, online, offset, group.jobs) == wanted:
        return [(group.jobs, mask, "split")]
    counts: dict[int, int] = {}
    for cpu in wanted:
        counts[cpu] = counts.get(cpu, 0) + 1
    return [(n, str(cpu), "split") for cpu, n in counts.items()]


@dataclass(frozen=True, slots=True)
class JobPlan:
    """A workload's fio run: its sections, and the job file that says them."""

    workload: Workload
    sections: tuple[Section, ...]
    text: str
    runtime_s: float
    #: what the record says of how fio ran the patterns ("" : as the workload says)
    note: str = ""

    @property
    def readonly(self) -> bool:
        return not self.workload.writes

    def argv(self, fio: str, job_path: Path) -> list[str]:
        """fio's command line for the job file at ``job_path``."""
        return [
            fio,
            "--output-format=json",
            *(["--readonly"] if self.readonly else []),
            str(job_path),
        ]

    def whole(self, index: int) -> bool:
        """Whether group ``index``'s jobs all ran the whole run (one window, start to end)."""
        mine = [s for s in self.sections if s.group == index]
        return bool(mine) and all(s.start_ms == 0 and s.length_ms is None for s in mine)


def plan(
    workload: Workload,
    filename: Path | str,
    ioengine: str,
    hipri: bool,
    runtime_s: float,
    size: int | None,
    online_cpus: int,
    seed: int | None = None,
    *,
    log_dir: Path | None = None,
    spin_think: bool = True,
) -> JobPlan:
    """The run of ``workload`` for ``runtime_s`` on ``filename``, as the module says; with
    ``log_dir``, each section logs its IOPS and latencies there (100 ms windows)."""
    runtime_ms = round(runtime_s * 1000)
    sections: list[Section] = []
    if why := workload.beyond(online_cpus, "this machine"):
        raise WorkloadFioError(why)
    for index, group in enumerate(workload.groups):
        _check(group)
        for start, length in windows(group, runtime_ms * NS_PER_MS):
            whole = start == 0 and length == runtime_ms
            offset = sum(s.jobs for s in sections)
            for jobs, cpus, policy in placements(group, online_cpus, offset):
                log = str(log_dir / f"s{len(sections)}") if log_dir is not None else None
                sections.append(
                    Section(index, jobs, cpus, policy, start, None if whole else length, log)
                )
    if sum(s.jobs for s in sections) > FIO_MAX_JOBS:
        raise WorkloadFioError(
            f"workload {workload.name}: more than fio's {FIO_MAX_JOBS} jobs in one run"
        )
    thinks = any(g.pattern.think_ns for g in workload.groups)
    note = (
        ""
        if spin_think or not thinks
        else "think time as fio's thinktime alone, not spun (fio before 3.36 can stall "
        "a spinning job: fio issue #1588): spun only below fio's sleep granularity"
    )
    lines = _global(workload, filename, ioengine, hipri, runtime_ms, size, seed, log_dir)
    seen: set[int] = set()
    for k, section in enumerate(sections):
        group = workload.groups[section.group]
        first = section.group not in seen
        seen.add(section.group)
        lines += ["", f"[{group.name}.{k + 1}]", *_section(group, section, first, spin_think)]
    return JobPlan(workload, tuple(sections), "\n".join(lines) + "\n", runtime_s, note)


def _check(group: Group) -> None:
    """What fio cannot run as the group says (rather than fio's own error, job by job)."""
    p = group.pattern
    if p.think_ns and p.burst_ios:
        raise WorkloadFioError(
            f"workload group {group.name!r}: fio cannot pace think_us and burst_ios together "
            "(one thinktime a job): give the think time to another group"
        )
    if p.think_ns and p.think_ns < 1000:
        raise WorkloadFioError(
            f"workload group {group.name!r}: think_us = {p.think_ns / 1000:g}: fio's thinktime "
            "is in whole µs (expected 0 or at least 1)"
        )


def _global(
    workload: Workload,
    filename: Path | str,
    ioengine: str,
    hipri: bool,
    runtime_ms: int,
    size: int | None,
    seed: int | None,
    log_dir: Path | None,
) -> list[str]:
    lines = [
        f"; dpas workload {workload.name}: one reporting group a job group (new_group)",
        "; fio's --readonly is on the command line when no group writes (a job file cannot set it)",
        "[global]",
        f"filename={str(filename).replace(':', chr(92) + ':')}",  # fio splits names at ':'
        "direct=1",
        f"ioengine={ioengine}",
        "iodepth=1",
        "time_based",
        f"runtime={runtime_ms}ms",  # fio reads "1.5s" as 1 s
        "randrepeat=0",
        "norandommap",
        "group_reporting",
    ]
    if hipri:
        lines.append("hipri=1")
    if size is not None:
        lines.append(f"size={size}")
    if seed is not None:
        lines.append(f"randseed={seed}")
    if log_dir is not None:
        lines.append(f"log_avg_msec={int(BIN_MS)}")
    return lines


def _section(group: Group, section: Section, first: bool, spin_think: bool) -> list[str]:
    """One section's options; ``first``: the group's first, which starts its reporting group."""
    p = group.pattern
    lines = [
        f"name={group.name}",
        *(["new_group"] if first else []),
        f"numjobs={section.jobs}",
        f"rw={'randread' if group.rw is Op.READ else 'randwrite'}",
        f"bs={group.bs}",
        f"cpus_allowed={section.cpus}",
        f"cpus_allowed_policy={section.policy}",
    ]
    if group.zipf_theta:
        lines.append(f"random_distribution=zipf:{group.zipf_theta:g}")
    if p.rate_iops:
        lines.append(f"rate_iops={p.rate_iops}")
    if p.think_ns:
        think = round(p.think_ns / 1000)
        lines.append(f"thinktime={think}")
        if spin_think:
            lines.append(f"thinktime_spin={think}")
        lines.append("thinktime_blocks=1")
    if p.burst_ios:
        lines += [f"thinktime={round(p.period_ns / 1000)}", f"thinktime_blocks={p.burst_ios}"]
    if section.start_ms:
        lines.append(f"startdelay={section.start_ms}ms")
    if section.length_ms is not None:
        lines.append(f"runtime={section.length_ms}ms")
    if section.log is not None:
        lines += [f"write_iops_log={section.log}", f"write_lat_log={section.log}"]
    return lines


def run_key(workload: Workload, mode: str, repeat: int) -> RunKey:
    """A workload run's key: its foreground's jobs, and its first foreground group's rw."""
    rw = next(g.rw for g in workload.groups if g.foreground)
    return RunKey.of(mode, workload.foreground_jobs, rw, repeat)


# -- fio's JSON: one reporting group a workload group -------------------------------------------
def group_results(job: JobPlan, text: str) -> list[GroupResult]:
    """fio's --output-format=json of ``job``'s run (anything before the JSON is skipped): one
    GroupResult a workload group, in the workload's order; a group with no window in the run
    measured nothing. FioError when fio failed or its output is not fio's."""
    reported = reported_jobs(text)
    ran = sorted({s.group for s in job.sections})
    if len(reported) != len(ran):
        raise FioError(
            f"fio reported {len(reported)} groups for a job file of {len(ran)} (group_reporting, "
            "new_group): its JSON is not this run's"
        )
    by_group = {index: (groupid, reported[groupid]) for groupid, index in enumerate(ran)}
    try:
        groups = [
            _group(job, i, *by_group.get(i, (-1, None))) for i in range(len(job.workload.groups))
        ]
    except (KeyError, TypeError, ValueError, OverflowError) as err:
        raise FioError(
            f"fio's JSON result is not what fio writes: {type(err).__name__} {err}"
        ) from None
    if not sum(g.ios for g in groups if g.role == "foreground"):
        raise FioError("fio completed no I/O of the foreground groups in the run")
    return groups


def _group(job: JobPlan, index: int, groupid: int, entry: dict[str, Any] | None) -> GroupResult:
    """One group's measures as fio reports its reporting group. A group whose jobs did not all
    run the whole run has fio's IOPS and CPU over its jobs' own time: they are taken over the
    run's instead (I/Os over the runtime; CPU time over jobs x runtime), as GroupResult's are."""
    group = job.workload.groups[index]
    role = group.role.value
    if entry is None:
        return GroupResult(group.name, role, group.jobs, 0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0)
    entry = _object(entry)
    if entry["jobname"] != group.name or int(entry["groupid"]) != groupid:
        raise ValueError(f"group {entry['jobname']!r} where {group.name!r} was expected")
    side = _object(entry["read" if group.rw is Op.READ else "write"])
    clat = _object(side.get("clat_ns", {}))
    ios = int(side["total_ios"])
    cpu = _number(entry["usr_cpu"]) + _number(entry["sys_cpu"])  # fio's usr + sys
    iops = _number(side["iops"])
    if not job.whole(index):
        iops = ios / job.runtime_s
        cpu *= _number(entry["job_runtime"]) / (group.jobs * job.runtime_s * 1000)
    return GroupResult(
        name=group.name,
        role=role,
        jobs=group.jobs,
        ios=ios,
        iops=iops,
        lat_mean_us=_number(_object(side["lat_ns"])["mean"]) / 1000 if ios else 0.0,
        lat_p50_us=_percentile(clat, "50.000000"),
        lat_p99_us=_percentile(clat, "99.000000"),
        lat_p999_us=_percentile(clat, "99.900000"),
        cpu_pct=cpu,
        ctx=int(_number(entry["ctx"])),
    )


# -- fio's logs: each group over time -------------------------------------------------------------
@dataclass(slots=True)
class _Bins:
    """One group's I/Os and latency weights a bin, as the logs are read, and each job's time
    after its last IOPS entry: (from, to, I/Os its last rate gives it), in run ms."""

    ios: np.ndarray
    lat_sum: np.ndarray = field(init=False)
    lat_weight: np.ndarray = field(init=False)
    tails: list[tuple[float, float, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.lat_sum = np.zeros_like(self.ios)
        self.lat_weight = np.zeros_like(self.ios)

    def counted(self, total: int) -> np.ndarray:
        """The bins holding ``total`` I/Os, fio's count: the I/Os the logs miss are those after
        each job's last rate sample (fio samples none as a job ends), put in the jobs' tails
        by what their last rates give them; what is left over scales every bin."""
        ios = self.ios.copy()
        missing = total - ios.sum()
        expected = sum(n for _, _, n in self.tails)
        if missing > 0 and expected > 0:
            for begin, end, n in self.tails:
                _spread(ios, begin, end, missing * n / expected)
        counted = ios.sum()
        return ios * (total / counted) if counted else ios


def _spread(into: np.ndarray, start: float, end: float, amount: float) -> None:
    """``amount`` over the bins of (start, end] ms, in proportion to each one's share of it
    (past the last bin: the last, as dpas.workload.measures.binned puts late I/Os)."""
    last = len(into) - 1
    if end <= start:
        into[min(max(int(end // BIN_MS), 0), last)] += amount
        return
    for b in range(max(int(start // BIN_MS), 0), int(math.ceil(end / BIN_MS))):
        share = min(end, (b + 1) * BIN_MS) - max(start, b * BIN_MS)
        if share > 0:
            into[min(b, last)] += amount * share / (end - start)


def read_log(path: Path) -> list[tuple[float, float]]:
    """(ms, value) of one fio log (Log File Formats: time, value, direction, bs, offset[,
    priority]); [] when fio wrote none. FioError when it is not fio's."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as err:
        raise FioError(f"fio's log {path} cannot be read: {err}") from None
    rows = []
    for line in text.splitlines():
        if not line.strip():
            continue
        cells = line.split(",")
        try:
            rows.append((_number(cells[0]), _number(cells[1])))
        except (IndexError, ValueError, OverflowError):
            raise FioError(f"fio's log {path} is not what fio writes: {line[:80]!r}") from None
    return sorted(rows)


def _job_ios(
    into: _Bins, iops: list[tuple[float, float]], start_ms: float, end_ms: float
) -> np.ndarray:
    """One job's I/Os a bin from its IOPS log, added to its group's (and returned). fio samples
    a job's rate about every 100 ms and writes nothing for a sample without I/O: an entry (t,
    rate) is the rate since the previous one when that was at most two windows before;
    otherwise over the last window alone (the samples between had no I/O). Times are the job's
    own, from ``start_ms`` in the run; it ran to ``end_ms``."""
    ios = np.zeros_like(into.ios)
    previous, rate = 0.0, 0.0
    for t, rate in iops:
        since = previous if t - previous <= 2 * BIN_MS else t - BIN_MS
        _spread(ios, start_ms + since, start_ms + t, rate * (t - since) / 1000)
        previous = t
    if start_ms + previous < end_ms:
        into.tails.append((start_ms + previous, end_ms, rate * (end_ms - start_ms - previous)))
    into.ios += ios
    return ios


def _job_latency(
    into: _Bins, lat: list[tuple[float, float]], ios: np.ndarray, start_ms: float
) -> None:
    """One job's mean latencies into its group's bins. fio writes a window's mean when an I/O
    completes after the window's end, so a job with gaps writes it late: each mean (t, ns) is
    of the I/Os since the previous one, and is given to the bins of that span in proportion to
    the job's I/Os in each (the bin of t when the IOPS log has none there)."""
    previous = 0.0
    for t, ns in lat:
        begin, end = start_ms + previous, start_ms + t
        weight = np.zeros_like(ios)
        _spread(weight, begin, end, 1.0)
        weight *= ios
        if not weight.sum():
            weight[min(int(end // BIN_MS), len(ios) - 1)] = 1.0
        into.lat_sum += weight * ns / 1000
        into.lat_weight += weight
        previous = t


def series(
    job: JobPlan, log_dir: Path, groups: list[GroupResult]
) -> dict[str, dict[str, list[float]]]:
    """Each group's IOPS and mean latency a 100 ms bin (as dpas.workload.measures.binned gives
    them), from the sections' per-job logs in ``log_dir``: IOPS from the IOPS log, summed over
    the group's jobs, to the I/Os fio counted (``groups``, see ``_Bins.counted``); latency the
    jobs' window means, weighted by their I/Os in the bin."""
    runtime_ms = job.runtime_s * 1000
    bins = max(int(math.ceil(runtime_ms / BIN_MS)), 1)
    found = {i: _Bins(np.zeros(bins)) for i in range(len(job.workload.groups))}
    for k, section in enumerate(job.sections):
        prefix = f"s{k}"
        into = found[section.group]
        start = section.start_ms
        end = runtime_ms if section.length_ms is None else start + section.length_ms
        for iops_log in sorted(log_dir.glob(f"{prefix}_iops.*.log")):
            number = iops_log.name.removeprefix(f"{prefix}_iops.").removesuffix(".log")
            ios = _job_ios(into, read_log(iops_log), start, end)
            lat = read_log(log_dir / f"{prefix}_lat.{number}.log")
            _job_latency(into, lat, ios, start)
    out = {}
    for index, group in enumerate(job.workload.groups):
        b = found[index]
        ios = b.counted(groups[index].ios)
        mean = np.divide(b.lat_sum, b.lat_weight, out=np.zeros(bins), where=b.lat_weight > 0)
        out[group.name] = {
            "iops": [round(float(n) * 1000 / BIN_MS, 3) for n in ios],
            "lat_us": [round(float(m), 3) for m in mean],
        }
    return out


# -- the record ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class WorkloadRun:
    """What one fio run of a workload measured: each group, and each group over time."""

    job: JobPlan
    groups: list[GroupResult]
    series: dict[str, dict[str, list[float]]] | None

    def measured(
        self, run: RunKey, online: int, timeline: list[tuple[float, int, str, str]] | None
    ) -> tuple[Measured, dict[str, Any]]:
        """The record's measures (its foreground's, dpas.workload.measures.workload_fields:
        one rule for every backend) and its workload fields (workload, groups,
        host_cpu_pct, mode_share, series)."""
        runtime_s = self.job.runtime_s
        fields = workload_fields(
            self.job.workload, self.groups, online, runtime_s, self.series, timeline
        )
        keys = {f for f in Measured.__dataclass_fields__} - set(RunKey.__dataclass_fields__)
        measures = {k: fields.pop(k) for k in keys - {"runtime_s"}}
        return Measured(**spread(run, RunKey), runtime_s=runtime_s, **measures), fields
