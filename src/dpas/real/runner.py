"""Real runs: for each mode, set the knobs, run fio per job count and repeat, restore.

Produces the same RunResult records as the simulator, with the kernel, device, knobs, fio
version and engine of each run; a mode that cannot run here is refused with its reason.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

from dpas.errors import DpasError
from dpas.policy import Method, Op, SwitchParams
from dpas.policy.switch_stat import SwitchStatLine, delta, parse
from dpas.real import stop
from dpas.real.executor import Executor
from dpas.real.fio import FioError, FioJob, FioResult, record
from dpas.real.fio import parse as parse_fio
from dpas.real.guard import create_filled, read_size, write_refusal
from dpas.real.kernel import Kernel
from dpas.real.knobs import KnobError, QueueKnobs, applied, check_journal_writable, default_journal
from dpas.real.lock import DeviceLock
from dpas.real.modes import ModePlan, Refused, plan_mode
from dpas.real.target import Target, resolve
from dpas.sim.run import RunResult

#: fio's errno when the kernel refuses polled I/O on the file (EOPNOTSUPP)
EOPNOTSUPP = 95
D_INIT_PROBE_S = 1.0


@dataclass(frozen=True, slots=True)
class RealConfig:
    device: str
    modes: tuple[Method, ...]
    rw: Op = Op.READ
    repeats: int = 1
    jobs: tuple[int, ...] = (1, 2, 4, 8, 16)
    cpus: str = "0"
    runtime_s: float = 10.0
    bs: int = 4096
    d_init_ns: int | None = None
    switch: SwitchParams = field(default_factory=SwitchParams)
    ioengine: str | None = None
    destroy_data: bool = False
    fio: str = "fio"
    journal: Path | None = None  # None: one per queue in dpas's state folder
    size: int = 256 << 20  # bytes of a regular file a run uses (and creates, if missing)


@dataclass(slots=True)
class RealBench:
    """What a real bench produced: records, the refused modes and why, and the d_init used."""

    records: list[RunResult] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)
    d_init_ns: int = 0
    kernel: str = ""
    fio_version: str = ""
    created: bool = False  # dpas created (and filled) the file it ran on


class Interrupted(DpasError):
    """A run that ended early (a signal, a failing fio) with what it had measured so far."""

    def __init__(self, cause: DpasError, bench: RealBench) -> None:
        super().__init__(str(cause))
        self.cause, self.bench = cause, bench
        self.exit_code = cause.exit_code


class Runner:
    def __init__(self, config: RealConfig, executor: Executor) -> None:
        self.config = config
        self.executor = executor
        self.kernel = Kernel.parse(executor.kernel_release())
        self.target: Target = resolve(config.device, executor)
        queue = self.target.queue_dir(executor)
        self.knobs = QueueKnobs(executor, queue.absolute()) if queue is not None else None
        self.where = str(queue.parent.name) if queue is not None else str(self.target.path)
        self.fio_size: int | None = None  # bytes of a file fio may use; None: the whole device

    @property
    def journal(self) -> Path:
        queue = self.knobs.queue_dir if self.knobs is not None else None
        return (self.config.journal or default_journal(queue)).absolute()

    def device_lock(self) -> DeviceLock:
        """Keyed by the queue when known (its knobs are what two runs would fight over)."""
        key = self.knobs.queue_dir if self.knobs is not None else self.target.path.resolve()
        return DeviceLock(str(key), self.where)

    # -- checks before anything runs --------------------------------------------------------
    def check_data(self) -> None:
        """The data rules (dpas.real.guard), before fio or dpas touch the target."""
        target = self.target
        if self.config.rw is Op.WRITE and target.exists and not self.config.destroy_data:
            raise Refused(write_refusal(target, self.executor))
        if target.kind == "file" and target.exists and self.config.rw is Op.READ:
            self.fio_size = read_size(
                target, self.config.size, self.config.bs, max(self.config.jobs)
            )
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
    def fio(self, plan: ModePlan, jobs: int, runtime_s: float) -> FioResult:
        job = FioJob(
            self.target.path,
            self.config.rw,
            self.config.bs,
            jobs,
            runtime_s,
            plan.ioengine,
            plan.hipri,
            self.config.cpus,
            self.fio_size,
        )
        argv = job.argv(self.config.fio, os.cpu_count() or 1)
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
            result = parse_fio(done.stdout, self.config.rw)
        except FioError as err:
            if err.errno == EOPNOTSUPP and plan.hipri:
                raise Refused(
                    f"{plan.mode.value}: the kernel refused polled I/O on {self.target.path} "
                    f"(fio error {EOPNOTSUPP}, EOPNOTSUPP): its device has no poll queues"
                ) from None
            raise FioError(
                f"fio failed on {self.target.path}: {_said(done, err)}", err.errno
            ) from None
        if done.returncode != 0:
            raise FioError(
                f"fio failed on {self.target.path} (exit {done.returncode}): {_said(done, None)}"
            )
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

    def d_init_auto(self) -> int:
        """bench.sh: a short plain run (one job, interrupts); a tenth of its mean latency."""
        plan = plan_mode(
            Method.INT,
            self.kernel,
            self.knobs,
            100,
            self.config.switch,
            self.config.ioengine,
            self.where,
        )
        with self._knobs_set(plan):
            result = self.fio(plan, 1, D_INIT_PROBE_S)
        return max(round(result.lat_mean_us * 100), 1)

    def _knobs_set(self, plan: ModePlan) -> AbstractContextManager[dict[str, str]]:
        if self.knobs is None or not plan.knobs:
            return nullcontext({})
        return applied(self.knobs, plan.knobs, self.journal)

    def run(self, done: Callable[[str], None] | None = None) -> RealBench:
        """The whole sweep, holding the device and catching the stopping signals throughout;
        every knob is back as found when this returns or raises."""
        with self.device_lock(), stop.stopping():
            self.check_data()
            bench = RealBench(kernel=self.kernel.release, fio_version=self.fio_version())
            if self.knobs is not None:
                check_journal_writable(self.journal)
            bench.created = self.prepare()
            try:
                self._sweep(bench, done)
                stop.check()
            except DpasError as err:
                cause = stop.stopped() or err  # a signal outranks what it caused
                if bench.records:
                    raise Interrupted(cause, bench) from None
                raise cause from None
        return bench

    def _sweep(self, bench: RealBench, done: Callable[[str], None] | None) -> None:
        bench.d_init_ns = self.config.d_init_ns or self.d_init_auto()
        model = self.device_model()
        for mode in self.config.modes:
            try:
                plan = plan_mode(
                    mode,
                    self.kernel,
                    self.knobs,
                    bench.d_init_ns,
                    self.config.switch,
                    self.config.ioengine,
                    self.where,
                )
                with self._knobs_set(plan):
                    for jobs in self.config.jobs:
                        for repeat in range(1, self.config.repeats + 1):
                            record = self._one(plan, jobs, repeat, bench, model)
                            bench.records.append(record)
                            if done:
                                done(f"{mode.value} x{jobs}")
            except Refused as why:
                bench.refused[mode.value] = str(why)
                bench.records = [r for r in bench.records if r.mode != mode.value]

    def _one(
        self, plan: ModePlan, jobs: int, repeat: int, bench: RealBench, model: str
    ) -> RunResult:
        dpas = plan.mode is Method.DPAS
        before, unread = self._snapshot() if dpas else ([], "")
        result = self.fio(plan, jobs, self.config.runtime_s)
        after, unread_after = self._snapshot() if dpas else ([], "")
        breakdown, why = _breakdown(before, after, unread or unread_after)
        return record(
            plan,
            jobs,
            repeat,
            self.config.rw,
            result,
            bench.d_init_ns,
            breakdown=breakdown,
            switch_stat=[{"cpu": s.cpu, "text": s.render()} for s in after] or None,
            backend="fio",
            kernel=self.kernel.release,
            device=model,
            fio_version=bench.fio_version,
            note="; ".join(filter(None, (plan.note, why))),
        )

    def _snapshot(self) -> tuple[list[SwitchStatLine], str]:
        """switch_stat now, or why its text could not be read as switch_stat lines."""
        try:
            return self.switch_stat(), ""
        except KnobError:
            raise
        except (DpasError, ValueError) as err:
            return [], f"switch_stat unreadable ({err}): no breakdown"


def _breakdown(
    before: list[SwitchStatLine], after: list[SwitchStatLine], unread: str
) -> tuple[dict[str, int] | None, str]:
    """The I/Os per mode during a run, or None and why there is none."""
    if unread or not after:
        return None, unread
    counts = delta(before, after)
    if min(counts.values()) < 0:
        return None, "switch_stat counters went backwards during the run: no breakdown"
    return counts, ""


def fio_timeout(runtime_s: float) -> float:
    """How long a fio run may take: its runtime, ramp and start-up, with room to spare."""
    return runtime_s * 3 + 120


def _said(done: subprocess.CompletedProcess[str], err: FioError | None) -> str:
    """fio's own last words: its last stderr line, else what the parser found."""
    lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
    if lines:
        return lines[-1].strip()[:300]
    return str(err) if err is not None else "no message"
