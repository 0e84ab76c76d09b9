"""The engine as the Runner's per-run executor, beside fio (dpas.real.fio_runs): the same
site, lock, data guard, knobs and records; the I/Os completed by dpas's own loop
(dpas.engine). A sweep's workload (dpas.workload) runs as its groups' jobs, and its record is
made by dpas.workload.measures.workload_fields, as on every backend."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np

from dpas.bench.backend import Sweep
from dpas.bench.waf import Tally
from dpas.engine import EngineRefused, EngineResult, EngineRun, run
from dpas.engine.native import native
from dpas.engine.record import engine_record, workload_record
from dpas.policy import Method, PasParams, PolicyConfig
from dpas.real import stop
from dpas.real.modes import ModePlan, Refused
from dpas.real.site import RealBench, Site
from dpas.results import RunResult
from dpas.workload import Workload

#: the most I/Os per job a log keeps (72 bytes each)
LOG_IOS = 2_000_000


class EngineRuns:
    """One engine run per call, and the d_init probe, on the site's target."""

    def __init__(self, site: Site) -> None:
        self.site = site

    def version(self) -> str:
        """What records call the engine; EngineMissing when it was not compiled."""
        native()
        return "dpas engine (io_uring, compiled loop)"

    def region(self) -> tuple[int, int]:
        """The bytes the offsets fall in: a file's first --size bytes, or the whole device."""
        site = self.site
        if site.fio_size is not None:
            return 0, site.fio_size
        fd = os.open(site.target.path, os.O_RDONLY)
        try:
            return 0, os.lseek(fd, 0, os.SEEK_END)
        finally:
            os.close(fd)

    def result(
        self,
        sweep: Sweep,
        mode: Method,
        jobs: int,
        runtime_s: float,
        d_init: int,
        seed: int,
        marks: Callable[[str], None] | None = None,
        workload: Workload | None = None,
    ) -> EngineResult:
        """One run; a refusal of the kernel (no polling, no hybrid polling) is Refused.
        ``marks`` is called with "start" and "stop" around the measurement (the engine's).
        ``workload`` (not steady): its groups' jobs instead of ``jobs`` alike."""
        start, size = self.region()
        config = EngineRun(
            self.site.target.path,
            mode.value,
            policy=PolicyConfig(
                pas=PasParams(d_init=d_init), switch=sweep.switch, order=sweep.order
            ),
            rw=sweep.rw,
            bs=sweep.bs,
            cpus=self.site.pinned(sweep, jobs),
            runtime_s=runtime_s,
            region_start=start,
            region_bytes=size,
            seed=seed,
            log_ios=LOG_IOS if self.site.config.log_dir is not None else 0,
            waf_span=max(sweep.waf_ius, default=0),
        )
        if workload is not None and not workload.steady:
            config = config.with_workload(workload, self.site.online_cpus)
        try:
            result = run(config, lambda: stop.stopped() is not None, marks=marks)
        except EngineRefused as why:
            raise Refused(str(why)) from None
        stop.check()  # a signal ended the run early: what it measured is not a run
        return result

    def probe(self, sweep: Sweep, runtime_s: float) -> float:
        """bench.sh's d_init probe through the engine: one job, INT; its mean latency."""
        return self.result(sweep, Method.INT, 1, runtime_s, 100, sweep.seed).lat_mean_us

    def one(
        self, sweep: Sweep, plan: ModePlan, jobs: int, repeat: int, bench: RealBench
    ) -> RunResult:
        """One run of the sweep: bench.sh's ``jobs`` alike, or the sweep's workload (whose
        record workload_record makes: keyed by its foreground, each group measured)."""
        site = self.site
        workload = sweep.workload
        cpus = (
            self.site.pinned(sweep, jobs)
            if workload.steady
            else tuple(workload.cpus(site.online_cpus))
        )
        counter = site.interrupts(cpus)
        seed = sweep.seed * 1_000_003 + jobs * 1009 + repeat
        result = self.result(
            sweep, plan.mode, jobs, sweep.runtime_s, bench.d_init_ns, seed, counter.mark, workload
        )
        log = self.save_log(result, plan.mode, jobs, repeat)
        where: dict[str, Any] = dict(
            backend="engine",
            kernel=site.kernel.release,
            device=bench.model,
            knobs=dict(plan.knobs),
            engine=plan.ioengine,
            note=plan.note,
            interrupts=counter.total(),
            log=log,
            waf=engine_waf(result, sweep.waf_ius),
        )
        if workload.steady:
            return engine_record(result, repeat, sweep.switch, **where)
        return workload_record(result, repeat, sweep.switch, site.online_cpus, **where)

    def save_log(self, result: EngineResult, mode: Method, jobs: int, repeat: int) -> str | None:
        """The per-I/O log of every job, as one .npy (dpas.engine.iolog.LOG_DTYPE)."""
        folder = self.site.config.log_dir
        if folder is None:
            return None
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{mode.value}-x{jobs}-r{repeat}.npy"
        np.save(path, np.concatenate([j.log for j in result.jobs]))
        return str(path)


def engine_waf(result: EngineResult, ius: tuple[int, ...]) -> list[dict[str, int]] | None:
    """RunResult.waf for ``ius`` of a run that counted its written offsets by remainder
    modulo the largest (EngineRun.waf_span; dpas.bench.waf.Tally.add_residues)."""
    run = result.run
    if not ius:
        return None
    if run.waf_span != max(ius):
        raise ValueError(f"the run counted its offsets modulo {run.waf_span}, not {max(ius)}")
    tally = Tally(ius)
    for job, size in zip(result.jobs, run.sizes, strict=True):
        tally.add_residues(job.residues, size)
    return tally.record()
