"""The engine as the Runner's per-run executor, beside fio: the same target, lock, data
guard, knobs and records; the I/Os completed by dpas's own loop (dpas.engine)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from dpas.bench.backend import Sweep
from dpas.engine import EngineRefused, EngineResult, EngineRun, run
from dpas.engine.native import native
from dpas.engine.record import engine_record
from dpas.policy import Method, PasParams, PolicyConfig
from dpas.real import stop
from dpas.real.fio import pinned
from dpas.real.modes import ModePlan, Refused
from dpas.results import RunResult

if TYPE_CHECKING:
    from dpas.real.runner import RealBench, Runner

#: the most I/Os per job a log keeps (64 bytes each)
LOG_IOS = 2_000_000


class EngineRuns:
    """One engine run per call, and the d_init probe, on the Runner's target."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner

    def version(self) -> str:
        """What records call the engine; EngineMissing when it was not compiled."""
        native()
        return "dpas engine (io_uring, compiled loop)"

    def region(self) -> tuple[int, int]:
        """The bytes the offsets fall in: a file's first --size bytes, or the whole device."""
        runner = self.runner
        if runner.fio_size is not None:
            return 0, runner.fio_size
        fd = os.open(runner.target.path, os.O_RDONLY)
        try:
            return 0, os.lseek(fd, 0, os.SEEK_END)
        finally:
            os.close(fd)

    def cpus(self, sweep: Sweep, jobs: int) -> tuple[int, ...]:
        """Each job's CPU, as fio would pin it."""
        return pinned(sweep.cpus, jobs, self.runner.online_cpus)

    def result(
        self,
        sweep: Sweep,
        mode: Method,
        jobs: int,
        runtime_s: float,
        d_init: int,
        seed: int,
        marks: Callable[[str], None] | None = None,
    ) -> EngineResult:
        """One run; a refusal of the kernel (no polling, no hybrid polling) is Refused.
        ``marks`` is called with "start" and "stop" around the measurement (the engine's)."""
        start, size = self.region()
        config = EngineRun(
            self.runner.target.path,
            mode.value,
            policy=PolicyConfig(
                pas=PasParams(d_init=d_init), switch=sweep.switch, order=sweep.order
            ),
            rw=sweep.rw,
            bs=sweep.bs,
            cpus=self.cpus(sweep, jobs),
            runtime_s=runtime_s,
            region_start=start,
            region_bytes=size,
            seed=seed,
            log_ios=LOG_IOS if self.runner.config.log_dir is not None else 0,
        )
        try:
            result = run(config, lambda: stop.stopped() is not None, marks=marks)
        except EngineRefused as why:
            raise Refused(str(why)) from None
        stop.check()  # a signal ended the run early: what it measured is not a run
        return result

    def d_init_probe(self, sweep: Sweep) -> int:
        """bench.sh's probe through the engine: one job, interrupts, a tenth of its mean."""
        result = self.result(sweep, Method.INT, 1, 1.0, 100, sweep.seed)
        return max(round(result.lat_mean_us * 100), 1)

    def one(
        self, sweep: Sweep, plan: ModePlan, jobs: int, repeat: int, bench: RealBench
    ) -> RunResult:
        runner = self.runner
        counter = runner.interrupts(self.cpus(sweep, jobs))
        seed = sweep.seed * 1_000_003 + jobs * 1009 + repeat
        result = self.result(
            sweep, plan.mode, jobs, sweep.runtime_s, bench.d_init_ns, seed, counter.mark
        )
        log = self.save_log(result, plan.mode, jobs, repeat)
        return engine_record(
            result,
            repeat,
            sweep.switch,
            backend="engine",
            kernel=runner.kernel.release,
            device=bench.model,
            knobs=dict(plan.knobs),
            engine=plan.ioengine,
            note=plan.note,
            interrupts=counter.total(),
            log=log,
        )

    def save_log(self, result: EngineResult, mode: Method, jobs: int, repeat: int) -> str | None:
        """The per-I/O log of every job, as one .npy (dpas.engine.iolog.LOG_DTYPE)."""
        folder = self.runner.config.log_dir
        if folder is None:
            return None
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{mode.value}-x{jobs}-r{repeat}.npy"
        np.save(path, np.concatenate([j.log for j in result.jobs]))
        return str(path)
