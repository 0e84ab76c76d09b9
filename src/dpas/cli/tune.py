"""``dpas tune --profile NAME``: DPAS's settings searched with optuna on the simulator."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from dpas.cli.app import InputError, cli
from dpas.cli.options import (
    Number,
    check_out_dir,
    given,
    out_option,
    refuse_with_workload,
    scheduler_options,
)
from dpas.limits import MAX_JOBS, runtime_range
from dpas.sweep import grid, schedulers, tune

SHOWN = (*(f"param{i}" for i in range(1, 8)), "d_init", "up", "dn", "adaptive", "order")


def _jobs(text: str) -> tuple[int, ...]:
    """--jobs 1,4: job counts from 1 to MAX_JOBS."""
    try:
        jobs = tuple(int(j) for j in text.split(","))
    except ValueError:
        jobs = ()
    if not jobs or not all(1 <= j <= MAX_JOBS for j in jobs):
        raise InputError(f"--jobs {text}: expected job counts from 1 to {MAX_JOBS}, like 1,4")
    return tuple(dict.fromkeys(jobs))


@cli.command("tune")
@click.option("--profile", "profile", required=True, help="A shipped profile or a TOML path.")
@click.option("--jobs", "jobs_text", default="1", show_default=True, help="Job counts, like 1,4.")
@click.option("--cpus", type=click.Choice(["0", "split"]), default="0", show_default=True)
@click.option(
    "--objective",
    type=click.Choice(list(tune.OBJECTIVES)),
    default="iops_per_cpu",
    show_default=True,
    help="iops_per_cpu and iops are maximised, p99 (µs) minimised; means over --jobs.",
)
@click.option("--bound", default=None, metavar="p99_us<=X", help="Infeasible above this p99.")
@click.option("--trials", type=Number(1, 100_000, integer=True), default=50, show_default=True)
@click.option(
    "--runtime",
    type=Number(*runtime_range("sim")),
    default=0.2,
    show_default=True,
    help="Simulated seconds a point.",
)
@click.option("--seed", type=Number(0, 2**32 - 1, integer=True), default=1, show_default=True)
@click.option(
    "--workload",
    "workload_name",
    default="steady",
    show_default=True,
    metavar="NAME|FILE.toml",
    help="Every trial under this workload (docs/workloads.md), its foreground scored; it fixes "
    "the jobs and CPUs, and its runtime_s is the default --runtime.",
)
@scheduler_options
@click.option(
    "--batch",
    type=Number(1, 1024, integer=True),
    default=4,
    show_default=True,
    help="Trials asked at once (run in parallel): the same batch and seed give the same "
    "trials whatever the scheduler and its workers.",
)
@out_option(Path("tune-results"), "Where trials/ (Parquet), tune.json and front.png go.")
@click.pass_context
def tune_command(
    ctx: click.Context,
    profile: str,
    jobs_text: str,
    cpus: str,
    objective: str,
    bound: str | None,
    trials: float,
    runtime: float,
    seed: float,
    workload_name: str,
    scheduler: str | None,
    workers_n: int | None,
    batch: int,
    out_dir: Path,
) -> None:
    """Search DPAS's switch params, d_init, up/dn, adaptive and order for the best objective.

    Every trial runs one DPAS point per job count; the defaults (and the profile's published
    settings) are the first trials. Writes OUT/trials/ (Parquet), OUT/tune.json, OUT/front.png.
    """
    grid.CHECKS["profile"]("--profile", profile)  # a missing profile: one line, exit 2
    limit = tune.parse_bound(bound)
    grid.CHECKS["workload"]("--workload", workload_name)  # one line, exit 2
    jobs = _jobs(jobs_text)
    if workload_name != "steady":
        refuse_with_workload(ctx)
        workload = grid.workload_of(workload_name)
        jobs = (workload.foreground_jobs,)
        if not given(ctx, "runtime") and workload.runtime_s is not None:
            runtime = workload.runtime_s
    task = tune.Task(
        profile, jobs, cpus, float(runtime), int(seed), objective, limit, workload_name
    )
    where = schedulers.parse(scheduler, workers_n)
    check_out_dir(out_dir, ("tune.json", "front.png"))
    console = Console()
    with schedulers.connected(where) as run, console.status("tuning"):
        outcome = tune.search(task, int(trials), int(batch), run)
    config = {**_fields(task), "jobs": list(task.jobs), "trials": int(trials), "batch": int(batch)}
    config["scheduler"] = where.kind
    record = tune.save(out_dir, task, outcome, config)  # saved before the figure and table
    from dpas.reports import sweep_figures

    sweep_figures.front([r for _, rows, _ in outcome.trials for r in rows], out_dir / "front.png")
    console.print(_table(record, objective))
    console.print(f"wrote {out_dir / 'trials'}, {out_dir / 'tune.json'}, {out_dir / 'front.png'}")


def _fields(task: tune.Task) -> dict[str, Any]:
    return {n: getattr(task, n) for n in tune.Task.__dataclass_fields__}


def _table(record: dict[str, Any], objective: str) -> Table:
    """The best trial against the defaults and the published settings, setting by setting."""
    table = Table(title=f"dpas tune: {objective} over {record['trials']} trials")
    columns = [("best", record["best"]), ("defaults", record["defaults"])]
    if record["published"] is not None:
        columns.append(("published", record["published"]))
    table.add_column("setting")
    for name, _ in columns:
        table.add_column(name, justify="right")
    for setting in SHOWN:
        table.add_row(setting, *(str(c["settings"][setting]) for _, c in columns))
    table.add_row(objective, *(_value(c["objective"]) for _, c in columns), style="bold")
    return table


def _value(value: float | None) -> str:
    return "infeasible" if value is None or not math.isfinite(value) else f"{value:,.1f}"
