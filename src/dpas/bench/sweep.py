"""The sweep: every (mode, jobs, rw, repeat) of a bench, run on both cores, in a fixed order."""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from dpas.children import die_with
from dpas.policy import Method, Op, Order, PasParams, SwitchParams
from dpas.sim import SCHEMA, Profile, RunConfig, RunResult, simulate

#: bench.sh's ALL; EHP is the paper's extra baseline and must be named
ALL_MODES = (Method.INT, Method.CP, Method.LHP, Method.PAS, Method.DPAS)
DEFAULT_JOBS = (1, 2, 4, 8, 16)
#: bench.sh's "first short run" that sets pas_d_init
D_INIT_PROBE_S = 0.05


@dataclass(frozen=True, slots=True)
class BenchConfig:
    profile: Profile
    modes: tuple[Method, ...] = ALL_MODES
    rw: Op = Op.READ
    repeats: int = 1
    jobs: tuple[int, ...] = DEFAULT_JOBS
    cpus: str = "0"
    runtime_s: float = 1.0
    ios: int | None = None
    seed: int = 1
    #: None: auto, a tenth of the mean latency of a first short run (bench.sh)
    d_init_ns: int | None = None
    switch: SwitchParams = field(default_factory=SwitchParams)
    order: Order = Order.KERNEL

    def record(self) -> dict[str, Any]:
        """The configuration as it goes into results.json."""
        return {
            "profile": asdict(self.profile),
            "modes": [m.value for m in self.modes],
            "rw": "R" if self.rw is Op.READ else "W",
            "repeats": self.repeats,
            "jobs": list(self.jobs),
            "cpus": self.cpus,
            "runtime_s": self.runtime_s,
            "ios": self.ios,
            "seed": self.seed,
            "d_init": "auto" if self.d_init_ns is None else self.d_init_ns,
            "switch": asdict(self.switch),
            "order": self.order.value,
        }


def run_seed(seed: int, mode: Method, jobs: int, rw: Op, repeat: int) -> int:
    """Each run's own seed, derived from the bench's: independent of the order runs finish."""
    code = list(Method).index(mode)
    return int(np.random.SeedSequence([seed, code, jobs, int(rw), repeat]).generate_state(1)[0])


def d_init_auto(config: BenchConfig) -> int:
    """A tenth of the mean latency of a short plain run: one job, no hipri (interrupts),
    which measures what the device and the completion path take before any polling."""
    probe = RunConfig(
        config.profile,
        Method.INT,
        jobs=1,
        rw=config.rw,
        cpus=config.cpus,
        runtime_s=D_INIT_PROBE_S,
        seed=config.seed,
    )
    return max(round(simulate(probe).lat_mean_us * 100), 1)


def plan(config: BenchConfig, d_init_ns: int) -> list[RunConfig]:
    """The runs in bench.sh's order: mode, then jobs, then repeat."""
    pas = PasParams(d_init=d_init_ns)
    return [
        RunConfig(
            config.profile,
            mode,
            jobs=jobs,
            rw=config.rw,
            cpus=config.cpus,
            runtime_s=config.runtime_s,
            ios=config.ios,
            seed=run_seed(config.seed, mode, jobs, config.rw, repeat),
            repeat=repeat,
            pas=pas,
            switch=config.switch,
            order=config.order,
        )
        for mode in config.modes
        for jobs in config.jobs
        for repeat in range(1, config.repeats + 1)
    ]


def workers() -> int:
    """Both cores of this machine (all cores elsewhere)."""
    return max(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1, 1)


def run_all(
    runs: list[RunConfig], done: Callable[[RunConfig], None] | None = None, jobs: int | None = None
) -> list[RunResult]:
    """Run every config, in parallel processes; the results come back in ``runs`` order."""
    n = jobs or workers()
    if n == 1 or len(runs) == 1:
        results = []
        for run in runs:
            results.append(simulate(run))
            if done:
                done(run)
        return results
    # longest first keeps both cores busy to the end
    order = sorted(range(len(runs)), key=lambda i: -_cost(runs[i]))
    results_by_index: dict[int, RunResult] = {}
    # a Pool, not a ProcessPoolExecutor: leaving the block on Ctrl-C or any error terminates
    # the workers at once, where an executor would first finish every queued run
    with multiprocessing.Pool(n, initializer=_worker_start, initargs=(os.getpid(),)) as pool:
        tasks = [(i, runs[i]) for i in order]
        for i, result in pool.imap_unordered(_simulate_indexed, tasks):
            results_by_index[i] = result
            if done:
                done(runs[i])
    return [results_by_index[i] for i in range(len(runs))]


def _worker_start(parent: int) -> None:
    """A worker dies with its parent, and leaves Ctrl-C (sent to the whole terminal's
    process group) to the parent, which ends the pool."""
    die_with(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _simulate_indexed(task: tuple[int, RunConfig]) -> tuple[int, RunResult]:
    return task[0], simulate(task[1])


def _cost(run: RunConfig) -> float:
    return run.runtime_s * (2 if run.method in (Method.INT, Method.DPAS) else 1) * run.jobs**0.2


def results_record(config: BenchConfig, d_init_ns: int, results: list[RunResult]) -> dict[str, Any]:
    """results.json: the schema, the bench's configuration, and one record per run."""
    return {
        "schema": SCHEMA,
        "backend": "simulator",
        "config": config.record(),
        "d_init_ns": d_init_ns,
        "records": [asdict(r) for r in results],
    }
