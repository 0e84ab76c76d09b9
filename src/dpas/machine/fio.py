"""What fio says and does that dpas reads: its JSON output as a run's measurements, and
the CPUs its jobs run on."""

from __future__ import annotations

import json
import math
import re
from typing import Any

from dpas.errors import DpasError
from dpas.policy import Op
from dpas.results import Measured, RunKey, spread


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


def _percentile(clat: dict[str, Any], key: str) -> float:
    table = _object(clat.get("percentile") or {})
    return _number(table.get(key, 0.0)) / 1000


def reported_jobs(text: str) -> list[dict[str, Any]]:
    """The ``jobs`` fio's --output-format=json reports (anything it printed before the JSON is
    skipped); FioError when there are none or one of them failed (fio's errno)."""
    start = text.find("{")
    try:
        data = json.loads(text[start:]) if start >= 0 else None
    except (ValueError, RecursionError):  # ValueError: also an int beyond Python's digit limit
        data = None
    jobs = data.get("jobs") if isinstance(data, dict) else None
    if not isinstance(jobs, list) or not jobs or not isinstance(jobs[0], dict):
        first = text.strip().splitlines()[0][:200] if text.strip() else "no output"
        raise FioError(f"fio gave no JSON result: {first}")
    for job in jobs:
        error = job.get("error") if isinstance(job, dict) else None
        if error:
            code = error if isinstance(error, int) and not isinstance(error, bool) else 0
            raise FioError(f"fio job failed with error {str(error)[:40]}", code)
    return jobs


def parse(text: str, run: RunKey) -> Measured:
    """fio's --output-format=json for ``run`` (anything it printed before the JSON is
    skipped)."""
    job = reported_jobs(text)[0]
    try:
        return _result(job, run)
    except (KeyError, TypeError, ValueError, OverflowError) as err:
        raise FioError(
            f"fio's JSON result is not what fio writes: {type(err).__name__} {err}"
        ) from None


def _result(job: dict[str, Any], run: RunKey) -> Measured:
    side = _object(job["read" if run.op is Op.READ else "write"])
    runtime_ms = side.get("runtime") or job["job_runtime"]
    clat = _object(side.get("clat_ns", {}))
    result = Measured(
        **spread(run, RunKey),
        ios=int(side["total_ios"]),
        runtime_s=_number(runtime_ms) / 1000,
        iops=_number(side["iops"]),
        lat_mean_us=_number(side["lat_ns"]["mean"]) / 1000,
        lat_p50_us=_percentile(clat, "50.000000"),
        lat_p99_us=_percentile(clat, "99.000000"),
        lat_p999_us=_percentile(clat, "99.900000"),
        cpu_pct=_number(job["usr_cpu"]) + _number(job["sys_cpu"]),  # fio's usr + sys
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
