"""An engine run as a results.json record: the fields fio reports, and what only the engine
sees (its sleeps, the first poll's verdicts, each CPU's DPAS state)."""

from __future__ import annotations

from typing import Any

from dpas.engine.run import EngineResult
from dpas.policy import Mode, SwitchParams
from dpas.policy.switch_stat import SwitchStatLine
from dpas.results import BREAKDOWN, RunKey, RunResult, spread


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
