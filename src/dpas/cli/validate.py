"""``dpas validate``: each profile's published grid, simulated and compared with its table."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from dpas.bench.backend import Sweep
from dpas.bench.published import published_sweep
from dpas.bench.sweep import d_init_auto, plan, run_all
from dpas.cli.app import InputError, cli
from dpas.cli.options import Number, check_out_dir, out_option, run_progress
from dpas.limits import MAX_REPEATS, MAX_SEED, MAX_SIM_RUNTIME_S
from dpas.reports.published import PublishedValues, published_values
from dpas.reports.validation import (
    CPU_TOLERANCE_PTS,
    IOPS_TOLERANCE_PCT,
    Comparison,
    compare,
    comparison_record,
    document,
    print_comparison,
    write_csv,
)
from dpas.results import RunResult
from dpas.sim import Profile, RunConfig, load
from dpas.sim.profile import Published, shipped

OUT_JSON, OUT_CSV = "validate.json", "validate.csv"


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
    type=Number(0, MAX_SIM_RUNTIME_S, above=True),
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
@out_option(
    Path("validate-results"),
    "Where validate.json, validate.csv and one PROFILE.png per profile go.",
)
def validate_command(
    specs: tuple[str, ...], runtime_s: float, repeats: int, seed: int, out_dir: Path
) -> None:
    """The simulator against the published tables its profiles were calibrated on.

    Runs each profile's published grid (its modes, job counts, CPU placement and switch
    params, bench.sh's auto d_init) and prints, per mode and job count, the model's IOPS and
    CPU % beside the table's, with the error; * marks the cells the profile was fitted to.
    """
    profiles = chosen(specs)
    values = [_values(p) for p in profiles]  # a drive the table lacks: before any run
    figures = figure_names(profiles)
    check_out_dir(out_dir, (OUT_JSON, OUT_CSV, *figures))
    grid = Sweep(repeats=repeats, runtime_s=runtime_s, seed=seed)  # d_init auto, as bench.sh
    sweeps = [published_sweep(_published(p), grid) for p in profiles]
    console = Console()
    d_inits, results = run_grids(profiles, sweeps, console)
    records = [[asdict(r) for r in rs] for rs in results]
    comparisons = [
        compare(p.name, _published(p), v, rs)
        for p, v, rs in zip(profiles, values, records, strict=True)
    ]
    config = {
        "profiles": list(dict.fromkeys(specs)) or [p.name for p in profiles],
        "runtime_s": runtime_s,
        "repeats": repeats,
        "seed": seed,
        "tolerance": {"iops_pct": IOPS_TOLERANCE_PCT, "cpu_pts": CPU_TOLERANCE_PTS},
    }
    entries = [
        {
            **comparison_record(c),
            "parameters": p.parameters(),
            "sweep": s.record(),
            "d_init_ns": d,
            "records": rs,
        }
        for c, p, s, d, rs in zip(comparisons, profiles, sweeps, d_inits, records, strict=True)
    ]
    save(out_dir, document(config, entries), comparisons)  # before the screen and the figures
    show(console, comparisons, sweeps, d_inits)
    draw(comparisons, [out_dir / f for f in figures], runtime_s, repeats)
    paths = [out_dir / OUT_JSON, out_dir / OUT_CSV, *(out_dir / f for f in figures)]
    console.print("wrote " + ", ".join(str(p) for p in paths), soft_wrap=True)


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


def figure_names(profiles: list[Profile]) -> list[str]:
    """PROFILE.png per profile, the name made safe for a file; two profiles that would share
    a figure (the same name) are refused: their cells could not be told apart either."""
    names = [re.sub(r"[^A-Za-z0-9._-]+", "_", p.name).strip("._") or "profile" for p in profiles]
    for i, name in enumerate(names):
        if name in names[:i]:
            first = profiles[names.index(name)].name
            raise InputError(
                f"--profile: two profiles are named {profiles[i].name!r} ({first!r}): "
                "expected each under its own name"
            )
    return [f"{n}.png" for n in names]


def run_grids(
    profiles: list[Profile], sweeps: list[Sweep], console: Console
) -> tuple[list[int], list[list[RunResult]]]:
    """Every profile's runs in one pool (so both cores stay busy to the end, whichever
    profile's runs are left), under one progress bar; the records come back per profile."""
    with run_progress(console) as progress:
        task = progress.add_task("d_init", total=sum(len(s.runs()) for s in sweeps))
        d_inits = []
        for profile, sweep in zip(profiles, sweeps, strict=True):
            progress.update(task, description=f"{profile.name}: measuring d_init")
            d_inits.append(d_init_auto(profile, sweep))
        plans = [plan(p, s, d) for p, s, d in zip(profiles, sweeps, d_inits, strict=True)]
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
    """Per profile, a blank line apart: how it ran, the table of cells, the summary line."""
    for i, (comparison, sweep) in enumerate(zip(comparisons, sweeps, strict=True)):
        if i:
            console.print()
        where = "CPU 0" if sweep.cpus == "0" else "one CPU each"
        console.print(
            f"{comparison.profile}: jobs on {where}, {sweep.runtime_s:g} s x {sweep.repeats} "
            f"per cell (published: {comparison.published.runtime_s:g} s), "
            f"pas_d_init {d_inits[i]} ns (auto)",
            soft_wrap=True,
        )
        print_comparison(console, comparison)


def draw(comparisons: list[Comparison], paths: list[Path], runtime_s: float, repeats: int) -> None:
    """One figure per profile, after the records are saved."""
    from dpas.reports.validation_figure import plot_comparison

    for comparison, path in zip(comparisons, paths, strict=True):
        values = comparison.values
        source = values.table + (f"/{values.device}" if values.device else "")
        title = (
            f"dpas validate: {comparison.profile} (simulated, {runtime_s:g} s x {repeats}) "
            f"against {source}"
        )
        plot_comparison(comparison, path, title)
