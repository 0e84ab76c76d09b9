"""One point of a grid: its RunConfig, simulated, as one flat row of the dataset and its
full record (results.json's, switch_stat and timeline included)."""

from __future__ import annotations

import functools
from dataclasses import asdict
from typing import Any

from dpas.bench.backend import Sweep
from dpas.bench.sweep import HYB_REFUSED, d_init_auto, run_seed
from dpas.policy import Adaptive, Op, Order, PasParams, Rules
from dpas.results import ROW_COLUMNS, RunResult, row_values
from dpas.sim import RunConfig, simulate
from dpas.sweep.grid import Point, bs_of, cpus_of, method, op, profile_of, switch, workload_of

#: a finished point: its row (settings and scalar results) and its full record (None: refused)
Finished = tuple[dict[str, Any], dict[str, Any] | None]
#: the RunResult's scalar fields, as columns (settings of the same name are the point's)
RESULT_COLUMNS = tuple(name for name, _, _ in ROW_COLUMNS)
#: a point its target could not run: why (the row's results are null)
REFUSED = "refused"


@functools.lru_cache(maxsize=4096)
def auto_d_init(spec: str, cpus: str, rw: Op, seed: int) -> int:
    """bench.sh's auto pas_d_init for this profile, placement, workload and seed (what it
    depends on, so one measurement serves every point that shares them)."""
    sweep = Sweep(rw=rw, cpus=cpus, seed=seed)
    return d_init_auto(profile_of(spec), sweep)


def d_init_of(point: Point) -> int:
    """A simulated point's pas_d_init in ns: as written, or auto."""
    if point.d_init != "auto":
        return int(point.d_init)
    assert point.profile is not None and point.seed is not None
    # a workload's point: measured as dpas bench --workload measures it (reads on CPU 0)
    return auto_d_init(point.profile, cpus_of(point), op(point), point.seed)


def config(point: Point, d_init_ns: int) -> RunConfig:
    """The point as the simulator's RunConfig. Its seed is run_seed's, as ``dpas bench``
    derives it (grid seed, mode, jobs, rw, repeat): independent of the order points run, and
    shared by points that differ only in a parameter, so their differences are not noise."""
    mode, rw = method(point), op(point)
    workload = workload_of(point.workload)  # steady: Workload(), bench.sh's run
    assert point.profile is not None and point.seed is not None and point.adaptive is not None
    assert point.up is not None and point.dn is not None and point.order and point.rules
    return RunConfig(
        profile_of(point.profile),
        mode,
        jobs=point.jobs,
        rw=rw,
        bs=bs_of(point),
        cpus=cpus_of(point),
        runtime_s=point.runtime if point.runtime is not None else 1.0,
        ios=point.ios,
        seed=run_seed(point.seed, mode, point.jobs, rw, point.repeat),
        repeat=point.repeat,
        pas=PasParams(
            d_init=d_init_ns,
            up_init=point.up,
            dn_init=point.dn,
            adaptive=Adaptive(point.adaptive),
        ),
        switch=switch(point),
        order=Order(point.order),
        rules=Rules.named(point.rules),
        workload=workload,
    )


def row(point: Point, result: RunResult) -> dict[str, Any]:
    """Every setting, the key, then the result's scalars (breakdown as bd_*; None where the
    mode has none). No wall-clock column: the same point gives the same row anywhere."""
    return {"key": point.key(), **asdict(point), REFUSED: None, **row_values(result)}


def refused_row(point: Point, why: str) -> dict[str, Any]:
    """A point its target refused (a mode its kernel lacks): the settings and why; a rerun
    does not try it again."""
    return {"key": point.key(), **asdict(point), REFUSED: why}


def record(point: Point, result: RunResult) -> dict[str, Any]:
    """The point's full record, as results.json keeps a run's, under its key."""
    return {"key": point.key(), **asdict(result)}


def finished(point: Point, result: RunResult) -> Finished:
    return row(point, result), record(point, result)


def run_point(point: Point, d_init_ns: int) -> Finished:
    """Simulate one point (in a worker): its row and its record."""
    if point.mode == "HYB":
        return refused_row(point, HYB_REFUSED), None
    return finished(point, simulate(config(point, d_init_ns)))
