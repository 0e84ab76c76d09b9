"""``dpas sweep GRID.toml``: every point of a grid, run on a pool or a dask cluster (real
points one at a time here), saved as a resumable Parquet dataset with the full records."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import click
from rich.console import Console

from dpas.cli.app import InputError, cli
from dpas.cli.options import (
    DEVICE_OPTIONS,
    check_out_dir,
    device_options,
    out_option,
    refuse_given,
    run_progress,
    scheduler_options,
)
from dpas.sweep import dataset, grid, schedulers
from dpas.sweep.run import RESULT_COLUMNS, d_init_of
from dpas.sweep.targets import RealOptions, RealPoints


@cli.command("sweep")
@click.argument("grid_path", metavar="GRID.toml", type=click.Path(path_type=Path))
@out_option(
    Path("sweep-results"),
    "Where points/ (Parquet), records/ (JSON lines), grid.toml and sweep.json go; a rerun "
    "resumes there.",
)
@scheduler_options
@click.option("--yes", is_flag=True, help="Run a grid of more than 1,000,000 points.")
@click.option(
    "--heatmap",
    "heatmap_spec",
    default=None,
    metavar="X,Y[,METRIC]",
    help="OUT/heatmap.png: METRIC's mean (default iops) on the grid of two settings it varies.",
)
@click.option("--front", "front_plot", is_flag=True, help="OUT/front.png: IOPS against CPU %.")
@device_options(
    "Allow the grid's writes (rw W) to a device or an existing file: what it holds is lost."
)
@click.pass_context
def sweep_command(
    ctx: click.Context,
    grid_path: Path,
    out_dir: Path,
    scheduler: str | None,
    workers_n: int | None,
    yes: bool,
    heatmap_spec: str | None,
    front_plot: bool,
    destroy_data: bool,
    fio_path: str,
    sysfs_root: Path,
) -> None:
    """Run every point of GRID.toml (settings as lists: their product, zip ties some).

    Each point is one run: simulated (on the pool or the cluster), or, where the grid names a
    target, on a device, a file or the QEMU guest (one at a time, here). Its row goes to
    OUT/points/ and its full record to OUT/records/ as it finishes. A rerun of the same grid
    runs only the points the dataset lacks.
    """
    try:
        text = grid_path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"{grid_path}: {getattr(err, 'strerror', None) or err}") from None
    the_grid = grid.parse(text, str(grid_path), yes)
    axes = _heatmap_axes(heatmap_spec, the_grid) if heatmap_spec is not None else None
    where = schedulers.parse(scheduler, workers_n)
    check_out_dir(out_dir, ("sweep.json", "grid.toml", "heatmap.png", "front.png"))
    dataset.check(out_dir, the_grid)  # another grid's folder: refused before a cluster starts
    real_points = [p for p in the_grid.points if not p.simulated]
    if all(p.target == "vm" for p in real_points):  # the guest's drive is its own
        refuse_given(ctx, DEVICE_OPTIONS, "to a grid without a device target")
    real = RealPoints(real_points, RealOptions(destroy_data, fio_path, sysfs_root))
    if len(real_points) == len(the_grid.points):  # nothing simulated: no cluster to start
        where = schedulers.Scheduler("pool", 1)
    console = Console()
    with schedulers.connected(where) as run, real.held():
        done = dataset.prepare(out_dir, the_grid)
        todo = [p for p in the_grid.points if p.key() not in done]
        on_targets = [p for p in todo if not p.simulated]
        start = time.monotonic()
        with run_progress(console, eta=True) as progress:
            task = progress.add_task("measuring d_init", total=len(todo))
            # auto d_init: once per profile, cpus, rw, seed
            tasks = [(p, d_init_of(p)) for p in todo if p.simulated]
            progress.update(task, description="running")
            writer = dataset.Writer(out_dir / "points")
            try:
                # the simulated points as they finish, then the real ones, one at a time
                finished = itertools.chain(run(tasks), real.run_all(on_targets))
                for row, record in finished:
                    writer.add(row, record)
                    what = f"last: {row['mode']} x{row['jobs']} on {row['target']}"
                    progress.update(task, advance=1, description=what)
            finally:
                writer.close()  # whatever ran is kept, Ctrl-C or not
    wall = time.monotonic() - start
    rate = f", {len(todo) / wall:.2f} points per wall second" if todo and wall > 0 else ""
    ran = [where.kind] if len(on_targets) < len(todo) else []
    ran += [f"{len(on_targets)} on their targets here"] if on_targets else []
    console.print(
        f"ran {len(todo)} points, skipped {len(the_grid.points) - len(todo)} already done, "
        f"wall {wall:.1f} s{rate} ({', '.join(ran) or where.kind}); wrote {out_dir / 'points'}",
        soft_wrap=True,
    )
    _figures(out_dir, axes, front_plot, console)


def _heatmap_axes(spec: str, the_grid: grid.Grid) -> tuple[str, str, str]:
    """--heatmap X,Y[,METRIC]: two settings the grid varies and a result column, checked
    before anything runs (a typo found after hours of points would waste them)."""
    parts = [p.strip() for p in spec.split(",")]
    if len(parts) not in (2, 3):
        raise InputError(f"--heatmap {spec}: expected X,Y or X,Y,METRIC")
    x, y, metric = parts[0], parts[1], parts[2] if len(parts) == 3 else "iops"
    varied = [s for s in grid.SETTINGS if len({getattr(p, s) for p in the_grid.points}) > 1]
    for name in (x, y):
        if name not in varied:
            raise InputError(
                f"--heatmap {spec}: {name!r} is not a setting this grid varies; expected one of "
                f"{', '.join(varied) or '(none: the grid varies nothing)'}"
            )
    if x == y:
        raise InputError(f"--heatmap {spec}: X and Y are the same setting; expected two")
    if metric not in RESULT_COLUMNS:
        raise InputError(
            f"--heatmap {spec}: {metric!r} is not a result; expected one of "
            f"{', '.join(RESULT_COLUMNS)}"
        )
    return x, y, metric


def _figures(
    out_dir: Path, axes: tuple[str, str, str] | None, front_plot: bool, console: Console
) -> None:
    """The figures from the whole dataset read back (a resumed sweep plots every point)."""
    if axes is None and not front_plot:
        return
    from dpas.reports import sweep_figures

    rows = [r for r in dataset.read(out_dir / "points") if r["refused"] is None]
    heat_rows = [r for r in rows if axes is not None and r[axes[2]] is not None]
    front_rows = [r for r in rows if r["iops"] is not None and r["cpu_pct"] is not None]
    for asked, option, drawn, measure in (
        (axes is not None, "--heatmap", heat_rows, axes[2] if axes else ""),
        (front_plot, "--front", front_rows, "iops and cpu_pct"),
    ):
        if asked and not drawn:
            raise InputError(
                f"{option}: nothing to draw: every point in {out_dir / 'points'} was refused "
                f"or has no {measure} (its rows are saved there)"
            )
    if axes is not None:
        sweep_figures.heatmap(heat_rows, *axes, out_dir / "heatmap.png")
        console.print(f"wrote {out_dir / 'heatmap.png'}")
    if front_plot:
        sweep_figures.front(front_rows, out_dir / "front.png")
        console.print(f"wrote {out_dir / 'front.png'}")
