"""Real runs: for each mode, set the knobs, run fio per job count and repeat, restore.

Produces the same RunResult records as the simulator, with the kernel, device, knobs, fio
version and engine of each run; a mode that cannot run here is refused with its reason.
``RealBackend`` is ``dpas bench --device``: a Runner behind the backend interface. On the DPAS
kernel each polled run starts with its CPUs in PAS (dpas.real.settle), and each record keeps
every CPU's switch mode before and after the run.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass, field
from functools import partial
from itertools import groupby
from operator import itemgetter
from pathlib import Path

from rich.console import Console

from dpas.bench.backend import Interrupted, Outcome, Sweep
from dpas.doctor.checks import Where
from dpas.errors import DpasError
from dpas.policy import Method, Op
from dpas.policy.switch import Mode
from dpas.policy.switch_stat import NoBreakdown, SwitchStatLine, delta, latest, parse
from dpas.real import stop
from dpas.real.decisions import DecisionTrace
from dpas.real.engine_runs import EngineRuns
from dpas.real.executor import Executor
from dpas.real.fio import FioError, FioJob, FioResult, failure, pinned, record
from dpas.real.fio import parse as parse_fio
from dpas.real.guard import create_filled, read_size, write_refusal
from dpas.real.interrupts import Counter
from dpas.real.kernel import Kernel
from dpas.real.knobs import KnobError, QueueKnobs, applied, check_journal_writable, default_journal
from dpas.real.lock import DeviceLock
from dpas.real.modes import ModePlan, Refused, plan_engine, plan_mode, resets_state
from dpas.real.settle import (
    RUN_CAP_S,
    Budget,
    Settler,
    Unsettled,
    cannot_settle,
    counted,
    out_of_pas,
    refuse_outright,
)
from dpas.real.target import Target, resolve
from dpas.results import RunResult

#: fio's errno when the kernel refuses polled I/O on the file (EOPNOTSUPP)
EOPNOTSUPP = 95
D_INIT_PROBE_S = 1.0


@dataclass(frozen=True, slots=True)
class RealConfig:
    """Where and with what a real sweep runs (the sweep itself is a ``Sweep``)."""

    device: str
    ioengine: str | None = None
    destroy_data: bool = False
    fio: str = "fio"
    journal: Path | None = None  # None: one per queue in dpas's state folder
    size: int = 256 << 20  # bytes of a regular file a run uses (and creates, if missing)
    #: who completes the I/Os: "fio" (the kernel's methods) or "dpas" (dpas's own engine)
    engine: str = "fio"
    #: the engine's per-I/O logs go here, one .npy per run (None: no log)
    log_dir: Path | None = None
    #: DPAS kernel: bring a CPU a polled run uses back to PAS first (False: refuse the run)
    settle: bool = True
    #: tracefs, where the kernel has the DPAS series' dpas_io event: its PAS and DPAS runs'
    #: decisions are replayed through dpas.policy (dpas.real.decisions; None: not read)
    tracefs: Path | None = None


@dataclass(frozen=True, slots=True)
class Snapshot:
    """switch_stat at one moment: its lines, or why they could not be read as such."""

    lines: list[SwitchStatLine] = field(default_factory=list)
    unread: str = ""

    @property
    def modes(self) -> dict[int, Mode]:
        """Each CPU's mode now (a kernel log holds older reads too: the last line counts)."""
        return {cpu: line.mode for cpu, line in latest(self.lines).items()}


#: what a queue without switch_stat gives
NO_SNAPSHOT = Snapshot()
_STDERR = Console(stderr=True, highlight=False)


def _say(line: str) -> None:
    """A settling step on stderr; under the CLI's progress bar, rich prints it above the bar."""
    _STDERR.print(line, markup=False, style="yellow")


@dataclass(slots=True)
class RealBench:
    """What a real bench produced: records, the refused modes and why, and the d_init used."""

    records: list[RunResult] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)
    d_init_ns: int = 0
    kernel: str = ""
    fio_version: str = ""
    created: bool = False  # dpas created (and filled) the file it ran on
    model: str = ""  # the device's model (or what the file is on), as the records name it


class Runner:
    """The target and its queue, found when made (a bad device is refused before anything runs);
    ``run`` then runs a sweep on them."""

    def __init__(self, config: RealConfig, executor: Executor) -> None:
        self.config = config
        self.executor = executor
        self.kernel = Kernel.parse(executor.kernel_release())
        self.target: Target = resolve(config.device, executor)
        queue = self.target.queue_dir(executor)
        self.knobs = QueueKnobs(executor, queue.absolute()) if queue is not None else None
        self.where = str(queue.parent.name) if queue is not None else str(self.target.path)
        self.fio_size: int | None = None  # bytes of a file fio may use; None: the whole device
        self.engine = EngineRuns(self) if config.engine == "dpas" else None
        self.online_cpus = os.cpu_count() or 1  # what fio's "split" spreads the jobs over
        self.say: Callable[[str], None] = _say  # settling progress, one line a step
        #: told "MODE:JOBS:REPEAT" as each measured run starts (the guest streams it)
        self.starting: Callable[[str], None] = lambda _: None
        #: (mode, jobs, repeat) runs left out: a fresh guest's, finished or crashed in before
        self.skip: frozenset[tuple[str, int, int]] = frozenset()
        #: made when first asked for; runners of one device in one sweep share it
        self.lock: DeviceLock | None = None
        trace = DecisionTrace(config.tracefs) if config.tracefs is not None else None
        self.decisions = trace if trace is not None and trace.available() else None

    @property
    def journal(self) -> Path:
        queue = self.knobs.queue_dir if self.knobs is not None else None
        return (self.config.journal or default_journal(queue)).absolute()

    def interrupts(self, cpus: tuple[int, ...]) -> Counter:
        """The counter of one run's interrupts: the target's disk's I/O queues that serve the
        CPUs the run's jobs are pinned to (dpas.real.interrupts)."""
        where = Where(sysfs=self.executor.sysfs_root)
        return Counter(self.target.disk, cpus, where)

    def device_lock(self) -> DeviceLock:
        """Keyed by the queue when known (its knobs are what two runs would fight over); one
        lock a runner, so a sweep of points can hold it across their runs."""
        if self.lock is None:
            key = self.knobs.queue_dir if self.knobs is not None else self.target.path.resolve()
            self.lock = DeviceLock(str(key), self.where)
        return self.lock

    # -- checks before anything runs --------------------------------------------------------
    def check_data(self, sweep: Sweep) -> None:
        """The data rules (dpas.real.guard), before fio or dpas touch the target."""
        target = self.target
        if sweep.rw is Op.WRITE and target.exists and not self.config.destroy_data:
            raise Refused(write_refusal(target, self.executor))
        if target.kind == "file" and target.exists and sweep.rw is Op.READ:
            self.fio_size = read_size(target, self.config.size, sweep.bs, max(sweep.jobs))
        elif target.kind == "file":
            self.fio_size = (
                min(self.config.size, target.size) if target.exists else self.config.size
            )

    def prepare(self) -> bool:
        """Create and fill a missing file; True when dpas made it."""
        if self.target.kind != "file" or self.target.exists:
            return False
        create_filled(self.target.path, self.config.size)
        return True

    def fio_version(self) -> str:
        try:
            out = self.executor.run([self.config.fio, "--version"], 30)
        except FileNotFoundError:
            raise Refused(
                f"fio not found ({self.config.fio}): apt-get install fio, or give --fio PATH"
            ) from None
        except OSError as err:
            raise Refused(
                f"--fio {self.config.fio}: {err.strerror or err} (expected the fio program)"
            ) from None
        version = out.stdout.strip()
        if out.returncode != 0 or not version.startswith("fio-"):
            raise Refused(
                f"--fio {self.config.fio} is not fio: '--version' printed {version[:60]!r}"
            )
        return version

    def device_model(self) -> str:
        if self.target.kind == "file":
            return f"file on {self.target.disk or 'an unknown device'}"
        model = self.executor.sysfs_root / "block" / str(self.target.disk) / "device" / "model"
        return self.executor.read(model).strip() if self.executor.exists(model) else self.where

    # -- runs ---------------------------------------------------------------------------------
    def fio(self, sweep: Sweep, plan: ModePlan, jobs: int, runtime_s: float) -> FioResult:
        job = FioJob(
            self.target.path,
            sweep.rw,
            sweep.bs,
            jobs,
            runtime_s,
            plan.ioengine,
            plan.hipri,
            sweep.cpus,
            self.fio_size,
        )
        return self._run_fio(job.argv(self.config.fio, self.online_cpus), runtime_s, plan, sweep.rw)

    def _run_fio(self, argv: list[str], runtime_s: float, plan: ModePlan, rw: Op) -> FioResult:
        limit = fio_timeout(runtime_s)
        try:
            done = self.executor.run(argv, timeout=limit)
        except subprocess.TimeoutExpired:
            stop.check()
            raise FioError(
                f"fio did not finish a {runtime_s:g} s run within {limit:.0f} s on "
                f"{self.target.path}; it was stopped"
            ) from None
        stop.check()  # a signal killed fio: its output means nothing
        try:
            result = parse_fio(done.stdout, rw)
        except FioError as err:
            if err.errno == EOPNOTSUPP and plan.hipri:
                raise Refused(
                    f"{plan.mode.value}: the kernel refused polled I/O on {self.target.path} "
                    f"(fio error {EOPNOTSUPP}, EOPNOTSUPP): its device has no poll queues"
                ) from None
            raise FioError(failure(self.target.path, done.stderr, err), err.errno) from None
        if done.returncode != 0:
            raise FioError(failure(self.target.path, done.stderr, None, done.returncode))
        return result

    def switch_stat(self) -> list[SwitchStatLine]:
        """Both forms: the attribute's own text, or (artifact kernel) the kernel log."""
        if self.knobs is None or not self.knobs.has("switch_stat"):
            return []
        path = self.knobs.queue_dir / "switch_stat"
        try:
            lines = parse(self.executor.read(path))
            if lines:
                return lines
            return parse(self.executor.run(["dmesg"], 30).stdout)
        except FileNotFoundError:
            return []
        except OSError as err:
            raise KnobError(f"{path}: {err.strerror or err}") from None

    def plan(self, mode: Method, sweep: Sweep, d_init_ns: int) -> ModePlan:
        """What ``mode`` means here for the chosen engine (Refused: it cannot run)."""
        if self.engine is not None:
            return plan_engine(mode, self.kernel, self.knobs, self.where)
        return plan_mode(
            mode, self.kernel, self.knobs, d_init_ns, sweep.switch, self.config.ioengine, self.where
        )

    def d_init_auto(self, sweep: Sweep) -> int:
        """bench.sh: a short plain run (one job, interrupts); a tenth of its mean latency."""
        plan = self.plan(Method.INT, sweep, 100)
        with self._knobs_set(plan):
            if self.engine is not None:
                return self.engine.d_init_probe(sweep)
            result = self.fio(sweep, plan, 1, D_INIT_PROBE_S)
        return max(round(result.lat_mean_us * 100), 1)

    def _knobs_set(self, plan: ModePlan) -> AbstractContextManager[dict[str, str]]:
        if self.knobs is None or not plan.knobs:
            return nullcontext({})
        return applied(self.knobs, plan.knobs, self.journal)

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
        with self.device_lock(), stop.stopping():
            self.target = resolve(self.config.device, self.executor)  # as it is now
            self.check_data(sweep)
            bench.kernel = self.kernel.release
            bench.fio_version = self.engine.version() if self.engine else self.fio_version()
            if self.knobs is not None:
                check_journal_writable(self.journal)
            bench.created = self.prepare()
            try:
                self._sweep(sweep, bench, done)
                stop.check()
            except DpasError as err:
                raise stop.stopped() or err from None
        return bench

    def _sweep(self, sweep: Sweep, bench: RealBench, done: Callable[[str], None] | None) -> None:
        bench.d_init_ns = sweep.d_init_ns or self.d_init_auto(sweep)
        bench.model = self.device_model()
        for mode, runs in groupby(sweep.runs(), key=itemgetter(0)):
            todo = [(j, r) for _, j, r in runs if (mode.value, j, r) not in self.skip]
            if not todo:
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
                    before = self._snapshot() if self._watching() else NO_SNAPSHOT
                    if i > 0 and self._out_of_pas(before, sweep, plan, jobs):
                        break
                    record = self.run_one(sweep, plan, jobs, repeat, bench, before, note)
                    bench.records.append(record)
                    note = ""
                    pending.pop(0)
                    if done:
                        done(f"{plan.mode.value} x{jobs}")

    def run_one(
        self,
        sweep: Sweep,
        plan: ModePlan,
        jobs: int,
        repeat: int,
        bench: RealBench,
        before: Snapshot | None = None,
        note: str = "",
    ) -> RunResult:
        """One run of the sweep, the queue's knobs already set as ``plan`` says: the one place
        that measures, by the engine or by fio. Refused: the mode cannot run on this target (the
        sweep goes on without it); any other DpasError ends the sweep. With fio on the DPAS
        kernel, switch_stat is read around the run (``before``: read by the caller) for every
        CPU's mode and, for DPAS, the breakdown; ``note`` says what was done first."""
        self.starting(f"{plan.mode.value}:{jobs}:{repeat}")
        if self.engine is not None:
            return self.engine.one(sweep, plan, jobs, repeat, bench)
        watching = self._watching()
        if before is None:
            before = self._snapshot() if watching else NO_SNAPSHOT
        traced = self.decisions if plan.mode in (Method.PAS, Method.DPAS) else None
        if traced is not None:
            traced.arm()
        counter = self.interrupts(pinned(sweep.cpus, jobs, self.online_cpus))
        counter.mark("start")  # fio's start-up and end fall inside: the process is the run
        result = self.fio(sweep, plan, jobs, sweep.runtime_s)
        counter.mark("stop")
        replay = traced.collect(plan.knobs) if traced is not None else None
        timeline = replay.pop("timeline") if replay is not None else None
        after = self._snapshot() if watching else NO_SNAPSHOT
        dpas = plan.mode is Method.DPAS
        breakdown, why = _breakdown(before, after) if dpas else (None, "")
        modes = _cpu_modes(before, after) if watching else None
        if watching and modes is None and not dpas:
            why = _modes_unknown(before, after)
        return record(
            plan,
            jobs,
            repeat,
            sweep.rw,
            result,
            bench.d_init_ns,
            breakdown=breakdown,
            switch_stat=[{"cpu": s.cpu, "text": s.render()} for s in after.lines]
            if dpas and after.lines
            else None,
            backend="fio",
            kernel=self.kernel.release,
            device=bench.model,
            fio_version=bench.fio_version,
            note="; ".join(filter(None, (plan.note, note, why))),
            cpu_modes=modes,
            interrupts=counter.total(),
            replay=replay,
            timeline=timeline if plan.mode is Method.DPAS else None,
        )

    def _snapshot(self) -> Snapshot:
        """switch_stat now, or why its text could not be read as switch_stat lines."""
        try:
            return Snapshot(self.switch_stat())
        except KnobError:
            raise
        except (DpasError, ValueError) as err:
            return Snapshot([], f"switch_stat unreadable ({err})")

    # -- the switch's state left by earlier runs (DPAS kernel) ---------------------------------
    def _watching(self) -> bool:
        """fio on a queue with switch_stat: the DPAS kernel, whose switch state outlives runs."""
        return self.engine is None and self.knobs is not None and self.knobs.has("switch_stat")

    def _out_of_pas(self, now: Snapshot, sweep: Sweep, plan: ModePlan, jobs: int) -> bool:
        if not self._watching() or not counted(plan):
            return False
        return bool(out_of_pas(now.modes, pinned(sweep.cpus, jobs, self.online_cpus), plan))

    def _settle(self, sweep: Sweep, plan: ModePlan, jobs: int, d_init_ns: int) -> str:
        """Before a polled run on the DPAS kernel: the CPUs its jobs run on back in PAS, by the
        kernel's own path (dpas.real.settle), or Unsettled. Returns the record's note of it.
        The DPAS series' kernel needs none: the knob writes of the run's block reset it."""
        if not self._watching() or not counted(plan) or resets_state(self.kernel, self.knobs):
            return ""
        cpus = pinned(sweep.cpus, jobs, self.online_cpus)
        bad = out_of_pas(self._snapshot().modes, cpus, plan)
        if not bad:
            return ""
        refuse_outright(bad, self.config.settle)
        try:
            dpas = plan_mode(
                Method.DPAS, self.kernel, self.knobs, d_init_ns, sweep.switch, None, self.where
            )
        except Refused as why:
            raise Unsettled(cannot_settle(bad, str(why))) from None
        capacity = self.fio_size // sweep.bs if self.fio_size else None
        settler = Settler(
            Budget.of(sweep.switch, capacity),
            partial(self._settling_run, sweep, dpas),
            self._modes_now,
            self.say,
        )
        with self._knobs_set(dpas):
            return "; ".join(settler.settle(cpu, mode) for cpu, mode in bad.items())

    def _settling_run(self, sweep: Sweep, dpas: ModePlan, cpu: int, ios: int) -> int:
        """``ios`` synchronous polled reads by one job pinned to ``cpu``; the I/Os fio did."""
        job = FioJob(
            self.target.path, Op.READ, sweep.bs, 1, RUN_CAP_S, "pvsync2", True, str(cpu),
            self.fio_size,
        )  # fmt: skip
        # number_ios only counts without time_based; the runtime then only caps the run
        argv = [a for a in job.argv(self.config.fio, self.online_cpus) if a != "--time_based"]
        return self._run_fio([*argv, f"--number_ios={ios}"], RUN_CAP_S, dpas, Op.READ).ios

    def _modes_now(self) -> dict[int, Mode]:
        now = self._snapshot()
        if now.unread:
            raise Unsettled(f"{now.unread} while settling a CPU: its mode is unknown")
        return now.modes


def _breakdown(before: Snapshot, after: Snapshot) -> tuple[dict[str, int] | None, str]:
    """The I/Os per mode during a run, or None and why there is none (never a negative count)."""
    if before.unread or after.unread:
        return None, f"{before.unread or after.unread}: no breakdown"
    if not after.lines:
        return None, "switch_stat showed no CPU lines: no breakdown"
    try:
        return delta(before.lines, after.lines), ""
    except NoBreakdown as why:
        return None, f"{why}: no breakdown"


def _cpu_modes(before: Snapshot, after: Snapshot) -> dict[str, dict[str, str]] | None:
    """Every CPU's mode before and after a run (CPU numbers as strings, as JSON keeps them)."""
    if not before.lines or not after.lines:
        return None
    return {
        side: {str(cpu): mode.name for cpu, mode in sorted(snap.modes.items())}
        for side, snap in (("before", before), ("after", after))
    }


def _modes_unknown(before: Snapshot, after: Snapshot) -> str:
    unread = before.unread or after.unread
    return f"{unread or 'switch_stat showed no CPU lines'}: CPU modes unknown"


def fio_timeout(runtime_s: float) -> float:
    """How long a fio run may take: its runtime, ramp and start-up, with room to spare."""
    return runtime_s * 3 + 120


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
            f"{'read' if sweep.rw is Op.READ else 'write'} {sweep.bs} B, "
            f"{sweep.runtime_s:g} s per run, "
            f"pas_d_init {bench.d_init_ns} ns{' (auto)' if sweep.d_init_ns is None else ''}",
            *notes,
            "queue knobs set per mode and restored as found"
            if any(r.knobs for r in bench.records)
            else "no queue knob was changed",
        ]
        return Outcome(
            records=bench.records,
            refused=bench.refused,
            d_init_ns=bench.d_init_ns,
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
            },
        )
