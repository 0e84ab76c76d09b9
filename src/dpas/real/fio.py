"""fio as a real process: the command line for a run, and its JSON output as metrics."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dpas.errors import DpasError
from dpas.policy import Op
from dpas.results import RunResult

if TYPE_CHECKING:
    from dpas.real.modes import ModePlan


class FioError(DpasError, RuntimeError):
    """fio did not produce a result; ``errno`` is fio's error code when it reported one."""

    def __init__(self, message: str, errno: int = 0) -> None:
        super().__init__(message)
        self.errno = errno


def cpu_list(text: str) -> list[int]:
    """A kernel CPU list ("0-3,6"), as fio's cpus_allowed and /proc/irq/N/*_affinity_list
    write them, in order; ValueError when it is not one."""
    listed: list[int] = []
    for part in text.split(","):
        found = re.fullmatch(r"([0-9]+)(?:-([0-9]+))?", part)
        low, high = (int(found[1]), int(found[2] or found[1])) if found else (0, -1)
        if high < low:
            raise ValueError(f"{part!r} is not a CPU or a range of CPUs")
        listed += range(low, high + 1)
    return listed


def pinned(cpus: str, jobs: int, online: int) -> tuple[int, ...]:
    """Each job's CPU, as FioJob's cpus_allowed_policy=split gives them: "0" all on CPU 0,
    "split" job i on CPU i mod online, a list (0-3,6) job i on its i-th CPU, in turn."""
    if cpus == "0":
        return (0,) * jobs
    if cpus == "split":
        return tuple(i % online for i in range(jobs))
    listed = cpu_list(cpus)
    return tuple(listed[i % len(listed)] for i in range(jobs))


@dataclass(frozen=True, slots=True)
class FioJob:
    """One fio run: bench.sh's job, numjobs threads at iodepth 1."""

    filename: Path
    rw: Op
    bs: int
    jobs: int
    runtime_s: float
    ioengine: str
    hipri: bool
    cpus: str  # "0", "split" or a cpus_allowed list
    size: int | None = None  # for a file: how many bytes of it to use

    def argv(self, fio: str, online_cpus: int) -> list[str]:
        args = [
            fio,
            "--output-format=json",
            "--name=dpas",
            f"--filename={self.filename}",
            f"--rw={'randread' if self.rw is Op.READ else 'randwrite'}",
            f"--bs={self.bs}",
            "--direct=1",
            f"--ioengine={self.ioengine}",
            "--iodepth=1",
            f"--numjobs={self.jobs}",
            "--group_reporting",
            "--time_based",
            f"--runtime={self.runtime_s:g}s",
            "--randrepeat=0",
            "--norandommap",
        ]
        if self.hipri:
            args.append("--hipri=1")
        if self.cpus == "0":
            args += ["--cpus_allowed=0", "--cpus_allowed_policy=shared"]
        elif self.cpus == "split":
            args += [f"--cpus_allowed=0-{online_cpus - 1}", "--cpus_allowed_policy=split"]
        else:
            args += [f"--cpus_allowed={self.cpus}", "--cpus_allowed_policy=split"]
        if self.size is not None:
            args.append(f"--size={self.size}")
        if self.rw is Op.READ:
            args.append("--readonly")  # fio's own guard: it refuses to write, lay out or trim
        return args


def failure(target: object, stderr: str, err: FioError | None, exit_code: int = 0) -> str:
    """The one line a failed fio run gives, wherever it ran (here or in the guest): fio's own
    last words (its last stderr line), else what the parser found."""
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    said = lines[-1].strip()[:300] if lines else str(err) if err is not None else "no message"
    return f"fio failed on {target}{f' (exit {exit_code})' if exit_code else ''}: {said}"


@dataclass(frozen=True, slots=True)
class FioResult:
    ios: int
    runtime_s: float
    iops: float
    lat_mean_us: float
    lat_p50_us: float
    lat_p99_us: float
    lat_p999_us: float
    cpu_pct: float  # fio's usr + sys for the group
    ctx: int


def _percentile(clat: dict[str, Any], key: str) -> float:
    table = _object(clat.get("percentile") or {})
    return _number(table.get(key, 0.0)) / 1000


def parse(text: str, rw: Op) -> FioResult:
    """fio's --output-format=json (anything it printed before the JSON is skipped)."""
    start = text.find("{")
    try:
        data = json.loads(text[start:]) if start >= 0 else None
    except (ValueError, RecursionError):  # ValueError: also an int beyond Python's digit limit
        data = None
    jobs = data.get("jobs") if isinstance(data, dict) else None
    if not isinstance(jobs, list) or not jobs or not isinstance(jobs[0], dict):
        first = text.strip().splitlines()[0][:200] if text.strip() else "no output"
        raise FioError(f"fio gave no JSON result: {first}")
    job = jobs[0]
    error = job.get("error")
    if error:
        code = error if isinstance(error, int) and not isinstance(error, bool) else 0
        raise FioError(f"fio job failed with error {str(error)[:40]}", code)
    try:
        return _result(job, "read" if rw is Op.READ else "write")
    except (KeyError, TypeError, ValueError, OverflowError) as err:
        raise FioError(
            f"fio's JSON result is not what fio writes: {type(err).__name__} {err}"
        ) from None


def _result(job: dict[str, Any], side_name: str) -> FioResult:
    side = _object(job[side_name])
    runtime_ms = side.get("runtime") or job["job_runtime"]
    clat = _object(side.get("clat_ns", {}))
    result = FioResult(
        ios=int(side["total_ios"]),
        runtime_s=_number(runtime_ms) / 1000,
        iops=_number(side["iops"]),
        lat_mean_us=_number(side["lat_ns"]["mean"]) / 1000,
        lat_p50_us=_percentile(clat, "50.000000"),
        lat_p99_us=_percentile(clat, "99.000000"),
        lat_p999_us=_percentile(clat, "99.900000"),
        cpu_pct=_number(job["usr_cpu"]) + _number(job["sys_cpu"]),
        ctx=int(_number(job["ctx"])),
    )
    if result.ios <= 0:
        raise FioError("fio completed no I/O in the run")
    return result


def _object(value: Any) -> dict[str, Any]:
    """A JSON object of fio's output (a TypeError for anything else, as indexing would be)."""
    if not isinstance(value, dict):
        raise TypeError(f"expected an object, found {type(value).__name__}")
    return value


def _number(value: Any) -> float:
    """A finite, non-negative number from fio's JSON (which holds nothing else)."""
    number = float(value)
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"{value!r} is not a measurement")
    return number


def record(
    plan: ModePlan, jobs: int, repeat: int, rw: Op, result: FioResult, d_init_ns: int, **where: Any
) -> RunResult:
    """The RunResult of one fio run, with what ran where (backend, kernel, device, ...)."""
    return RunResult(
        mode=plan.mode.value,
        jobs=jobs,
        rw="R" if rw is Op.READ else "W",
        repeat=repeat,
        ios=result.ios,
        runtime_s=result.runtime_s,
        iops=result.iops,
        lat_mean_us=result.lat_mean_us,
        lat_p50_us=result.lat_p50_us,
        lat_p99_us=result.lat_p99_us,
        lat_p999_us=result.lat_p999_us,
        cpu_pct=result.cpu_pct,
        ctx=result.ctx,
        breakdown=where.pop("breakdown", None),
        switch_stat=where.pop("switch_stat", None),
        timeline=where.pop("timeline", None),
        sleeps_taken=None,
        sleeps_skipped=None,
        max_qd=None,
        d_init_ns=d_init_ns,
        seed=None,
        events=None,
        knobs=dict(plan.knobs),
        engine=f"{plan.ioengine}{' hipri' if plan.hipri else ''}",
        **where,
    )
