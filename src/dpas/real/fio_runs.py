"""fio as the Runner's per-run executor, beside dpas's engine (dpas.real.engine_runs): one fio
process a run on the site's target, its JSON read as the run's record; on the DPAS kernel
switch_stat read around it, and on the DPAS series' kernel its decisions replayed."""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Callable
from contextlib import AbstractContextManager
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from dpas.bench.backend import Sweep
from dpas.bench.waf import Tally
from dpas.machine.fio import FioError, parse
from dpas.policy import Method, Op
from dpas.real import fio_workload, stop
from dpas.real.decisions import DecisionTrace
from dpas.real.fio import FioJob, failure, record
from dpas.real.fio_workload import WorkloadRun, run_key, spins_think
from dpas.real.modes import ModePlan, Refused
from dpas.real.settle import RUN_CAP_S
from dpas.real.site import RealBench, Site
from dpas.real.switch_watch import (
    Snapshot,
    SwitchWatch,
    breakdown,
    cpu_modes,
    modes_unknown,
)
from dpas.results import Measured, RunKey, RunResult
from dpas.waf.writes import NoWritesError, WritesError, read_fio_iolog

#: fio's errno when the kernel refuses polled I/O on the file (EOPNOTSUPP)
EOPNOTSUPP = 95

T = TypeVar("T")


def run_cpus(site: Site, sweep: Sweep, jobs: int) -> tuple[int, ...]:
    """The CPUs a run's jobs use: each job's, as fio pins them (Site.pinned), or for a workload
    every CPU one of its jobs may run on (what the interrupts are counted on, and what must be
    in PAS before a polled run on the DPAS kernel)."""
    if sweep.workload.steady:
        return site.pinned(sweep, jobs)
    return tuple(sweep.workload.cpus(site.online_cpus))


def fio_timeout(runtime_s: float) -> float:
    """How long a fio run may take: its runtime, ramp and start-up, with room to spare."""
    return runtime_s * 3 + 120


class FioRuns:
    """fio's runs on ``site``; ``watch`` reads switch_stat around them."""

    def __init__(self, site: Site, watch: SwitchWatch) -> None:
        self.site = site
        self.watch = watch
        trace = DecisionTrace(site.config.tracefs) if site.config.tracefs is not None else None
        self.decisions = trace if trace is not None and trace.available() else None

    def version(self) -> str:
        fio = self.site.config.fio
        try:
            out = self.site.executor.run([fio, "--version"], 30)
        except FileNotFoundError:
            raise Refused(
                f"fio not found ({fio}): apt-get install fio, or give --fio PATH"
            ) from None
        except OSError as err:
            raise Refused(
                f"--fio {fio}: {err.strerror or err} (expected the fio program)"
            ) from None
        version = out.stdout.strip()
        if out.returncode != 0 or not version.startswith("fio-"):
            raise Refused(f"--fio {fio} is not fio: '--version' printed {version[:60]!r}")
        return version

    def measure(
        self,
        sweep: Sweep,
        plan: ModePlan,
        jobs: int,
        runtime_s: float,
        repeat: int = 0,
        iologs: tuple[Path, ...] = (),
    ) -> Measured:
        """One fio run of ``jobs`` jobs for ``runtime_s``, as ``plan`` runs it; ``iologs``:
        each job's write_iolog goes there."""
        site = self.site
        job = FioJob(
            site.target.path, sweep.rw, sweep.bs, jobs, runtime_s, plan.ioengine, plan.hipri,
            sweep.cpus, site.fio_size, iologs,
        )  # fmt: skip
        run = RunKey.of(plan.mode.value, jobs, sweep.rw, repeat)
        return self.run(job.argv(site.config.fio, site.online_cpus), runtime_s, plan, run)

    def measure_waf(
        self, sweep: Sweep, plan: ModePlan, jobs: int, repeat: int
    ) -> tuple[Measured, list[dict[str, int]] | None]:
        """One steady run, and for a write sweep given IUs (Sweep.waf_ius) its WAF_IU, counted
        from each job's fio write_iolog (``iolog_folder``): the writes fio issued, as it
        logged them."""
        ius = sweep.waf_ius
        if not ius:
            return self.measure(sweep, plan, jobs, sweep.runtime_s, repeat), None
        with self.iolog_folder() as folder:
            paths = tuple(Path(folder) / f"job{i + 1}.iolog" for i in range(jobs))
            result = self.measure(sweep, plan, jobs, sweep.runtime_s, repeat, paths)
            return result, iolog_waf(paths, ius)

    def iolog_folder(self) -> AbstractContextManager[str]:
        """Where a run's iologs go: a folder of their own, removed once they are counted (a
        long run's hold millions of lines, about 40 bytes a write)."""
        return tempfile.TemporaryDirectory(prefix="dpas-fio-iolog-")

    def check_workload(self, sweep: Sweep) -> None:
        """Before anything runs: a workload fio cannot run here (WorkloadFioError)."""
        if not sweep.workload.steady:
            site = self.site
            fio_workload.plan(
                sweep.workload, site.target.path, "psync", False, sweep.runtime_s, None,
                site.online_cpus,
            )  # fmt: skip

    def measure_workload(
        self, sweep: Sweep, plan: ModePlan, repeat: int, fio_version: str
    ) -> WorkloadRun:
        """One fio run of the sweep's workload, as ``plan`` runs it: its job file (saved as
        MODE-rREPEAT.fio in config.jobfile_dir, when set), each group's measures from fio's
        JSON and its series from fio's logs (in a folder of their own, removed after)."""
        site = self.site
        with tempfile.TemporaryDirectory(prefix="dpas-fio-logs-") as logs:
            job = fio_workload.plan(
                sweep.workload, site.target.path, plan.ioengine, plan.hipri, sweep.runtime_s,
                site.fio_size, site.online_cpus, log_dir=Path(logs),
                spin_think=spins_think(fio_version),
            )  # fmt: skip
            folder = site.config.jobfile_dir
            path = Path(logs) / "job.fio"
            if folder is not None:
                path = folder / f"{plan.mode.value}-r{repeat}.fio"
                try:
                    folder.mkdir(parents=True, exist_ok=True)
                except OSError as err:
                    raise FioError(
                        f"the fio job file's folder {folder}: {err.strerror or err}"
                    ) from None
            try:
                path.write_text(job.text)
            except OSError as err:
                raise FioError(f"fio's job file {path}: {err.strerror or err}") from None
            argv = job.argv(site.config.fio, path)
            groups = self._run(
                argv, sweep.runtime_s, plan, partial(fio_workload.group_results, job)
            )
            return WorkloadRun(job, groups, fio_workload.series(job, Path(logs), groups))

    def run(self, argv: list[str], runtime_s: float, plan: ModePlan, run: RunKey) -> Measured:
        """fio as ``argv`` says, stopped past fio_timeout; its JSON read as ``run``'s."""
        return self._run(argv, runtime_s, plan, lambda out: parse(out, run))

    def _run(
        self, argv: list[str], runtime_s: float, plan: ModePlan, read: Callable[[str], T]
    ) -> T:
        """fio as ``argv`` says, stopped past fio_timeout; its JSON read by ``read``."""
        path = self.site.target.path
        limit = fio_timeout(runtime_s)
        try:
            done = self.site.executor.run(argv, timeout=limit)
        except subprocess.TimeoutExpired:
            stop.check()
            raise FioError(
                f"fio did not finish a {runtime_s:g} s run within {limit:.0f} s on {path}; "
                "it was stopped"
            ) from None
        stop.check()  # a signal killed fio: its output means nothing
        try:
            result = read(done.stdout)
        except FioError as err:
            if err.errno == EOPNOTSUPP and plan.hipri:
                raise Refused(
                    f"{plan.mode.value}: the kernel refused polled I/O on {path} "
                    f"(fio error {EOPNOTSUPP}, EOPNOTSUPP): its device has no poll queues"
                ) from None
            raise FioError(failure(path, done.stderr, err), err.errno) from None
        if done.returncode != 0:
            raise FioError(failure(path, done.stderr, None, done.returncode))
        return result

    def settling_run(self, sweep: Sweep, dpas: ModePlan, cpu: int, ios: int) -> int:
        """``ios`` synchronous polled reads by one job pinned to ``cpu``; the I/Os fio did."""
        site = self.site
        job = FioJob(
            site.target.path, Op.READ, sweep.bs, 1, RUN_CAP_S, "pvsync2", True, str(cpu),
            site.fio_size,
        )  # fmt: skip
        # number_ios only counts without time_based; the runtime then only caps the run
        argv = [a for a in job.argv(site.config.fio, site.online_cpus) if a != "--time_based"]
        run = RunKey.of(dpas.mode.value, 1, Op.READ, 0)
        return self.run([*argv, f"--number_ios={ios}"], RUN_CAP_S, dpas, run).ios

    def one(
        self,
        sweep: Sweep,
        plan: ModePlan,
        jobs: int,
        repeat: int,
        bench: RealBench,
        before: Snapshot | None = None,
        note: str = "",
    ) -> RunResult:
        """One measured run and its record: the device's interrupts counted around fio, and
        where the kernel has them, switch_stat around it (``before``: read by the caller) and
        its decisions replayed; ``note`` says what was done first. A workload's run is its job
        file (``jobs`` is then its foreground's count), its record the workload's fields."""
        site, watch = self.site, self.watch
        if before is None:
            before = watch.snapshot()
        traced = self.decisions if plan.mode in (Method.PAS, Method.DPAS) else None
        if traced is not None:
            traced.arm()
        counter = site.interrupts(run_cpus(site, sweep, jobs))
        counter.mark("start")  # fio's start-up and end fall inside: the process is the run
        ran: WorkloadRun | None = None
        waf: list[dict[str, int]] | None = None
        if sweep.workload.steady:
            result, waf = self.measure_waf(sweep, plan, jobs, repeat)
            if waf is not None and waf[0]["writes"] != result.ios:
                note = "; ".join(filter(None, (note, iolog_differs(waf[0]["writes"], result.ios))))
        else:
            ran = self.measure_workload(sweep, plan, repeat, bench.fio_version)
        counter.mark("stop")
        replay = traced.collect(plan.knobs) if traced is not None else None
        timeline = replay.pop("timeline") if replay is not None else None
        after = watch.snapshot()
        dpas = plan.mode is Method.DPAS
        counts, why = breakdown(before, after) if dpas else (None, "")
        modes = cpu_modes(before, after) if watch.active else None
        if watch.active and modes is None and not dpas:
            why = modes_unknown(before, after)
        rest: dict[str, Any] = {}
        if ran is not None:
            run = run_key(sweep.workload, plan.mode.value, repeat)
            result, rest = ran.measured(run, site.online_cpus, timeline if dpas else None)
            why = "; ".join(filter(None, (why, ran.job.note)))
        return record(
            plan,
            result,
            bench.d_init_ns,
            breakdown=counts,
            switch_stat=[{"cpu": s.cpu, "text": s.render()} for s in after.lines]
            if dpas and after.lines
            else None,
            backend="fio",
            kernel=site.kernel.release,
            device=bench.model,
            fio_version=bench.fio_version,
            note="; ".join(filter(None, (plan.note, note, why))),
            cpu_modes=modes,
            interrupts=counter.total(),
            replay=replay,
            timeline=timeline if dpas else None,
            waf=waf,
            **rest,
        )


def iolog_waf(paths: tuple[Path, ...], ius: tuple[int, ...]) -> list[dict[str, int]]:
    """RunResult.waf of the writes in fio's iologs (dpas.waf.writes reads them)."""
    tally = Tally(ius)
    for path in paths:
        try:
            writes = read_fio_iolog(path)
        except NoWritesError:
            continue  # a job that wrote nothing: its iolog has no write line
        except WritesError as err:
            raise FioError(f"fio's iolog: {err}") from None
        tally.add_writes(writes.offsets, writes.lengths)
    return tally.record()


def iolog_differs(logged: int, reported: int) -> str:
    """The note of a run whose iologs and JSON disagree on its writes."""
    return f"fio's iologs hold {logged} writes, its report {reported}: WAF_IU counts the iologs'"
