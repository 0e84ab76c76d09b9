"""Real runs: round by round (``Sweep.rounds``: every mode of repeat 1, then of repeat 2), for
each mode set the knobs, run fio (or the engine) per job count, restore.

A real run is a short pipeline of parts, each in a module of its own and testable alone:
the site (dpas.real.site: target, queue, kernel, data rules), the device lock
(dpas.real.lock), the knob journal (dpas.real.knobs), the mode's plan (dpas.real.modes),
bench.sh's auto d_init (dpas.bench.d_init), settling on the DPAS kernel (dpas.real.settle),
one run by fio or by the engine (dpas.real.fio_runs, dpas.real.engine_runs), switch_stat around
it (dpas.real.switch_watch). The Runner only puts them in order. It produces the same RunResult
records as the simulator; a mode that cannot run here is refused with its reason.
``RealBackend`` is ``dpas bench --device``: a Runner behind the backend interface.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict
from functools import partial
from itertools import groupby
from operator import itemgetter

from rich.console import Console

from dpas.bench.backend import Interrupted, Outcome, Sweep
from dpas.bench.d_init import auto_d_init
from dpas.errors import DpasError
from dpas.policy import Method, Op
from dpas.policy.switch import Mode
from dpas.real import stop
from dpas.real.engine_runs import EngineRuns
from dpas.real.executor import Executor
from dpas.real.fio_runs import FioRuns, run_cpus
from dpas.real.knobs import applied, check_journal_writable
from dpas.real.lock import DeviceLock
from dpas.real.modes import ModePlan, Refused, plan_engine, plan_mode, resets_state
from dpas.real.settle import (
    Budget,
    Settler,
    Unsettled,
    cannot_settle,
    counted,
    out_of_pas,
    refuse_outright,
)
from dpas.real.site import RealBench, RealConfig, Site
from dpas.real.switch_watch import Snapshot, SwitchWatch
from dpas.results import RunResult
from dpas.sizes import show_size

_STDERR = Console(stderr=True, highlight=False)


def _say(line: str) -> None:
    """A settling step on stderr; under the CLI's progress bar, rich prints it above the bar."""
    _STDERR.print(line, markup=False, style="yellow")


class Runner:
    """The target and its queue, found when made (a bad device is refused before anything runs);
    ``run`` then runs a sweep on them."""

    def __init__(self, config: RealConfig, executor: Executor) -> None:
        self.site = Site(config, executor)
        self.watch = SwitchWatch(self.site, fio=config.engine != "dpas")
        self.fio = FioRuns(self.site, self.watch)
        self.engine = EngineRuns(self.site) if config.engine == "dpas" else None
        self.say: Callable[[str], None] = _say  # settling progress, one line a step
        #: told "MODE:JOBS:REPEAT" as each measured run starts (the guest streams it)
        self.starting: Callable[[str], None] = lambda _: None
        #: (mode, jobs, repeat) runs left out: a fresh guest's, finished or crashed in before
        self.skip: frozenset[tuple[str, int, int]] = frozenset()
        #: made when first asked for; runners of one device in one sweep share it
        self.lock: DeviceLock | None = None

    @property
    def config(self) -> RealConfig:
        return self.site.config

    def device_lock(self) -> DeviceLock:
        """Keyed by the queue when known (its knobs are what two runs would fight over); one
        lock a runner, so a sweep of points can hold it across their runs."""
        if self.lock is None:
            site = self.site
            key = site.knobs.queue_dir if site.knobs is not None else site.target.path.resolve()
            self.lock = DeviceLock(str(key), site.where)
        return self.lock

    def plan(self, mode: Method, sweep: Sweep, d_init_ns: int) -> ModePlan:
        """What ``mode`` means here for the chosen engine (Refused: it cannot run)."""
        site = self.site
        if self.engine is not None:
            return plan_engine(mode, site.kernel, site.knobs, site.where)
        return plan_mode(
            mode, site.kernel, site.knobs, d_init_ns, sweep.switch, self.config.ioengine, site.where
        )

    def d_init_auto(self, sweep: Sweep) -> int:
        """bench.sh's auto pas_d_init (dpas.bench.d_init), by fio or by the engine."""
        plan = self.plan(Method.INT, sweep, 100)
        with self._knobs_set(plan):
            if self.engine is not None:
                return auto_d_init(partial(self.engine.probe, sweep))
            return auto_d_init(lambda s: self.fio.measure(sweep, plan, 1, s).lat_mean_us)

    def _knobs_set(self, plan: ModePlan) -> AbstractContextManager[dict[str, str]]:
        if self.site.knobs is None or not plan.knobs:
            return nullcontext({})
        return applied(self.site.knobs, plan.knobs, self.site.journal)

    def run(
        self,
        sweep: Sweep,
        done: Callable[[str], None] | None = None,
        bench: RealBench | None = None,
    ) -> RealBench:
        """The whole sweep, holding the device and catching the stopping signals throughout;
        every knob is back as found when this returns or raises. ``bench`` is filled in as the
        runs go: a caller that passes one keeps what was measured when this raises (a signal
        outranks the error it caused)."""
        bench = RealBench() if bench is None else bench
        site = self.site
        with self.device_lock(), stop.stopping():
            site.refresh()
            site.check_data(sweep)
            if self.engine is None:
                self.fio.check_workload(sweep)
            bench.kernel = site.kernel.release
            bench.fio_version = (self.engine or self.fio).version()
            if site.knobs is not None:
                check_journal_writable(site.journal)
            bench.created = site.prepare()
            try:
                self._sweep(sweep, bench, done)
                stop.check()
            except DpasError as err:
                raise stop.stopped() or err from None
        return bench

    def _sweep(self, sweep: Sweep, bench: RealBench, done: Callable[[str], None] | None) -> None:
        bench.d_init_ns = sweep.d_init_ns or self.d_init_auto(sweep)
        bench.model = self.site.device_model()
        for mode, runs in groupby(sweep.rounds(), key=itemgetter(0)):
            todo = [(j, r) for _, j, r in runs if (mode.value, j, r) not in self.skip]
            if not todo or mode.value in bench.refused:  # refused in an earlier round
                continue
            try:
                plan = self.plan(mode, sweep, bench.d_init_ns)
                self._mode_runs(sweep, plan, todo, bench, done)
            except Refused as why:
                bench.refused[mode.value] = str(why)
                bench.records = [r for r in bench.records if r.mode != mode.value]

    def _mode_runs(
        self,
        sweep: Sweep,
        plan: ModePlan,
        runs: list[tuple[int, int]],
        bench: RealBench,
        done: Callable[[str], None] | None,
    ) -> None:
        """The (jobs, repeat) runs of one mode, its knobs set once for as many as can be.

        On the DPAS kernel a polled run must find the CPUs it uses in PAS, and a DPAS run can
        leave them elsewhere. Then the knob block ends, those CPUs are settled under the DPAS
        knobs (never nested: the journal holds one set of originals), and a new block starts
        with that run. The first run of a block was just checked.
        """
        pending = list(runs)
        while pending:
            note = self._settle(sweep, plan, pending[0][0], bench.d_init_ns)
            with self._knobs_set(plan):
                for i, (jobs, repeat) in enumerate(list(pending)):
                    before = self.watch.snapshot()
                    if i > 0 and self._out_of_pas(before, sweep, plan, jobs):
                        break
                    record = self.run_one(sweep, plan, jobs, repeat, bench, before, note)
                    bench.records.append(record)
                    note = ""
                    pending.pop(0)
                    if done:
                        done(f"{plan.mode.value} x{jobs}")

    def run_one(
        self, sweep: Sweep, plan: ModePlan, jobs: int, repeat: int, bench: RealBench,
        before: Snapshot | None = None, note: str = "",
    ) -> RunResult:  # fmt: skip
        """One run of the sweep, the queue's knobs already set as ``plan`` says: the one place
        that measures, by the engine or by fio (dpas.real.fio_runs). Refused: the mode cannot
        run on this target (the sweep goes on without it); any other DpasError ends the
        sweep."""
        self.starting(f"{plan.mode.value}:{jobs}:{repeat}")
        if self.engine is not None:
            return self.engine.one(sweep, plan, jobs, repeat, bench)
        return self.fio.one(sweep, plan, jobs, repeat, bench, before, note)

    # -- the switch's state left by earlier runs (DPAS kernel) ---------------------------------
    def _out_of_pas(self, now: Snapshot, sweep: Sweep, plan: ModePlan, jobs: int) -> bool:
        if not self.watch.active or not counted(plan):
            return False
        return bool(out_of_pas(now.modes, run_cpus(self.site, sweep, jobs), plan))

    def _settle(self, sweep: Sweep, plan: ModePlan, jobs: int, d_init_ns: int) -> str:
        """Before a polled run on the DPAS kernel: the CPUs its jobs run on back in PAS, by the
        kernel's own path (dpas.real.settle), or Unsettled. Returns the record's note of it.
        The DPAS series' kernel needs none: the knob writes of the run's block reset it."""
        site = self.site
        if not self.watch.active or not counted(plan) or resets_state(site.kernel, site.knobs):
            return ""
        bad = out_of_pas(self.watch.snapshot().modes, run_cpus(site, sweep, jobs), plan)
        if not bad:
            return ""
        refuse_outright(bad, self.config.settle)
        try:
            dpas = plan_mode(
                Method.DPAS, site.kernel, site.knobs, d_init_ns, sweep.switch, None, site.where
            )
        except Refused as why:
            raise Unsettled(cannot_settle(bad, str(why))) from None
        capacity = site.fio_size // sweep.bs if site.fio_size else None
        settler = Settler(
            Budget.of(sweep.switch, capacity),
            partial(self.fio.settling_run, sweep, dpas),
            self._modes_now,
            self.say,
        )
        with self._knobs_set(dpas):
            return "; ".join(settler.settle(cpu, mode) for cpu, mode in bad.items())

    def _modes_now(self) -> dict[int, Mode]:
        now = self.watch.snapshot()
        if now.unread:
            raise Unsettled(f"{now.unread} while settling a CPU: its mode is unknown")
        return now.modes


class RealBackend:
    """``dpas bench --device``: the sweep with fio on a block device or a regular file, the
    queue's knobs set per mode and restored as found. Made before the sweep starts: a device
    that is not there is refused at once."""

    def __init__(self, config: RealConfig, executor: Executor) -> None:
        self.config = config
        self.runner = Runner(config, executor)
        self.name = "engine" if config.engine == "dpas" else "fio"

    def run(self, sweep: Sweep, done: Callable[[str], None]) -> Outcome:
        bench = RealBench()
        try:
            self.runner.run(sweep, done, bench)
        except DpasError as err:
            if bench.records:  # keep what was measured; the CLI saves it, then says why
                raise Interrupted(err, self._outcome(sweep, bench)) from None
            raise
        return self._outcome(sweep, bench)

    def _outcome(self, sweep: Sweep, bench: RealBench) -> Outcome:
        notes = sorted({r.note for r in bench.records if r.note})
        header = [
            f"{self.config.device} ({bench.model}), kernel {bench.kernel}, "
            f"{bench.fio_version}, "
            f"{_what(sweep)}, "
            f"{sweep.runtime_s:g} s per run, "
            f"pas_d_init {bench.d_init_ns} ns{' (auto)' if sweep.d_init_ns is None else ''}",
            *notes,
            "queue knobs set per mode and restored as found"
            if any(r.knobs for r in bench.records)
            else "no queue knob was changed",
        ]
        return bench.outcome(
            context={
                "kernel": bench.kernel,
                # the engine's records name it in their "engine" field
                "fio_version": bench.fio_version if self.runner.engine is None else None,
                "device": self.config.device,
            },
            header=header,
            config={
                **asdict(self.config),
                "journal": str(self.config.journal),
                "log_dir": None if self.config.log_dir is None else str(self.config.log_dir),
                "jobfile_dir": None
                if self.config.jobfile_dir is None
                else str(self.config.jobfile_dir),
            },
        )


def _what(sweep: Sweep) -> str:
    """What each run does, for the header: bench.sh's I/O, or the workload's name."""
    if not sweep.workload.steady:
        return f"workload {sweep.workload.name}"
    return f"{'read' if sweep.rw is Op.READ else 'write'} {show_size(sweep.bs)}"
