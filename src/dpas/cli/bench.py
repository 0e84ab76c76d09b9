"""``dpas bench``: bench.sh's sweep and tables, on the simulated host and device."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from dpas.bench.sweep import ALL_MODES, BenchConfig, d_init_auto, plan, results_record, run_all
from dpas.cli.app import InputError, cli
from dpas.cli.options import switch_options
from dpas.policy import Method, Op, Order, SwitchParams
from dpas.reports.bench import mode_tables, plot, write_csv
from dpas.sim import ProfileError, RunConfig, load

BENCH_MODES = ("INT", "CP", "LHP", "PAS", "DPAS", "EHP")


def parse_words(words: tuple[str, ...]) -> tuple[tuple[Method, ...], Op, int]:
    """bench.sh's arguments, in any order: modes (or ALL), R or W, and a repeat count."""
    modes: list[Method] = []
    rw: Op | None = None
    repeats: int | None = None
    for word in words:
        key = word.upper()
        if key == "ALL":
            modes += [m for m in ALL_MODES if m not in modes]
        elif key in BENCH_MODES:
            mode = Method.parse(key)
            if mode not in modes:
                modes.append(mode)
        elif key in ("R", "W"):
            if rw is not None:
                raise InputError(f"{word!r}: R or W was given twice")
            rw = Op.parse(key)
        elif word.isdigit() and int(word) > 0:
            if repeats is not None:
                raise InputError(f"{word!r}: the repeat count was given twice")
            repeats = int(word)
        else:
            raise InputError(
                f"{word!r}: expected modes ({' '.join(BENCH_MODES)} or ALL), R or W, "
                "or a repeat count"
            )
    return tuple(modes) or ALL_MODES, rw or Op.READ, repeats or 1


def parse_jobs(text: str) -> tuple[int, ...]:
    try:
        jobs = tuple(int(j) for j in text.split(","))
    except ValueError:
        jobs = ()
    if not jobs or min(jobs) < 1:
        raise InputError(f"--jobs {text}: expected job counts such as 1,2,4,8,16")
    return tuple(dict.fromkeys(jobs))


def parse_d_init(text: str) -> int | None:
    if text == "auto":
        return None
    if text.isdigit() and int(text) > 0:
        return int(text)
    raise InputError(f"--d-init {text}: expected auto or a number of ns > 0")


@cli.command("bench", context_settings={"ignore_unknown_options": False})
@click.argument("words", nargs=-1, metavar="[INT CP LHP PAS DPAS EHP | ALL] [R|W] [REPEATS]")
@click.option(
    "--jobs",
    "jobs_text",
    default="1,2,4,8,16",
    show_default=True,
    help="Job counts to sweep (fio numjobs).",
)
@click.option(
    "--profile",
    "profile_name",
    default="qemu-lab",
    show_default=True,
    help="A shipped profile name or a profile TOML file.",
)
@click.option(
    "--cpus",
    type=click.Choice(["0", "split"]),
    default="0",
    show_default=True,
    help="0: every job on CPU 0 (the lab); split: one CPU per job (the paper).",
)
@click.option(
    "--runtime",
    type=click.FloatRange(min=0, min_open=True),
    default=1.0,
    show_default=True,
    help="Simulated seconds per run.",
)
@click.option(
    "--ios",
    type=click.IntRange(min=1),
    default=None,
    help="Stop each run after this many I/Os instead of --runtime.",
)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option(
    "--d-init",
    "d_init_text",
    default="auto",
    show_default=True,
    help="pas_d_init in ns, or auto: a tenth of a first short run's mean latency.",
)
@switch_options
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("bench-results"),
    show_default=True,
    help="Where results.json, results.csv and bench.png go.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the records as JSON.")
def bench_command(
    words: tuple[str, ...],
    jobs_text: str,
    profile_name: str,
    cpus: str,
    runtime: float,
    ios: int | None,
    seed: int,
    d_init_text: str,
    order: str,
    out_dir: Path,
    as_json: bool,
    **switch: int,
) -> None:
    """The lab's benchmark: every mode at every job count, 4 KiB random I/O at depth 1.

    Runs on the simulated host and device of --profile (default: the lab's QEMU guest) and
    prints bench.sh's table per mode; results.json, results.csv and bench.png go to --out.
    """
    modes, rw, repeats = parse_words(words)
    try:
        profile = load(profile_name)
    except ProfileError as err:
        raise InputError(str(err)) from None
    config = BenchConfig(
        profile=profile,
        modes=modes,
        rw=rw,
        repeats=repeats,
        jobs=parse_jobs(jobs_text),
        cpus=cpus,
        runtime_s=runtime,
        ios=ios,
        seed=seed,
        d_init_ns=parse_d_init(d_init_text),
        switch=SwitchParams(**switch),
        order=Order(order),
    )
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(f"--out {out_dir}: {err.strerror or err}") from None
    console = Console(stderr=as_json)
    d_init = config.d_init_ns if config.d_init_ns is not None else d_init_auto(config)
    runs = plan(config, d_init)
    results = _run_with_progress(runs, console)
    record = results_record(config, d_init, results)
    (out_dir / "results.json").write_text(json.dumps(record, indent=1))
    write_csv(record["records"], out_dir / "results.csv")
    if as_json:
        click.echo(json.dumps(record, indent=1))
    else:
        console.print(
            f"profile {profile.name}, {'read' if rw is Op.READ else 'write'} 4 KiB, "
            f"jobs on {'CPU 0' if cpus == '0' else 'one CPU each'}, "
            f"{runtime if ios is None else ios} {'s' if ios is None else 'I/Os'} per run, "
            f"pas_d_init {d_init} ns{' (auto)' if config.d_init_ns is None else ''}"
        )
        for table in mode_tables(record["records"]):
            console.print(table)
    figure = out_dir / "bench.png"
    plot(record["records"], figure, f"dpas bench on {profile.name} (simulated)")
    console.print(f"wrote {out_dir / 'results.json'}, {out_dir / 'results.csv'}, {figure}")


def _run_with_progress(runs: list[RunConfig], console: Console) -> list:  # type: ignore[type-arg]
    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("simulating", total=len(runs))

        def done(run: RunConfig) -> None:
            progress.update(
                task, advance=1, description=f"simulating (last: {run.method.value} x{run.jobs})"
            )

        return run_all(runs, done)
