"""``dpas sweep GRID.toml``: every point of a grid, run on a pool or a dask cluster, saved as
a resumable Parquet dataset."""

from __future__ import annotations

import time
from pathlib import Path

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from dpas.cli.app import InputError, cli
from dpas.cli.options import Number, check_out_dir
from dpas.sweep import dataset, grid, schedulers
from dpas.sweep.run import d_init_of


@cli.command("sweep")
@click.argument("grid_path", metavar="GRID.toml", type=click.Path(path_type=Path))
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("sweep-results"),
    show_default=True,
    help="Where points/ (Parquet), grid.toml and sweep.json go; a rerun resumes there.",
)
@click.option(
    "--scheduler",
    default=None,
    metavar="ADDRESS",
    help="local:N (a dask LocalCluster of N workers) or tcp://HOST:PORT (a running dask "
    "scheduler). Default: a process pool here.",
)
@click.option(
    "--workers",
    "workers_n",
    type=Number(1, 1024, integer=True),
    default=None,
    help="The pool's processes (default: every core).",
)
@click.option("--yes", is_flag=True, help="Run a grid of more than 1,000,000 points.")
def sweep_command(
    grid_path: Path, out_dir: Path, scheduler: str | None, workers_n: int | None, yes: bool
) -> None:
    """Run every point of GRID.toml (settings as lists: their product, zip ties some).

    Each point is one simulated run; its row (settings and results) goes to OUT/points/ as it
    finishes. A rerun of the same grid runs only the points the dataset lacks.
    """
    try:
        text = grid_path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"{grid_path}: {getattr(err, 'strerror', None) or err}") from None
    the_grid = grid.parse(text, str(grid_path), yes)
    where = schedulers.parse(scheduler, workers_n)
    check_out_dir(out_dir, ("sweep.json", "grid.toml"))
    dataset.check(out_dir, the_grid)  # another grid's folder: refused before a cluster starts
    console = Console()
    with schedulers.connected(where) as run:
        done = dataset.prepare(out_dir, the_grid)
        todo = [p for p in the_grid.points if p.key() not in done]
        start = time.monotonic()
        with _progress(console) as progress:
            task = progress.add_task("measuring d_init", total=len(todo))
            tasks = [(p, d_init_of(p)) for p in todo]  # auto: once per profile, cpus, rw, seed
            progress.update(task, description="running")
            writer = dataset.Writer(out_dir / "points")
            try:
                for row in run(tasks):
                    writer.add(row)
                    what = f"last: {row['mode']} x{row['jobs']}"
                    progress.update(task, advance=1, description=what)
            finally:
                writer.close()  # whatever ran is kept, Ctrl-C or not
    wall = time.monotonic() - start
    rate = f", {len(todo) / wall:.2f} points per wall second" if todo and wall > 0 else ""
    console.print(
        f"ran {len(todo)} points, skipped {len(the_grid.points) - len(todo)} already done, "
        f"wall {wall:.1f} s{rate} ({where.kind}); wrote {out_dir / 'points'}",
        soft_wrap=True,
    )


def _progress(console: Console) -> Progress:
    """Points done of points to run, with the time left."""
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )
