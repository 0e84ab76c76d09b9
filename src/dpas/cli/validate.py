"""``dpas validate``: each profile's published grid, simulated and compared with its table;
with ``--against FILE``, also the grid of a user's table (another block size, other job counts)
for every profile whose [published] drive it gives."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, TypeAlias

import click
from rich.console import Console

from dpas.bench.backend import Sweep
from dpas.bench.published import published_sweep
from dpas.bench.sweep import HYB_REFUSED, d_init_auto, plan, run_all
from dpas.cli.app import InputError, cli
from dpas.cli.options import Number, check_out_dir, out_option, run_progress
from dpas.limits import MAX_REPEATS, MAX_SEED, runtime_range
from dpas.policy import Method
from dpas.reports.published import PublishedValues, Table, published_values, read_table
from dpas.reports.validation import (
    CPU_TOLERANCE_PTS,
    IOPS_TOLERANCE_PCT,
    Against,
    Comparison,
    compare,
    comparison_record,
    document,
    print_comparison,
    source,
    write_csv,
)
from dpas.results import RunResult
from dpas.sim import Profile, RunConfig, load
from dpas.sim.profile import Published, shipped
from dpas.sizes import show_size

OUT_JSON, OUT_CSV = "validate.json", "validate.csv"

#: the (mode, jobs) cells of a grid to run; None: every cell of its Sweep
Only: TypeAlias = frozenset[tuple[Method, int]] | None


@dataclass(frozen=True, slots=True)
class Grid:
    """One comparison to make: a profile, the table's cells for its drive, the sweep that
    covers them and the cells of it to run (None: all); ``against`` for a user's table."""

    profile: Profile
    values: PublishedValues
    sweep: Sweep
    only: Only = None
    against: Against | None = None


@cli.command("validate")
@click.option(
    "--profile",
    "specs",
    multiple=True,
    metavar="NAME_OR_PATH",
    help="A profile with a [published] section (a shipped name or a TOML file); repeat for "
    "more. Default: every shipped profile that has one.",
)
@click.option(
    "--runtime",
    "runtime_s",
    type=Number(*runtime_range("sim")),
    default=1.0,
    show_default=True,
    help="Simulated seconds per run (the published runs were longer: [published] runtime_s).",
)
@click.option(
    "--repeats",
    type=Number(1, MAX_REPEATS, integer=True),
    default=1,
    show_default=True,
    help="Runs per cell; the cell is their mean.",
)
@click.option("--seed", type=Number(0, MAX_SEED, integer=True), default=1, show_default=True)
@click.option(
    "--against",
    "against_paths",
    multiple=True,
    type=click.Path(path_type=Path),
    metavar="FILE",
    help="Also compare with this table (JSON, the shape of the shipped paper_4k_randread, "
    'with its block size as "bs"): each drive in it, on the profiles whose [published] '
    "device it is, after the profiles' own tables; repeat for more (docs/validate.md).",
)
@out_option(
    Path("validate-results"),
    "Where validate.json, validate.csv and one PROFILE.png per profile (and "
    "PROFILE-against-FILE.png per --against table) go.",
)
def validate_command(
    specs: tuple[str, ...],
    runtime_s: float,
    repeats: int,
    seed: int,
    against_paths: tuple[Path, ...],
    out_dir: Path,
) -> None:
    """The simulator against the published tables its profiles were calibrated on.

    Runs each profile's published grid (its modes, job counts, CPU placement and switch
    params, bench.sh's auto d_init) and prints, per mode and job count, the model's IOPS and
    CPU % beside the table's, with the error; * marks the cells the profile was fitted to.
    With --against FILE, then each profile against that table's cells for its drive too.
    """
    profiles = chosen(specs)
    base = Sweep(repeats=repeats, runtime_s=runtime_s, seed=seed)  # d_init auto, as bench.sh
    grids = [  # a drive the table lacks, a bad --against table: before any run
        Grid(p, _values(p), published_sweep(_published(p), base)) for p in profiles
    ]
    paths = list(dict.fromkeys(against_paths))
    grids += against_grids(profiles, [read_table(path) for path in paths], base)
    figures = figure_names(grids)
    check_out_dir(out_dir, (OUT_JSON, OUT_CSV, *figures))
    console = Console()
    d_inits, results = run_grids(
        [g.profile for g in grids], [g.sweep for g in grids], console, [g.only for g in grids]
    )
    records = [[asdict(r) for r in rs] for rs in results]
    comparisons = [
        compare(g.profile.name, _published(g.profile), g.values, rs, g.against, g.profile.support)
        for g, rs in zip(grids, records, strict=True)
    ]
    config = {
        "profiles": list(dict.fromkeys(specs)) or [p.name for p in profiles],
        **({"against": [str(p) for p in paths]} if paths else {}),
        "runtime_s": runtime_s,
        "repeats": repeats,
        "seed": seed,
        "tolerance": {"iops_pct": IOPS_TOLERANCE_PCT, "cpu_pts": CPU_TOLERANCE_PTS},
    }
    entries = [
        {
            **comparison_record(c),
            "parameters": g.profile.parameters(),
            "sweep": g.sweep.record(),
            "d_init_ns": d,
            "records": rs,
        }
        for c, g, d, rs in zip(comparisons, grids, d_inits, records, strict=True)
    ]
    save(out_dir, document(config, entries), comparisons)  # before the screen and the figures
    show(console, comparisons, [g.sweep for g in grids], d_inits)
    draw(comparisons, [out_dir / f for f in figures], runtime_s, repeats)
    written = [out_dir / OUT_JSON, out_dir / OUT_CSV, *(out_dir / f for f in figures)]
    console.print("wrote " + ", ".join(str(p) for p in written), soft_wrap=True)


def save(out_dir: Path, doc: dict[str, Any], comparisons: list[Comparison]) -> None:
    """validate.json (the records with their comparison), then the cells as CSV."""
    (out_dir / OUT_JSON).write_text(json.dumps(doc, indent=1, allow_nan=False))
    write_csv(comparisons, out_dir / OUT_CSV)


def chosen(specs: Sequence[str]) -> list[Profile]:
    """The profiles of --profile (each once), or every shipped one with [published]; a profile
    without [published] cannot be validated, and is refused by name."""
    if not specs:
        found = [p for p in (load(n) for n in shipped()) if p.published is not None]
        if not found:
            raise InputError("no shipped profile has a [published] section: give --profile FILE")
        return found
    profiles = []
    for spec in dict.fromkeys(specs):
        profile = load(spec)
        if profile.published is None:
            raise InputError(
                f"--profile {spec}: has no [published] section to validate against; "
                f"expected one that has (shipped: {', '.join(with_published())})"
            )
        profiles.append(profile)
    return profiles


def with_published() -> list[str]:
    """The shipped profiles that name their published table."""
    return [n for n in shipped() if load(n).published is not None]


def _published(profile: Profile) -> Published:
    """The [published] section ``chosen`` made sure of."""
    if profile.published is None:  # pragma: no cover - chosen() refused it
        raise InputError(f"profile {profile.name}: has no [published] section")
    return profile.published


def _values(profile: Profile) -> PublishedValues:
    published = _published(profile)
    return published_values(published.table, published.device, profile.name)


def against_grids(profiles: list[Profile], tables: list[Table], base: Sweep) -> list[Grid]:
    """Per --against table and drive in it, one Grid per chosen profile whose [published]
    device the drive is: the table's modes and job counts (only the cells it gives run) at
    its bs, with the profile's published CPU placement, switch params and adaptive. A drive
    no chosen profile names, or a mode the simulator cannot run, is refused by name."""
    grids = []
    for table in tables:
        at = f"--against {table.name}: "
        for device, values in table.devices.items():
            runs_it = [p for p in profiles if _published(p).device == device]
            if not runs_it:
                named = sorted({_published(p).device for p in profiles} - {""})
                raise InputError(
                    f"{at}device {device!r}: no profile chosen runs it; expected the "
                    f"[published] device of one ({', '.join(named) or 'none'}; --profile "
                    "chooses others)"
                )
            cells = list(dict.fromkeys([*values.kiops, *values.cpu_pct]))
            present = {mode for mode, _ in cells}
            if Method.HYB.value in present:
                raise InputError(f"{at}devices.{device}: HYB: {HYB_REFUSED}; leave its cells out")
            order = dict.fromkeys([*table.modes, *(mode for mode, _ in cells)])  # the table's
            modes = tuple(Method(m) for m in order if m in present)
            jobs = tuple(sorted({j for _, j in cells}))
            sweep = replace(base, bs=table.bs)
            only = frozenset((Method(m), j) for m, j in cells)
            against = Against(table.name, table.bs)
            for profile in runs_it:
                grid = published_sweep(_published(profile), sweep, modes=modes, jobs=jobs)
                grids.append(Grid(profile, values, grid, only, against))
    return grids


def _safe(name: str, empty: str) -> str:
    """A name made safe for a file: anything but letters, digits, ., _ and - made _."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or empty


def figure_names(grids: list[Grid]) -> list[str]:
    """PROFILE.png per profile, PROFILE-against-FILESTEM.png per --against comparison, the
    names made safe for a file; two that would share a figure are refused: two profiles of one
    name (their cells could not be told apart either), two tables of one file name."""
    names = []
    for grid in grids:
        name = _safe(grid.profile.name, "profile")
        if grid.against is not None:
            name += "-against-" + _safe(Path(grid.against.file).stem, "table")
        names.append(name)
    for i, name in enumerate(names):
        if name not in names[:i]:
            continue
        first = grids[names.index(name)]
        files = [g.against.file for g in (first, grids[i]) if g.against is not None]
        if not files:
            raise InputError(
                f"--profile: two profiles are named {grids[i].profile.name!r} "
                f"({first.profile.name!r}): expected each under its own name"
            )
        raise InputError(
            f"--against {', '.join(files)}: two comparisons would be drawn as {name}.png; "
            "expected tables whose file names differ"
        )
    return [f"{n}.png" for n in names]


def run_grids(
    profiles: list[Profile],
    sweeps: list[Sweep],
    console: Console,
    only: Sequence[Only] | None = None,
) -> tuple[list[int], list[list[RunResult]]]:
    """Every grid's runs in one pool (so both cores stay busy to the end, whichever grid's
    runs are left), under one progress bar; the records come back per grid. ``only``, per
    grid: the (mode, jobs) cells of its sweep to run (None: all of them)."""
    cells = list(only) if only is not None else [None] * len(sweeps)

    def kept(runs: list[RunConfig], keep: Only) -> list[RunConfig]:
        return [r for r in runs if keep is None or (r.method, r.jobs) in keep]

    def count(sweep: Sweep, keep: Only) -> int:
        return sum(keep is None or (m, j) in keep for m, j, _ in sweep.runs())

    with run_progress(console) as progress:
        total = sum(count(s, k) for s, k in zip(sweeps, cells, strict=True))
        task = progress.add_task("d_init", total=total)
        d_inits = []
        for profile, sweep in zip(profiles, sweeps, strict=True):
            progress.update(task, description=f"{profile.name}: measuring d_init")
            d_inits.append(d_init_auto(profile, sweep))
        plans = [
            kept(plan(p, s, d), k)
            for p, s, d, k in zip(profiles, sweeps, d_inits, cells, strict=True)
        ]
        progress.update(task, description="running")

        def done(run: RunConfig) -> None:
            what = f"{run.profile.name} {run.method.value} x{run.jobs}"
            progress.update(task, advance=1, description=f"running (last: {what})")

        results = run_all([run for runs in plans for run in runs], done)
    split, start = [], 0
    for runs in plans:
        split.append(results[start : start + len(runs)])
        start += len(runs)
    return d_inits, split


def show(
    console: Console, comparisons: list[Comparison], sweeps: list[Sweep], d_inits: list[int]
) -> None:
    """Per comparison, a blank line apart: how it ran, the table of cells, the summary line."""
    for i, (comparison, sweep) in enumerate(zip(comparisons, sweeps, strict=True)):
        if i:
            console.print()
        where = "CPU 0" if sweep.cpus == "0" else "one CPU each"
        if comparison.against is None:
            what = f"{comparison.profile}: jobs on {where}"
            published = f" (published: {comparison.published.runtime_s:g} s)"
        else:
            against = comparison.against
            what = (
                f"{comparison.profile} against {against.file}: bs {show_size(against.bs)}, "
                f"jobs on {where}"
            )
            published = ""
        console.print(
            f"{what}, {sweep.runtime_s:g} s x {sweep.repeats} per cell{published}, "
            f"pas_d_init {d_inits[i]} ns (auto)",
            soft_wrap=True,
        )
        print_comparison(console, comparison)


def draw(comparisons: list[Comparison], paths: list[Path], runtime_s: float, repeats: int) -> None:
    """One figure per comparison, after the records are saved."""
    from dpas.reports.validation_figure import plot_comparison

    for comparison, path in zip(comparisons, paths, strict=True):
        title = (
            f"dpas validate: {comparison.profile} (simulated, {runtime_s:g} s x {repeats}) "
            f"against {source(comparison)}"
        )
        plot_comparison(comparison, path, title)
