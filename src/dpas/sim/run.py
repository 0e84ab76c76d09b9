"""One simulated run: a mode, a number of jobs, a profile -> one result record."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from dpas.bench.waf import Tally as WafTally
from dpas.policy import (
    LAB,
    Bucketing,
    DpasPolicy,
    Method,
    Op,
    Order,
    PasParams,
    Policy,
    PolicyConfig,
    Rules,
    SwitchParams,
    make_policy,
)
from dpas.policy.switch_stat import SwitchStatLine
from dpas.results import BREAKDOWN, RunKey, RunResult, spread
from dpas.sim.device import Device, Draws
from dpas.sim.engine import Engine
from dpas.sim.host import Host, Tally
from dpas.sim.profile import Profile
from dpas.workload import Pacer, Workload
from dpas.workload.measures import binned, group_result, workload_fields


@dataclass(frozen=True, slots=True)
class RunConfig:
    """What one run simulates (the fio job file of bench.sh, and the kernel knobs)."""

    profile: Profile
    method: Method
    jobs: int = 1
    rw: Op = Op.READ
    bs: int = 4096
    #: "0": every job on CPU 0 (the lab); "split": job i on CPU i mod cpus (the paper)
    cpus: str = "0"
    runtime_s: float = 1.0
    #: stop after this many I/Os instead of after runtime_s
    ios: int | None = None
    seed: int = 1
    repeat: int = 1
    pas: PasParams = field(default_factory=PasParams)
    switch: SwitchParams = field(default_factory=SwitchParams)
    order: Order = Order.KERNEL
    rules: Rules = LAB
    #: job groups with patterns in time; steady (no groups): ``jobs`` identical jobs
    workload: Workload = field(default_factory=Workload)
    #: a steady write run: the IUs its writes are counted against (``waf_tally``); () none
    ius: tuple[int, ...] = ()

    def policy_config(self) -> PolicyConfig:
        pit = self.profile.pitfalls
        return PolicyConfig(
            method=self.method,
            pas=self.pas,
            switch=self.switch,
            order=self.order,
            io_poll_delay=max(pit.io_poll_delay, 0),
            bucketing=Bucketing(pit.stats_sectors_bug, pit.queue_stats),
            rules=self.rules,
        )

    def cpu_of(self, job: int) -> int:
        return 0 if self.cpus == "0" else job % self.profile.host.cpus


def simulate(config: RunConfig) -> RunResult:
    """Run one configuration; the same config and seed give the same record, bit for bit."""
    rng = np.random.default_rng(config.seed)
    engine = Engine()
    policy = make_policy(config.policy_config())
    device = Device(engine, config.profile.device, rng)
    timer = config.profile.timer
    arm = Draws(lambda n: rng.normal(timer.arm_mean_ns, timer.arm_sd_ns, n))
    jitter = Draws(lambda n: rng.exponential(timer.jitter_ns, n)) if timer.jitter_ns else None
    end_ns = round(config.runtime_s * 1e9) if config.ios is None else 2**62
    tally = Tally(policy)
    host = Host(engine, config.profile, policy, device, arm, jitter, end_ns, tally, config.rules)
    if config.workload.steady:
        for job in range(config.jobs):
            host.add_job(config.cpu_of(job), config.rw, config.bs)
    else:
        _add_groups(host, config.workload, end_ns)
    if config.ios is not None:
        host.stop_after = config.ios
    host.start()
    engine.run(end_ns)
    result = _result(config, host, policy, tally, engine)
    host.close()
    return result


def _add_groups(host: Host, workload: Workload, end_ns: int) -> None:
    """Each group's jobs, on the CPUs its placement gives (an unpinned job stays where it
    starts: the simulator does not migrate), each with its own pacer."""
    online = len(host.cpus)
    for index, group in enumerate(workload.groups):
        for cpu in group.cpus_of(online):
            job = host.add_job(cpu, group.rw, group.bs)
            job.group = index
            p = group.pattern
            job.pacer = Pacer(p, end_ns) if p.paced else None
            job.think_ns = p.think_ns
            job.done_at = []


def _workload_measures(config: RunConfig, host: Host, runtime_s: float) -> dict[str, Any]:
    """A workload run's measures: each group's, from its jobs, then workload_fields."""
    groups, series = [], {}
    for index, group in enumerate(config.workload.groups):
        jobs = [j for j in host.jobs if j.group == index]
        lat = np.concatenate([np.asarray(j.latencies, dtype=float) for j in jobs]) / 1000
        done = np.concatenate([np.asarray(j.done_at, dtype=float) for j in jobs]) / 1e6
        cpu_ns = sum(min(j.cpu_ns, round(runtime_s * 1e9)) for j in jobs)
        groups.append(
            group_result(
                group.name,
                group.role.value,
                group.jobs,
                lat,
                runtime_s,
                cpu_ns,
                sum(j.ctx for j in jobs),
            )  # fmt: skip
        )
        series[group.name] = binned(done, lat, runtime_s * 1000)
    return {"groups": groups, "series": series}


def _result(
    config: RunConfig, host: Host, policy: Policy, tally: Tally, engine: Engine
) -> RunResult:
    lat = np.concatenate([np.asarray(j.latencies, dtype=float) for j in host.jobs]) / 1000
    runtime_ns = host.end_ns if config.ios is None else host.last_completion_ns
    runtime_s = runtime_ns / 1e9
    ios = len(lat)
    p50, p99, p999 = np.percentile(lat, [50, 99, 99.9]) if ios else (0.0, 0.0, 0.0)
    cpu_ns = sum(min(j.cpu_ns, runtime_ns) for j in host.jobs)
    breakdown = switch_stat = timeline = None
    if isinstance(policy, DpasPolicy):
        lines = [SwitchStatLine.of(c, policy.switch_state(c), policy.switch) for c in policy.cpus]
        switch_stat = [
            {**asdict(line), "mode": line.mode.name, "text": line.render()} for line in lines
        ]
        breakdown = {k: sum(line.totals[k] for line in lines) for k in BREAKDOWN}
        timeline = [(t.now_ns / 1e6, t.cpu, t.old.name, t.new.name) for t in policy.transitions]
    measured: dict[str, Any] = {
        "ios": ios,
        "iops": ios / runtime_s if runtime_s else 0.0,
        "lat_mean_us": float(lat.mean()) if ios else 0.0,
        "lat_p50_us": float(p50),
        "lat_p99_us": float(p99),
        "lat_p999_us": float(p999),
        "cpu_pct": 100 * cpu_ns / (config.jobs * runtime_ns) if runtime_ns else 0.0,
        "ctx": sum(j.ctx for j in host.jobs),
    }
    jobs, rw = config.jobs, config.rw
    workload = config.workload
    if not workload.steady:
        jobs, rw = workload.foreground_jobs, next(g.rw for g in workload.groups if g.foreground)
        made = _workload_measures(config, host, runtime_s)
        measured |= workload_fields(
            workload, made["groups"], len(host.cpus), runtime_s, made["series"], timeline
        )
    return RunResult(
        **spread(RunKey.of(config.method.value, jobs, rw, config.repeat), RunKey),
        runtime_s=runtime_s,
        **measured,
        breakdown=breakdown,
        switch_stat=switch_stat,
        timeline=timeline,
        sleeps_taken=tally.sleeps_taken,
        sleeps_skipped=tally.sleeps_skipped,
        max_qd=max(tally.max_qd.values(), default=0) if isinstance(policy, DpasPolicy) else None,
        d_init_ns=config.pas.d_init,
        seed=config.seed,
        events=engine.events,
        waf=waf_tally(config, [len(j.latencies) for j in host.jobs]),
    )


#: the bytes the simulated writes fall in: what a run of fio uses of a file by default
#: (dpas bench --device FILE --size); the model's device times do not depend on where
REGION_BYTES = 256 << 20
#: offsets drawn at once: a run of millions of writes is counted in bounded memory
CHUNK = 1 << 20


def waf_tally(config: RunConfig, ios: list[int]) -> list[dict[str, int]] | None:
    """A steady write run's WAF_IU for ``config.ius`` (dpas.bench.waf), ``ios[j]`` the I/Os job
    j completed. The offsets are fio's randwrite's by default: uniform over the region's
    blocks (blockalign = bs), each job from its own stream of the run's seed, job j's k-th
    I/O at its stream's k-th draw. The model's timing does not depend on an I/O's offset, so
    they are drawn after the run, outside its hot loop; the same seed gives the same offsets."""
    if not config.ius or config.rw is not Op.WRITE or not config.workload.steady:
        return None
    tally = WafTally(config.ius)
    bs = config.bs
    blocks = max(REGION_BYTES // bs, 1)
    streams = np.random.SeedSequence(config.seed).spawn(len(ios))
    for n, stream in zip(ios, streams, strict=True):
        rng = np.random.default_rng(stream)
        for done in range(0, n, CHUNK):
            count = min(CHUNK, n - done)
            offsets = rng.integers(0, blocks, count, dtype=np.int64) * bs
            tally.add_writes(offsets, np.full(count, bs, dtype=np.int64))
    return tally.record()
