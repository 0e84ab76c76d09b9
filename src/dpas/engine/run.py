"""One engine run: jobs doing synchronous depth-1 direct I/O, waiting as the mode says.

The Python API of the engine: ``run(EngineRun(...))`` returns an ``EngineResult`` with the
jobs' counts, the latency percentiles, each CPU's DPAS state and, when asked for, the
per-I/O log. The jobs run on native threads in the compiled loop (dpas.engine._engine);
this module opens the target, builds the loop's configuration and reads its answers.

A steady run's jobs are all alike (``EngineRun(target, mode, cpus=...)``); a workload's
(``EngineRun(...).with_workload(workload, online)``) each have their ``JobSpec``: the group's
op and size, its CPUs, its offsets and its pattern in time, which the loop follows by
dpas.workload.Pacer's rule.
"""

from __future__ import annotations

import errno
import math
import os
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from dpas.engine.iolog import as_log
from dpas.engine.latency import percentiles
from dpas.engine.native import native
from dpas.engine.rules import config_dict
from dpas.errors import DpasError
from dpas.limits import BS_SECTOR
from dpas.policy import ENGINE_ORDER, Method, Mode, Op, PolicyConfig, methods
from dpas.workload import Pattern, Workload
from dpas.workload.measures import BIN_MS

#: every mode the engine runs, in the order tables list them
MODES = tuple(m.value for m in ENGINE_ORDER)
#: the waits the kernel makes on its own (the engine only submits and waits in one call)
KERNEL_WAITS = tuple(m.value for m in methods.KERNEL_WAITS)


class EngineError(DpasError):
    """The engine could not run; the message says what the kernel or the target answered.

    ``jobs``: what each job had done when a run failed (empty when it never started).
    """

    jobs: list[JobResult] = []


class EngineRefused(EngineError):
    """The kernel cannot do what this mode needs (no polling on the target, no hybrid polling,
    io_uring off); the message says why in one line."""

    def __init__(self, message: str, errno_: int = 0) -> None:
        super().__init__(message)
        self.errno = errno_


@dataclass(frozen=True, slots=True)
class JobSpec:
    """One job of a workload: what its group gives it (the loop's per-job configuration)."""

    #: the group's index in the workload
    group: int
    rw: Op = Op.READ
    bs: int = 4096
    #: not pinned: the CPUs it may run on (it starts on its CPU of EngineRun.cpus); empty:
    #: pinned there
    allowed: tuple[int, ...] = ()
    #: zipf's theta over the region's blocks (0: uniform offsets)
    zipf_theta: float = 0.0
    pattern: Pattern = field(default_factory=Pattern)

    def native(self, region_bytes: int) -> dict[str, Any]:
        """The dict the compiled loop reads for this job."""
        return {
            "op": int(self.rw),
            "bs": self.bs,
            "region_blocks": region_bytes // self.bs,
            "theta": float(self.zipf_theta),
            "allowed": list(self.allowed),
            "pattern": asdict(self.pattern),
        }


@dataclass(frozen=True, slots=True)
class EngineRun:
    """What one run does: fio's randread/randwrite, iodepth=1, direct=1, numjobs=jobs; or a
    workload's groups (``with_workload``)."""

    target: Path
    mode: str
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    rw: Op = Op.READ
    bs: int = 4096
    #: one CPU per job: each job's thread is pinned there
    cpus: tuple[int, ...] = (0,)
    runtime_s: float = 1.0
    #: stop each job after this many I/Os (0: run for runtime_s)
    ios_per_job: int = 0
    #: the bytes the offsets fall in: [region_start, region_start + region_bytes)
    region_start: int = 0
    region_bytes: int = 0
    seed: int = 1
    #: keep a per-I/O log of up to this many I/Os per job (0: none)
    log_ios: int = 0
    #: a workload's jobs, one per CPU of ``cpus`` (empty: steady, every job ``rw`` and ``bs``)
    specs: tuple[JobSpec, ...] = ()
    #: the workload the specs come from (steady: none)
    workload: Workload = field(default_factory=Workload)
    #: count each job's I/Os and latencies by completion time, in bins this wide (0: not)
    bin_ns: int = 0
    #: count each job's written offsets by their remainder modulo this many bytes, in 512-byte
    #: units (JobResult.residues; dpas.bench.waf: the largest IU asked; 0: not counted)
    waf_span: int = 0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"engine mode {self.mode!r}: expected one of {', '.join(MODES)}")
        span = self.waf_span
        if span and (span < BS_SECTOR or span & (span - 1) or self.region_start % BS_SECTOR):
            raise ValueError(
                f"engine run: waf_span {span}: expected a power of two from {BS_SECTOR} bytes, "
                "and a region that starts on a sector"
            )
        if self.specs and len(self.specs) != len(self.cpus):
            raise ValueError(f"engine run: {len(self.specs)} job specs for {self.jobs} CPUs")

    def with_workload(self, workload: Workload, online: int) -> EngineRun:
        """This run, doing ``workload``: each group's jobs on the CPUs Group.cpus_of gives (an
        unpinned job starts there, free on Group.allowed), their I/Os counted in
        dpas.workload's series bins; ``rw`` and ``bs`` become the first foreground group's,
        the record's key. ``online``: the CPUs "split" spreads the jobs over."""
        if workload.steady:
            raise ValueError("engine run: a steady workload is the plain run")
        cpus: list[int] = []
        specs: list[JobSpec] = []
        for index, group in enumerate(workload.groups):
            allowed = () if group.pinned else tuple(group.allowed(online))
            for cpu in group.cpus_of(online):
                cpus.append(cpu)
                specs.append(
                    JobSpec(index, group.rw, group.bs, allowed, group.zipf_theta, group.pattern)
                )
        first = next(g for g in workload.groups if g.foreground)
        return replace(
            self,
            rw=first.rw,
            bs=first.bs,
            cpus=tuple(cpus),
            specs=tuple(specs),
            workload=workload,
            bin_ns=round(BIN_MS * 1e6),
        )

    @property
    def jobs(self) -> int:
        return len(self.cpus)

    @property
    def ops(self) -> tuple[Op, ...]:
        """Each job's op."""
        return tuple(s.rw for s in self.specs) if self.specs else (self.rw,) * self.jobs

    @property
    def sizes(self) -> tuple[int, ...]:
        """Each job's block size."""
        return tuple(s.bs for s in self.specs) if self.specs else (self.bs,) * self.jobs

    @property
    def bins(self) -> int:
        """How many bins a job's completions fall in: the run's length in bins, the last
        also taking what completes after the end (dpas.workload.measures.binned's rule)."""
        if not self.bin_ns:
            return 0
        return max(math.ceil(round(self.runtime_s * 1e9) / self.bin_ns), 1)

    def policy_config(self) -> PolicyConfig:
        """The policy the compiled loop runs: the mode's method (HYB: the kernel decides)."""
        method = Method.CP if self.mode == "HYB" else Method(self.mode)
        return PolicyConfig(
            method=method,
            pas=self.policy.pas,
            switch=self.policy.switch,
            order=self.policy.order,
            io_poll_delay=self.policy.io_poll_delay,
            lhp_window_ns=self.policy.lhp_window_ns,
            ehp=self.policy.ehp,
            bucketing=self.policy.bucketing,
        )


@dataclass(frozen=True, slots=True)
class FakeDevice:
    """A device of scripted times in place of the target: the hot loop makes its every call
    (policy events, locks, log, histogram) on a virtual clock, so tests run it, and catch a
    wrong order or an inverted verdict, without a polled drive.

    I/O k of job i completes ``device_ns[(k + 7i) % n]`` after its submission; sleep k of job i
    ends ``late_ns[(k + 5i) % n]`` after the time asked. ``real_sleep`` also sleeps for real,
    so that signals reach the sleep.
    """

    device_ns: tuple[int, ...] = (10_000,)
    late_ns: tuple[int, ...] = (0,)
    real_sleep: bool = False

    def __post_init__(self) -> None:
        if any(v < 0 for v in (*self.device_ns, *self.late_ns)):
            raise ValueError("fake device: times must be >= 0 ns")

    def native(self) -> dict[str, Any]:
        """The dict the compiled loop reads: the scripts as little-endian int64 bytes."""
        return {
            "device_ns": np.asarray(self.device_ns, dtype="<i8").tobytes(),
            "late_ns": np.asarray(self.late_ns, dtype="<i8").tobytes(),
            "real_sleep": int(self.real_sleep),
        }


@dataclass(frozen=True, slots=True)
class Seams:
    """What tests may change in the hot loop; the CLI never does."""

    #: the job threads block the signals a handler catches (off: they get them, and retry)
    block_signals: bool = True
    #: each job's I/O number N (1-based) fails right after it went to the device (0: none)
    fail_at: int = 0
    #: after the buffer is released, fill it, wait this long, count the bytes that changed
    canary_ns: int = 0


@dataclass(frozen=True, slots=True)
class JobResult:
    cpu: int
    ios: int
    sleeps: int
    overslept: int
    underslept: int
    lat_sum_ns: int
    cpu_ns: int
    ctx_voluntary: int
    ctx_involuntary: int
    hist: np.ndarray
    log: np.ndarray
    elapsed_ns: int
    #: per bin of EngineRun.bin_ns by completion time: (I/Os, latency sum ns); (0, 2): none
    bins: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), dtype=np.int64))
    #: bytes of the released buffer written afterwards (Seams.canary_ns; 0 is right)
    canary_changed: int = 0
    #: an I/O the kernel would not let the job reap: its ring and buffer were kept
    leaked: bool = False
    #: EngineRun.waf_span: the job's writes by their offset's remainder modulo the span, one
    #: count per 512-byte unit (empty: not counted)
    residues: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))


@dataclass(frozen=True, slots=True)
class CpuState:
    """One CPU's DPAS state after the run, as switch_stat shows it, and its transitions."""

    cpu: int
    mode: Mode
    qd: int
    totals: dict[str, int]
    transitions: list[tuple[int, int, int, int, int, int, int]]
    skipped: int


@dataclass(frozen=True, slots=True)
class EngineResult:
    run: EngineRun
    jobs: list[JobResult]
    cpus: list[CpuState]
    #: from the start of the I/Os to the last job's last completion
    runtime_ns: int

    @property
    def ios(self) -> int:
        return sum(j.ios for j in self.jobs)

    @property
    def iops(self) -> float:
        return self.ios / (self.runtime_ns / 1e9) if self.runtime_ns else 0.0

    @property
    def lat_mean_us(self) -> float:
        return sum(j.lat_sum_ns for j in self.jobs) / self.ios / 1000 if self.ios else 0.0

    def lat_percentiles_us(self, wanted: tuple[float, ...] = (50, 99, 99.9)) -> list[float]:
        hist = np.sum([j.hist for j in self.jobs], axis=0)
        return [v / 1000 for v in percentiles(hist, wanted)]

    @property
    def cpu_pct(self) -> float:
        """As fio reports it: the jobs' own CPU time over jobs x runtime."""
        if not self.runtime_ns:
            return 0.0
        return 100 * sum(j.cpu_ns for j in self.jobs) / (len(self.jobs) * self.runtime_ns)

    def group_jobs(self, group: int) -> list[JobResult]:
        """The jobs of a workload's group ``group`` (its index)."""
        return [j for j, s in zip(self.jobs, self.run.specs, strict=True) if s.group == group]

    @property
    def logged_all(self) -> bool:
        """Every I/O of the run is in the log (a replay needs all of them)."""
        return all(len(j.log) == j.ios for j in self.jobs)


def run(
    config: EngineRun,
    should_stop: Callable[[], bool] = lambda: False,
    marks: Callable[[str], None] | None = None,
    device: FakeDevice | None = None,
    seams: Seams = Seams(),
) -> EngineResult:
    """One run on native threads; ``should_stop`` is asked every 20 ms (a signal arrived).

    ``marks("start")`` is called just before the jobs' first I/O and ``marks("stop")`` just
    after the last one ended: what is counted between them (interrupts) is the measurement's.
    ``device`` runs the loop on a FakeDevice instead of the target.
    """
    engine = native()
    if config.region_bytes < max(config.sizes):
        raise EngineError(
            f"{config.target}: the region the I/Os fall in is {config.region_bytes} bytes, "
            f"smaller than one block ({max(config.sizes)})"
        )
    fd = -1 if device is not None else _open(config)
    try:
        answer = engine.run(
            {
                "fd": fd,
                "op": int(config.rw),
                "wait_kind": 1 if config.mode == "HYB" else 0,
                "jobs": config.jobs,
                "bs": config.bs,
                "region_start": config.region_start,
                "region_blocks": config.region_bytes // config.bs,
                "runtime_ns": max(round(config.runtime_s * 1e9), 1),
                "ios_per_job": config.ios_per_job,
                "log_cap": config.log_ios,
                "seed": config.seed,
                "cpus": list(config.cpus),
                "block_signals": int(seams.block_signals),
                "fail_at": seams.fail_at,
                "canary_ns": seams.canary_ns,
                "fake": device.native() if device is not None else None,
                "specs": [s.native(config.region_bytes) for s in config.specs] or None,
                "bins": config.bins,
                "bin_ns": config.bin_ns,
                "waf_span": config.waf_span,
            },
            config_dict(config.policy_config()),
            should_stop,
            marks,
        )
    finally:
        if fd >= 0:
            os.close(fd)
    jobs = [_job(j) for j in answer["jobs"]]
    failed = next((j for j in answer["jobs"] if j["error"]), None)
    if failed is not None:
        error = _failure(config, failed["error"], failed["failed"])
        error.jobs = jobs
        raise error
    cpus = [_cpu(cpu, state) for cpu, state in sorted(answer["cpus"].items()) if state]
    return EngineResult(config, jobs, cpus, max((j.elapsed_ns for j in jobs), default=0))


def _open(config: EngineRun) -> int:
    """The target, opened for what the jobs do: read, write, or both (a workload's groups)."""
    ops = set(config.ops)
    access = os.O_RDWR if len(ops) > 1 else os.O_RDONLY if Op.READ in ops else os.O_WRONLY
    flags = os.O_DIRECT | access
    try:
        return os.open(config.target, flags)
    except OSError as err:
        raise EngineError(_open_failure(config.target, err)) from None


def _job(raw: dict[str, Any]) -> JobResult:
    hist = np.frombuffer(raw["hist"], dtype=np.uint64)
    return JobResult(
        cpu=int(raw["cpu"]),
        ios=int(raw["ios"]),
        sleeps=int(raw["sleeps"]),
        overslept=int(raw["overslept"]),
        underslept=int(raw["underslept"]),
        lat_sum_ns=int(raw["lat_sum_ns"]),
        cpu_ns=int(raw["cpu_ns"]),
        ctx_voluntary=int(raw["ctx_voluntary"]),
        ctx_involuntary=int(raw["ctx_involuntary"]),
        hist=hist,
        log=as_log(raw["log"]),
        elapsed_ns=int(raw["elapsed_ns"]),
        bins=np.frombuffer(raw["bins"], dtype=np.int64).reshape(-1, 2),
        canary_changed=int(raw["canary_changed"]),
        leaked=bool(raw["leaked"]),
        residues=np.frombuffer(raw["residues"], dtype=np.int64),
    )


def _cpu(cpu: int, state: dict[str, Any]) -> CpuState:
    cp, pas, ol, int_ = state["totals"]
    return CpuState(
        cpu=cpu,
        mode=Mode(state["mode"]),
        qd=int(state["qd"]),
        totals={"cp": cp, "pas": pas, "ol": ol, "int": int_},
        transitions=list(state["transitions"]),
        skipped=int(state["skipped"]),
    )


def _open_failure(target: Path, err: OSError) -> str:
    if err.errno == errno.EINVAL:
        return (
            f"{target}: the file system refuses O_DIRECT (EINVAL); use a block device or ext4/xfs"
        )
    return f"{target}: cannot open it for direct I/O: {err.strerror or err}"


def io_uring_disabled() -> str | None:
    """kernel.io_uring_disabled, where the kernel has it (6.6+): 0 on, 1 root only, 2 off."""
    try:
        return Path("/proc/sys/kernel/io_uring_disabled").read_text().strip()
    except OSError:
        return None


def _failure(config: EngineRun, code: int, what: str) -> EngineError:
    """The first failure of a job as a one-line refusal or error, with the kernel's answer."""
    name = errno.errorcode.get(code, str(code))
    release = os.uname().release
    if what.startswith("setting up") and code == errno.ENOSYS:
        return EngineRefused(f"{config.mode}: this kernel ({release}) has no io_uring (ENOSYS)")
    if what.startswith("setting up") and code == errno.EPERM:
        setting = io_uring_disabled()
        return EngineRefused(
            f"{config.mode}: io_uring is disabled here (EPERM; kernel.io_uring_disabled = "
            f"{setting if setting is not None else '?'}): sysctl kernel.io_uring_disabled=0"
        )
    if config.mode == "HYB" and what.startswith("setting up") and code == errno.EINVAL:
        return EngineRefused(
            f"HYB: the kernel ({release}) refused IORING_SETUP_HYBRID_IOPOLL (EINVAL): "
            "io_uring hybrid polling needs Linux 6.13 or newer",
            code,
        )
    if what == "an I/O" and code == errno.EOPNOTSUPP and config.mode != "INT":
        return EngineRefused(
            f"{config.mode}: the kernel cannot poll {config.target} (EOPNOTSUPP): polled I/O "
            "needs a block device with poll queues (NVMe: nvme.poll_queues=N)",
            code,
        )
    if what == "an I/O" and code == errno.EINVAL and _release_below(release, (5, 6)):
        return EngineRefused(
            f"{config.mode}: this kernel ({release}) has no io_uring IORING_OP_READ/WRITE "
            "(EINVAL): the engine needs Linux 5.6 or newer",
            code,
        )
    return EngineError(
        f"{config.mode} on {config.target}: {what} failed: {name} ({os.strerror(code)})"
    )


def _release_below(release: str, version: tuple[int, int]) -> bool:
    """Whether a kernel release ("5.4.0-150-generic") is older than ``version``."""
    found = re.match(r"(\d+)\.(\d+)", release)
    return found is not None and (int(found[1]), int(found[2])) < version
