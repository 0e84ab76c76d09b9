"""An engine run as a results.json record: the fields fio reports, and what only the engine
sees (its sleeps, the first poll's verdicts, each CPU's DPAS state); a workload run's also
each group's measures and series (dpas.workload.measures.workload_fields, every backend's
rule)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from dpas.engine.latency import percentiles
from dpas.engine.run import EngineResult, JobResult
from dpas.policy import Mode, SwitchParams
from dpas.policy.switch_stat import SwitchStatLine
from dpas.results import BREAKDOWN, GroupResult, RunKey, RunResult, spread
from dpas.workload.measures import BIN_MS, summed, workload_fields


def engine_record(
    result: EngineResult, repeat: int, switch: SwitchParams, **where: Any
) -> RunResult:
    """The RunResult of one engine run; ``where``: backend, kernel, device, note, ..."""
    run = result.run
    p50, p99, p999 = result.lat_percentiles_us()
    dpas = run.mode == "DPAS"
    lines = [
        SwitchStatLine(
            c.cpu,
            c.mode,
            c.qd,
            switch.param1,
            switch.param2,
            switch.param3,
            c.totals["cp"],
            c.totals["pas"],
            c.totals["ol"],
            c.totals["int"],
        )
        for c in result.cpus
    ]
    transitions = sorted(t for c in result.cpus for t in c.transitions)
    jobs = result.jobs
    voluntary = sum(j.ctx_voluntary for j in jobs)
    involuntary = sum(j.ctx_involuntary for j in jobs)
    return RunResult(
        **spread(RunKey.of(run.mode, run.jobs, run.rw, repeat), RunKey),
        ios=result.ios,
        runtime_s=result.runtime_ns / 1e9,
        iops=result.iops,
        lat_mean_us=result.lat_mean_us,
        lat_p50_us=p50,
        lat_p99_us=p99,
        lat_p999_us=p999,
        cpu_pct=result.cpu_pct,
        ctx=voluntary + involuntary,
        breakdown={k: sum(line.totals[k] for line in lines) for k in BREAKDOWN} if dpas else None,
        switch_stat=[{"cpu": line.cpu, "text": line.render()} for line in lines] if dpas else None,
        timeline=[(t[0] / 1e6, t[1], Mode(t[2]).name, Mode(t[3]).name) for t in transitions]
        if dpas
        else None,
        sleeps_taken=sum(j.sleeps for j in jobs),
        d_init_ns=run.policy.pas.d_init,
        seed=run.seed,
        ctx_voluntary=voluntary,
        ctx_involuntary=involuntary,
        overslept=sum(j.overslept for j in jobs),
        underslept=sum(j.underslept for j in jobs),
        **where,
    )


def workload_record(
    result: EngineResult, repeat: int, switch: SwitchParams, online: int, **where: Any
) -> RunResult:
    """The RunResult of a workload run: engine_record's, keyed by the workload's foreground
    (its jobs, its first group's rw) and measured by workload_fields from each group's jobs;
    ``online``: the CPUs the workload's "split" and host_cpu_pct count."""
    run = result.run
    workload = run.workload
    record = engine_record(result, repeat, switch, **where)
    runtime_s = workload_runtime_s(result)
    groups = [
        group_measures(result.group_jobs(i), g.name, g.role.value, g.jobs, runtime_s)
        for i, g in enumerate(workload.groups)
    ]
    series = {g.name: series_of(result.group_jobs(i)) for i, g in enumerate(workload.groups)}
    return replace(  # run.rw is already the first foreground group's (with_workload)
        record,
        jobs=workload.foreground_jobs,
        runtime_s=runtime_s,
        **workload_fields(workload, groups, online, runtime_s, series, record.timeline),
    )


def workload_runtime_s(result: EngineResult) -> float:
    """A timed workload run lasts its runtime even where its last I/O ended earlier (paced
    jobs idle to the end, as fio's time_based jobs and the simulator count them); a run by
    I/O count lasts until its last completion."""
    run = result.run
    if run.ios_per_job:
        return result.runtime_ns / 1e9
    return max(result.runtime_ns, round(run.runtime_s * 1e9)) / 1e9


def group_measures(
    jobs: list[JobResult], name: str, role: str, count: int, runtime_s: float
) -> GroupResult:
    """A group's measures as dpas.workload.measures.group_result gives them, except that the
    loop keeps no per-I/O latencies (a long run's would not fit): the mean is exact (the jobs'
    latency sums), the percentiles are those of the jobs' merged histograms, as fio merges a
    reporting group's (within about 1.6%)."""
    ios = sum(j.ios for j in jobs)
    hist = np.sum([j.hist for j in jobs], axis=0) if jobs else np.zeros(1, dtype=np.uint64)
    p50, p99, p999 = (v / 1000 for v in percentiles(hist, (50, 99, 99.9)))
    mean = sum(j.lat_sum_ns for j in jobs) / ios / 1000 if ios else 0.0
    ctx = sum(j.ctx_voluntary + j.ctx_involuntary for j in jobs)
    cpu_ns = sum(j.cpu_ns for j in jobs)
    return summed(name, role, count, ios, runtime_s, cpu_ns, ctx, mean, (p50, p99, p999))


def series_of(jobs: list[JobResult]) -> dict[str, list[float]]:
    """A group's series from its jobs' completion-time bins, in measures.binned's shape."""
    bins = np.sum([j.bins for j in jobs], axis=0) if jobs else np.zeros((1, 2), dtype=np.int64)
    count, total = bins[:, 0].astype(float), bins[:, 1].astype(float) / 1000
    mean = np.divide(total, count, out=np.zeros(len(count)), where=count > 0)
    return {
        "iops": [float(c) * 1000 / BIN_MS for c in count],
        "lat_us": [round(float(m), 3) for m in mean],
    }
