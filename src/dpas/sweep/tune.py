"""``dpas tune``: DPAS's settings searched with optuna, each trial a sweep point per job count.

Trials run in batches (optuna's ask/tell, --batch of them at once) on the sweep's schedulers;
a batch is told back in trial order, so the same seed and batch give the same trials whatever
the scheduler, its workers, and the order the points finish in. The defaults (and the
profile's published settings) are enqueued as the first trials: the best is never worse
than them.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from statistics import fmean
from typing import Any

import pyarrow as pa  # type: ignore[import-untyped]

from dpas.errors import DpasError
from dpas.sweep import dataset
from dpas.sweep.grid import Point, settled
from dpas.sweep.run import d_init_of
from dpas.sweep.schedulers import Runner

SCHEMA = "dpas.tune/2"
#: objective -> (the row's measure, maximised?)
OBJECTIVES = {"iops_per_cpu": True, "iops": True, "p99": False}
BOUND = re.compile(r"\s*p99_us\s*<=\s*([0-9]+(?:\.[0-9]*)?)\s*")
#: the searched settings: name -> (low, high), whole numbers; order a choice
RANGES: dict[str, tuple[int, int]] = {
    "param1": (0, 10),
    "param2": (5, 40),
    "param3": (5, 60),
    "param4": (0, 1),
    "param5": (10, 1000),
    "param6": (100, 10_000),
    "param7": (1000, 100_000),
    "d_init": (100, 20_000),
    "up": (1000, 100_000),
    "dn": (10_000, 500_000),
    "adaptive": (0, 2),
}
ORDERS = ("kernel", "guide")


class TuneError(DpasError):
    """A --bound or --objective that is not one (one line, exit 2)."""


def parse_bound(text: str | None) -> float | None:
    """--bound p99_us<=X: the p99 latency (µs) no job count may exceed."""
    if text is None:
        return None
    match = BOUND.fullmatch(text)
    if not match or not math.isfinite(float(match.group(1))) or float(match.group(1)) <= 0:
        raise TuneError(f"--bound {text}: expected p99_us<=X with X microseconds above 0")
    return float(match.group(1))


@dataclass(frozen=True, slots=True)
class Task:
    """What every trial shares: the workload and how it is scored."""

    profile: str
    jobs: tuple[int, ...]
    cpus: str
    runtime: float
    seed: int
    objective: str
    bound: float | None
    #: a workload (built-in or .toml) every trial runs under: its foreground is scored
    workload: str = "steady"

    def points(self, settings: dict[str, Any]) -> list[Point]:
        """One DPAS point per job count with these settings (d_init a number or "auto")."""
        base = Point(
            profile=self.profile,
            mode="DPAS",
            cpus=self.cpus,
            runtime=self.runtime,
            seed=self.seed,
            workload=self.workload,
        )
        given = {**settings, "d_init": str(settings.get("d_init", "auto"))}
        points = [settled(replace(base, jobs=j, **given)) for j in self.jobs]
        return list({p.key(): p for p in points}.values())  # a workload's: one point

    def score(self, rows: list[dict[str, Any]]) -> float:
        """The objective over the job counts: the mean; the worst value when a job count's
        p99 is above the bound (an infeasible trial never wins)."""
        if self.bound is not None and any(r["lat_p99_us"] > self.bound for r in rows):
            return -math.inf if OBJECTIVES[self.objective] else math.inf
        if self.objective == "iops_per_cpu":
            return fmean(r["iops"] / max(r["cpu_pct"], 1e-9) * 100 for r in rows)
        if self.objective == "iops":
            return fmean(r["iops"] for r in rows)
        return fmean(r["lat_p99_us"] for r in rows)


def defaults() -> dict[str, Any]:
    """SwitchParams() and PasParams() with d_init auto: the Point's own defaults."""
    point = Point()
    names = [*(f"param{i}" for i in range(1, 8)), "up", "dn", "adaptive", "order", "d_init"]
    return {n: getattr(point, n) for n in names}


def published(profile: str) -> dict[str, Any] | None:
    """The profile's [published] switch params and adaptive, the rest default."""
    from dpas.sweep.grid import profile_of

    pub = profile_of(profile).published
    if pub is None:
        return None
    return {**defaults(), **asdict(pub.switch), "adaptive": pub.adaptive}


def _suggest(trial: Any) -> dict[str, Any]:
    settings: dict[str, Any] = {k: trial.suggest_int(k, lo, hi) for k, (lo, hi) in RANGES.items()}
    settings["order"] = trial.suggest_categorical("order", ORDERS)
    return settings


def _searchable(settings: dict[str, Any], d_init_ns: int) -> dict[str, Any]:
    """Settings as a trial to enqueue: auto d_init as the number it measures, each within the
    searched ranges (a published value outside one is left to the sampler)."""
    fixed = {**settings, "d_init": d_init_ns}
    return {
        k: v
        for k, v in fixed.items()
        if k == "order" or (k in RANGES and RANGES[k][0] <= int(v) <= RANGES[k][1])
    }


def evaluate(task: Task, batch: list[dict[str, Any]], run: Runner) -> list[list[dict[str, Any]]]:
    """Each settings' rows, one a job count (points shared by two settings run once)."""
    per = [task.points(s) for s in batch]
    unique = {p.key(): p for points in per for p in points}
    rows = {r["key"]: r for r, _ in run([(p, d_init_of(p)) for p in unique.values()])}
    return [[rows[p.key()] for p in points] for points in per]


@dataclass(slots=True)
class Outcome:
    """Every trial (settings, rows, score), and the baselines scored the same way."""

    trials: list[tuple[dict[str, Any], list[dict[str, Any]], float]]
    defaults: tuple[dict[str, Any], float]
    published: tuple[dict[str, Any], float] | None

    def best(self, task: Task) -> int:
        """The best trial's index (the first of equals)."""
        sign = 1 if OBJECTIVES[task.objective] else -1
        return max(range(len(self.trials)), key=lambda i: (sign * self.trials[i][2], -i))


def search(task: Task, trials: int, batch: int, run: Runner) -> Outcome:
    """optuna's TPE, seeded, ``batch`` trials in flight; the baselines first."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=task.seed % 2**32)
    direction = (
        optuna.study.StudyDirection.MAXIMIZE
        if OBJECTIVES[task.objective]
        else optuna.study.StudyDirection.MINIMIZE
    )
    study = optuna.create_study(direction=direction, sampler=sampler)
    base = defaults()
    auto = d_init_of(task.points(base)[0])
    pub = published(task.profile)
    baselines = [base] + ([pub] if pub is not None else [])
    measured = evaluate(task, baselines, run)
    scored = [(s, task.score(rows)) for s, rows in zip(baselines, measured, strict=True)]
    for settings in baselines:
        study.enqueue_trial(_searchable(settings, auto))
    done: list[tuple[dict[str, Any], list[dict[str, Any]], float]] = []
    while len(done) < trials:
        asked = [study.ask() for _ in range(min(batch, trials - len(done)))]
        batch_settings = [_suggest(t) for t in asked]
        batch_rows = evaluate(task, batch_settings, run)
        for t, s, rows in zip(asked, batch_settings, batch_rows, strict=True):
            value = task.score(rows)
            study.tell(t, value)
            done.append((s, rows, value))
    return Outcome(done, scored[0], scored[1] if pub is not None else None)


TRIAL_SCHEMA = dataset.ARROW_SCHEMA.append(pa.field("trial", pa.int64())).append(
    pa.field("objective", pa.float64())
)


def save(out: Path, task: Task, outcome: Outcome, config: dict[str, Any]) -> dict[str, Any]:
    """OUT/trials/part-00000.parquet (every trial's rows, its number and objective) and
    OUT/tune.json, each written whole under a temporary name, then renamed."""
    rows = [
        {**r, "trial": i, "objective": value}
        for i, (_, trial_rows, value) in enumerate(outcome.trials)
        for r in trial_rows
    ]
    folder = out / "trials"
    folder.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pylist(rows, schema=TRIAL_SCHEMA)
    dataset.write_table(table, folder / "part-00000.parquet")
    best = outcome.best(task)
    record = {
        "schema": SCHEMA,
        "config": config,
        "best": {"trial": best, **_entry(outcome.trials[best][0], outcome.trials[best][2])},
        "defaults": _entry(*outcome.defaults),
        "published": _entry(*outcome.published) if outcome.published else None,
        "trials": len(outcome.trials),
    }
    dataset.write_whole(out / "tune.json", (json.dumps(record, indent=1) + "\n").encode())
    return record


def _entry(settings: dict[str, Any], value: float) -> dict[str, Any]:
    """Settings and objective as JSON (an infeasible objective, infinite, as null)."""
    return {"settings": settings, "objective": value if math.isfinite(value) else None}
