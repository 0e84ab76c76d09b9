"""The simulator backend: every (mode, jobs, rw, repeat) of a sweep, run on every core."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import TypeVar

import numpy as np

from dpas import compiled
from dpas.bench.backend import Outcome, Sweep
from dpas.bench.d_init import auto_d_init
from dpas.children import die_with
from dpas.policy import Adaptive, Method, Op, PasParams
from dpas.results import RunResult
from dpas.sim import Profile, RunConfig, simulate
from dpas.sizes import show_size
from dpas.workload import WorkloadError

T = TypeVar("T")
R = TypeVar("R")


def run_seed(seed: int, mode: Method, jobs: int, rw: Op, repeat: int) -> int:
    """Each run's own seed, derived from the bench's: independent of the order runs finish."""
    code = list(Method).index(mode)
    return int(np.random.SeedSequence([seed, code, jobs, int(rw), repeat]).generate_state(1)[0])


def d_init_auto(profile: Profile, sweep: Sweep) -> int:
    """bench.sh's auto pas_d_init (dpas.bench.d_init) on the simulated host and device."""

    def probe(runtime_s: float) -> float:
        config = RunConfig(
            profile, Method.INT, jobs=1, rw=sweep.rw, cpus=sweep.cpus, runtime_s=runtime_s,
            seed=sweep.seed,
        )  # fmt: skip
        return simulate(config).lat_mean_us

    return auto_d_init(probe)


def plan(profile: Profile, sweep: Sweep, d_init_ns: int) -> list[RunConfig]:
    """The runs in bench.sh's order (``Sweep.runs``), each with its own seed."""
    pas = PasParams(d_init=d_init_ns, adaptive=Adaptive(sweep.adaptive))
    return [
        RunConfig(
            profile,
            mode,
            jobs=jobs,
            rw=sweep.rw,
            bs=sweep.bs,
            cpus=sweep.cpus,
            runtime_s=sweep.runtime_s,
            ios=sweep.ios,
            seed=run_seed(sweep.seed, mode, jobs, sweep.rw, repeat),
            repeat=repeat,
            pas=pas,
            switch=sweep.switch,
            order=sweep.order,
            rules=sweep.rules,
            workload=sweep.workload,
            ius=sweep.waf_ius,
        )
        for mode, jobs, repeat in sweep.runs()
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
    tasks = [(i, runs[i]) for i in order]
    for i, result in unordered(_simulate_indexed, tasks, n):
        results_by_index[i] = result
        if done:
            done(runs[i])
    return [results_by_index[i] for i in range(len(runs))]


def unordered(fn: Callable[[T], R], tasks: list[T], n: int) -> Iterator[R]:
    """``fn`` of every task on a pool of ``n`` processes, results as they finish.

    A Pool, not a ProcessPoolExecutor: leaving it on Ctrl-C or any error terminates the
    workers at once, where an executor would first finish every queued task. Ctrl-C raises
    KeyboardInterrupt here only between two results: raised inside the pool's own waiting, it
    can leave the pool's lock held and its terminate waiting for it forever.
    """
    asked: list[int] = []
    with multiprocessing.Pool(n, initializer=_worker_start, initargs=(os.getpid(),)) as pool:
        results = pool.imap_unordered(fn, tasks)
        with _sigint_noted(asked):
            while True:
                if asked:
                    raise KeyboardInterrupt
                try:
                    yield results.next(timeout=0.05)
                except multiprocessing.TimeoutError:
                    continue
                except StopIteration:
                    return


@contextlib.contextmanager
def _sigint_noted(asked: list[int]) -> Iterator[None]:
    """SIGINT appends to ``asked`` instead of raising (in the main thread; elsewhere, as
    before)."""
    try:
        previous = signal.signal(signal.SIGINT, lambda signum, frame: asked.append(signum))
    except ValueError:  # not the main thread: signals are not ours to catch
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _worker_start(parent: int) -> None:
    """A worker dies with its parent, and leaves Ctrl-C (sent to the whole terminal's
    process group) to the parent, which ends the pool."""
    die_with(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _simulate_indexed(task: tuple[int, RunConfig]) -> tuple[int, RunResult]:
    return task[0], simulate(task[1])


def _cost(run: RunConfig) -> float:
    return run.runtime_s * (2 if run.method in (Method.INT, Method.DPAS) else 1) * run.jobs**0.2


def _workload_header(sweep: Sweep) -> str:
    """A workload run's header line: its name, groups and runtime ("" for steady)."""
    w = sweep.workload
    if w.steady:
        return ""
    groups = "; ".join(
        f"{g.name} ({g.role.value}) {g.jobs}x {show_size(g.bs)} on {g.cpus}" for g in w.groups
    )
    return f"workload {w.name}: {groups}; {sweep.runtime_s:g} s per run"


HYB_REFUSED = (
    "the simulator has no model of io_uring's hybrid polling (the kernel decides its sleeps): "
    "--device DEV --engine dpas or dpas vm bench --engine dpas runs it"
)


@dataclass(frozen=True, slots=True)
class SimulatorBackend:
    """The simulated host and device of ``profile``: every run in parallel processes, each
    with its own seed, so the records do not depend on which run finishes first."""

    profile: Profile
    name = "simulator"

    def run(self, sweep: Sweep, done: Callable[[str], None]) -> Outcome:
        if why := sweep.workload.beyond(self.profile.host.cpus, f"profile {self.profile.name}"):
            raise WorkloadError(why)
        refused = {m.value: HYB_REFUSED for m in sweep.modes if m is Method.HYB}
        sweep = replace(sweep, modes=tuple(m for m in sweep.modes if m is not Method.HYB))
        d_init = d_init_auto(self.profile, sweep) if sweep.d_init_ns is None else sweep.d_init_ns
        runs = plan(self.profile, sweep, d_init)
        records = run_all(runs, lambda run: done(f"{run.method.value} x{run.jobs}"))
        d_init_text = f"pas_d_init {d_init} ns{' (auto)' if sweep.d_init_ns is None else ''}"
        header = (
            f"profile {self.profile.name}, "
            + (
                _workload_header(sweep)
                or f"{'read' if sweep.rw is Op.READ else 'write'} "
                f"{show_size(sweep.bs)}, "
                f"jobs on {'CPU 0' if sweep.cpus == '0' else 'one CPU each'}, "
                f"{sweep.runtime_s if sweep.ios is None else sweep.ios} "
                f"{'s' if sweep.ios is None else 'I/Os'} per run"
            )
            + f", {d_init_text}"
        )
        return Outcome(
            records=records,
            refused=refused,
            d_init_ns=d_init,
            context={"profile": self.profile.record(), "simulator": compiled.mode()},
            header=[header],
        )
