"""Real runs: for each mode, set the knobs, run fio per job count and repeat, restore.

Produces the same RunResult records as the simulator, with the kernel, device, knobs, fio
version and engine of each run; a mode that cannot run here is refused with its reason.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

from dpas.policy import Method, Op, SwitchParams
from dpas.policy.switch_stat import SwitchStatLine, delta, parse
from dpas.real.executor import Executor
from dpas.real.fio import FioError, FioJob, FioResult, record
from dpas.real.fio import parse as parse_fio
from dpas.real.guard import holdings
from dpas.real.kernel import Kernel
from dpas.real.knobs import QueueKnobs, applied
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
    journal: Path = Path("knobs-journal.json")
    size: str = "256m"


@dataclass(slots=True)
class RealBench:
    """What a real bench produced: records, the refused modes and why, and the d_init used."""

    records: list[RunResult] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)
    d_init_ns: int = 0
    kernel: str = ""
    fio_version: str = ""


class Runner:
    def __init__(self, config: RealConfig, executor: Executor) -> None:
        self.config = config
        self.executor = executor
        self.kernel = Kernel.parse(executor.kernel_release())
        self.target: Target = resolve(config.device, executor)
        queue = self.target.queue_dir(executor)
        self.knobs = QueueKnobs(executor, queue) if queue is not None else None
        self.where = str(queue.parent.name) if queue is not None else str(self.target.path)

    # -- checks before anything runs --------------------------------------------------------
    def check_writes(self) -> None:
        if self.config.rw is not Op.WRITE or self.config.destroy_data:
            return
        held = holdings(self.target, self.executor)
        if held:
            raise Refused(
                f"--device {self.config.device} holds {' and '.join(held)}: random writes would "
                "destroy it; add --destroy-data to write anyway"
            )

    def fio_version(self) -> str:
        try:
            out = self.executor.run([self.config.fio, "--version"], 30)
        except FileNotFoundError:
            raise Refused(
                f"fio not found ({self.config.fio}): apt-get install fio, or give --fio PATH"
            ) from None
        return out.stdout.strip()

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
            self.config.size if self.target.kind == "file" else None,
        )
        argv = job.argv(self.config.fio, os.cpu_count() or 1)
        done = self.executor.run(argv, timeout=runtime_s * 3 + 120)
        try:
            return parse_fio(done.stdout, self.config.rw)
        except FioError as err:
            if err.errno == EOPNOTSUPP and plan.hipri:
                raise Refused(
                    f"{plan.mode.value}: the kernel refused polled I/O on {self.target.path} "
                    f"(fio error {EOPNOTSUPP}, EOPNOTSUPP): its device has no poll queues"
                ) from None
            detail = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else str(err)
            raise FioError(f"fio failed on {self.target.path}: {detail}", err.errno) from None

    def switch_stat(self) -> list[SwitchStatLine]:
        """Both forms: the attribute's own text, or (artifact kernel) the kernel log."""
        if self.knobs is None or not self.knobs.has("switch_stat"):
            return []
        lines = parse(self.executor.read(self.knobs.queue_dir / "switch_stat"))
        if lines:
            return lines
        try:
            log = self.executor.run(["dmesg"], 30).stdout
        except FileNotFoundError:
            return []
        return parse(log)

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
        return applied(self.knobs, plan.knobs, self.config.journal)

    def run(self, done: Callable[[str], None] | None = None) -> RealBench:
        self.check_writes()
        bench = RealBench(kernel=self.kernel.release, fio_version=self.fio_version())
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
        return bench

    def _one(
        self, plan: ModePlan, jobs: int, repeat: int, bench: RealBench, model: str
    ) -> RunResult:
        before = self.switch_stat() if plan.mode is Method.DPAS else []
        result = self.fio(plan, jobs, self.config.runtime_s)
        after = self.switch_stat() if plan.mode is Method.DPAS else []
        return record(
            plan,
            jobs,
            repeat,
            self.config.rw,
            result,
            bench.d_init_ns,
            breakdown=delta(before, after) if after else None,
            switch_stat=[{"cpu": s.cpu, "text": s.render()} for s in after] or None,
            backend="fio",
            kernel=self.kernel.release,
            device=model,
            fio_version=bench.fio_version,
            note=plan.note,
        )
