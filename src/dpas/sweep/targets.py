"""A grid's real points: a device or file (fio or dpas's engine) or the QEMU guest's drive.

They run here, one at a time, through ``dpas bench``'s own backends and so under its rules:
the data guard (a read never writes; a write to a device or an existing file needs
--destroy-data), the knob journal and restore, and one run per device, whose lock the sweep
holds from its first point to its last. Every target is found, and every write checked,
before the first point of the sweep runs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from dpas.bench.backend import Backend, Sweep
from dpas.errors import DpasError
from dpas.policy import SLEEPERS, Op, Order
from dpas.real import stop
from dpas.real.executor import LocalExecutor
from dpas.real.lock import DeviceLock
from dpas.real.runner import RealBackend
from dpas.real.site import RealConfig
from dpas.sweep.grid import Point, bs_of, cpus_of, method, op, switch, workload_of
from dpas.sweep.run import Finished, record, refused_row, row

#: what a backend is made for: the target, its engine and the guest's kernel
Where = tuple[str, str | None, str | None]


@dataclass(frozen=True, slots=True)
class RealOptions:
    """The command line's say over real points (the grid says what to run, never whether
    data may be destroyed)."""

    destroy_data: bool = False
    fio: str = "fio"
    #: the queue knobs' root (a test seam, as dpas bench's)
    sysfs_root: Path = Path("/sys")


class RealPoints:
    """The backends of a grid's real points, made at once: a target that is not there, or a
    write without --destroy-data, is refused before the sweep runs anything."""

    def __init__(self, points: list[Point], options: RealOptions) -> None:
        self.options = options
        self.backends: dict[Where, Backend] = {}
        for point in points:
            where = _where(point)
            if where not in self.backends:
                self.backends[where] = self._backend(point)
        locks: dict[Path, DeviceLock] = {}
        for where, backend in self.backends.items():
            if isinstance(backend, RealBackend):
                runner = backend.runner
                lock = runner.device_lock()  # fio's and the engine's: one device, one lock
                runner.lock = locks.setdefault(lock.path, lock)
                for check in {_check_sweep(p) for p in points if _where(p) == where}:
                    runner.site.check_data(check)
                if not runner.site.target.exists:  # the sweep's own file: dpas's data only
                    runner.site.config = replace(runner.config, destroy_data=True)
        #: auto pas_d_init as measured once per target, workload and placement
        self.d_init: dict[tuple[Where, str, Op, int], int] = {}

    def _backend(self, point: Point) -> Backend:
        options = self.options
        if point.target == "vm":
            from dpas.vm.guest import GuestRun
            from dpas.vm.runner import VmBackend, VmConfig, default_cache

            # dpas vm bench's guest: its vCPUs, memory and kernel cache
            guest, engine = GuestRun(), point.engine or "fio"
            return VmBackend(VmConfig(guest, point.kernel, cache=default_cache(), engine=engine))
        config = RealConfig(
            point.target,
            destroy_data=options.destroy_data,
            fio=options.fio,
            engine=point.engine or "fio",
        )
        return RealBackend(config, LocalExecutor(options.sysfs_root))

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Every device's lock, from the sweep's first point to its last."""
        with contextlib.ExitStack() as stack:
            locks = {id(lock): lock for b in self.devices() if (lock := b.runner.lock)}
            for lock in locks.values():
                stack.enter_context(lock)
            yield

    def devices(self) -> list[RealBackend]:
        return [b for b in self.backends.values() if isinstance(b, RealBackend)]

    def run_all(self, points: list[Point]) -> Iterator[Finished]:
        """The points one at a time, the stopping signals caught throughout (not around the
        simulator's pool, whose workers would inherit the handler): a signal between two
        points stops the sweep there, knobs restored."""
        with stop.stopping():
            for point in points:
                stop.check()
                yield self.run(point)

    def run(self, point: Point) -> Finished:
        """One point as a sweep of one run on its target's backend."""
        where = _where(point)
        measured = (where, cpus_of(point), op(point), bs_of(point))
        d_init = int(point.d_init) if point.d_init != "auto" else self.d_init.get(measured)
        outcome = self.backends[where].run(sweep_of(point, d_init), lambda _: None)
        if point.d_init == "auto" and method(point) in SLEEPERS and outcome.d_init_ns:
            # every backend measures it for a sleeper (the guest's fio not for INT and CP)
            self.d_init.setdefault(measured, outcome.d_init_ns)
        if outcome.records:
            result = replace(outcome.records[0], repeat=point.repeat)
            return row(point, result), record(point, result)
        if outcome.refused:
            return refused_row(point, "; ".join(outcome.refused.values())), None
        raise DpasError(f"{point.target}: {point.mode} x{point.jobs} gave no record")


def sweep_of(point: Point, d_init_ns: int | None) -> Sweep:
    """The point as ``dpas bench --device`` (or ``dpas vm bench``) would run that one run;
    the engine's seed is the point's plus its repeat less one (repeat 1: bench's own)."""
    return Sweep(
        modes=(method(point),),
        rw=op(point),
        jobs=(point.jobs,),  # a workload's: its foreground's (grid.settled)
        cpus=cpus_of(point),
        runtime_s=point.runtime or 1.0,
        seed=(point.seed or 1) + point.repeat - 1,
        bs=bs_of(point),
        d_init_ns=d_init_ns,
        switch=switch(point),
        order=Order(point.order or "kernel"),
        workload=workload_of(point.workload),
    )


def _where(point: Point) -> Where:
    return (point.target, point.engine, point.kernel)


def _check_sweep(point: Point) -> Sweep:
    """What the data guard needs of a point: whether it writes, its block size and jobs (a
    workload's: its groups')."""
    return Sweep(
        rw=op(point), bs=bs_of(point), jobs=(point.jobs,), workload=workload_of(point.workload)
    )
