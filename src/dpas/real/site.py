"""What a real sweep runs on, found once before anything runs: the target (a block device or
a regular file), its queue and knobs, the running kernel, the CPUs fio spreads jobs over, and
how much of a file the data rules let a run use. fio's runs, the engine's, the switch_stat
reader and the Runner all read it; a bad device is refused when it is made."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from dpas.bench.backend import Measuring, Sweep
from dpas.machine.fio import pinned
from dpas.machine.interrupts import Counter
from dpas.machine.kernel import Kernel
from dpas.machine.where import Where
from dpas.policy import Op
from dpas.real.executor import Executor
from dpas.real.guard import create_filled, read_size, write_refusal
from dpas.real.knobs import QueueKnobs, default_journal
from dpas.real.modes import Refused
from dpas.real.target import Target, resolve


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
    #: a workload's fio job files are saved here, one a run (MODE-rREPEAT.fio; None: not kept)
    jobfile_dir: Path | None = None


@dataclass(slots=True)
class RealBench(Measuring):
    """What a real bench produced: records, the refused modes and why, the d_init used, and
    what the site was."""

    created: bool = False  # dpas created (and filled) the file it ran on
    model: str = ""  # the device's model (or what the file is on), as the records name it


def _read_shape(sweep: Sweep) -> tuple[int, int]:
    """(block size, jobs) a read run needs room for: the sweep's, or its workload's largest
    block by all of its jobs."""
    groups = sweep.workload.groups
    if not groups:
        return sweep.bs, max(sweep.jobs)
    return max(g.bs for g in groups), sum(g.jobs for g in groups)


class Site:
    """The target and its queue of ``config.device`` as ``executor`` sees them."""

    def __init__(self, config: RealConfig, executor: Executor) -> None:
        self.config = config
        self.executor = executor
        self.kernel = Kernel.parse(executor.kernel_release())
        self.target: Target = resolve(config.device, executor)
        queue = self.target.queue_dir(executor)
        self.knobs = QueueKnobs(executor, queue.absolute()) if queue is not None else None
        self.where = str(queue.parent.name) if queue is not None else str(self.target.path)
        self.fio_size: int | None = None  # bytes of a file fio may use; None: the whole device
        self.online_cpus = os.cpu_count() or 1  # what fio's "split" spreads the jobs over

    @property
    def journal(self) -> Path:
        queue = self.knobs.queue_dir if self.knobs is not None else None
        return (self.config.journal or default_journal(queue)).absolute()

    def pinned(self, sweep: Sweep, jobs: int) -> tuple[int, ...]:
        """Each job's CPU, as fio pins it (the engine pins its jobs the same way)."""
        return pinned(sweep.cpus, jobs, self.online_cpus)

    def interrupts(self, cpus: tuple[int, ...]) -> Counter:
        """The counter of one run's interrupts: the target's disk's I/O queues that serve the
        CPUs the run's jobs are pinned to (dpas.machine.interrupts)."""
        return Counter(self.target.disk, cpus, Where(sysfs=self.executor.sysfs_root))

    def refresh(self) -> None:
        """The target as it is now (a sweep's start: it may have been created since)."""
        self.target = resolve(self.config.device, self.executor)

    def check_data(self, sweep: Sweep) -> None:
        """The data rules (dpas.real.guard), before fio or dpas touch the target: a sweep
        writes when its rw does or when any group of its workload does."""
        target = self.target
        writes = sweep.rw is Op.WRITE or sweep.workload.writes
        if writes and target.exists and not self.config.destroy_data:
            raise Refused(write_refusal(target, self.executor))
        if target.kind == "file" and target.exists and not writes:
            bs, jobs = _read_shape(sweep)
            self.fio_size = read_size(target, self.config.size, bs, jobs)
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

    def device_model(self) -> str:
        if self.target.kind == "file":
            return f"file on {self.target.disk or 'an unknown device'}"
        model = self.executor.sysfs_root / "block" / str(self.target.disk) / "device" / "model"
        return self.executor.read(model).strip() if self.executor.exists(model) else self.where
