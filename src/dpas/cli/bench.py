"""``dpas bench``: bench.sh's sweep and tables, on the simulated host and device."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypeVar

import click
from click.core import ParameterSource
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from dpas.bench.sweep import BenchConfig, d_init_auto, plan, results_record, run_all
from dpas.cli.app import InputError, cli
from dpas.cli.options import (
    BLOCK_SIZE,
    Number,
    check_out_dir,
    parse_cpus,
    parse_d_init,
    parse_jobs,
    parse_number,
    parse_rw,
    parse_words,
    switch_options,
)
from dpas.limits import MAX_IOS, MAX_REAL_RUNTIME_S, MAX_REPEATS, MAX_SEED, MAX_SIM_RUNTIME_S
from dpas.policy import Op, Order, SwitchParams
from dpas.real.executor import LocalExecutor
from dpas.real.runner import Interrupted, RealConfig, Runner
from dpas.reports.bench import mode_tables, plot, write_csv
from dpas.sim import SCHEMA, load

T = TypeVar("T")

SIZE = re.compile(r"([0-9]{1,16})([kmgt]?)(?:i?b)?")
MAX_SIZE = 1 << 40


def parse_size(text: str, bs: int) -> int:
    """A size as fio writes one (256m, 1g, 4096; k, m, g, t in powers of 1024)."""
    found = SIZE.fullmatch(text.strip().lower())
    accepted = f"expected a size such as 256m or 1g, from {bs} bytes to 1 TiB"
    if found is None:
        raise InputError(f"--size {text!r}: {accepted}")
    size = int(found[1]) * 1024 ** " kmgt".index(found[2] or " ")
    if not bs <= size <= MAX_SIZE:
        raise InputError(f"--size {text}: {accepted}")
    return size // bs * bs


#: what only the simulator reads, and what only a real run (--device) reads
SIM_ONLY = ("ios", "profile_name", "seed", "order")
REAL_ONLY = ("bs", "ioengine", "size", "destroy_data", "fio_path", "journal", "sysfs_root")


def refuse_unused(ctx: click.Context, device: str | None) -> None:
    """An option the chosen backend would ignore is an error, not a silent no-op."""
    unused, why = (
        (SIM_ONLY, "with --device") if device is not None else (REAL_ONLY, "without --device")
    )
    for name in unused:
        if ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE:
            flag = next(p.opts[0] for p in ctx.command.params if p.name == name)
            raise InputError(f"{flag} means nothing {why}; leave it out")


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
    default="0",
    show_default=True,
    help="0: every job on CPU 0 (the lab); split: one CPU per job (the paper); with --device "
    "also a fio cpus_allowed list such as 0-3.",
)
@click.option(
    "--runtime",
    "runtime_text",
    default=None,
    metavar="SECONDS",
    help=f"Seconds per run (default 1): simulated (at most {MAX_SIM_RUNTIME_S:g}) or, with "
    "--device, of each fio run.",
)
@click.option(
    "--ios",
    type=Number(1, MAX_IOS, integer=True),
    default=None,
    help="Stop each run after this many I/Os instead of --runtime.",
)
@click.option("--seed", type=Number(0, MAX_SEED, integer=True), default=1, show_default=True)
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
@click.option(
    "--rw",
    "rw_text",
    default=None,
    metavar="randread|randwrite",
    help="The workload, as fio names it (the same as the words R and W).",
)
@click.option(
    "--repeat",
    type=Number(1, MAX_REPEATS, integer=True),
    default=None,
    help="Runs per mode and job count (the same as the REPEATS word).",
)
@click.option(
    "--device",
    default=None,
    metavar="DEV",
    help="Run real fio on this block device (nvme0n1, /dev/nvme0n1) or regular file, "
    "with the queue's knobs set per mode and restored after.",
)
@click.option(
    "--bs",
    type=BLOCK_SIZE,
    default=4096,
    show_default=True,
    help="Block size in bytes (--device).",
)
@click.option(
    "--ioengine", default=None, help="Override fio's engine (--device); stated in the output."
)
@click.option(
    "--size",
    default="256m",
    show_default=True,
    help="How much of a regular file a run uses (--device FILE): at most this much of an "
    "existing file, never more than it holds; a missing file is created this large.",
)
@click.option(
    "--destroy-data",
    is_flag=True,
    help="Allow writes (W) to a block device or an existing file: whatever it holds is lost.",
)
@click.option("--fio", "fio_path", default="fio", show_default=True, help="The fio binary.")
@click.option(
    "--journal",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Where the original knob values are kept until restored "
    "(default: one per device under ~/.local/state/dpas/journals).",
)
@click.option(
    "--sysfs-root",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("/sys"),
    show_default=True,
    help="Where the queue knobs live (a test seam; leave it for real devices).",
)
@click.pass_context
def bench_command(
    ctx: click.Context,
    words: tuple[str, ...],
    jobs_text: str,
    profile_name: str,
    cpus: str,
    runtime_text: str | None,
    ios: int | None,
    seed: int,
    d_init_text: str,
    order: str,
    out_dir: Path,
    as_json: bool,
    device: str | None,
    bs: int,
    ioengine: str | None,
    size: str,
    destroy_data: bool,
    fio_path: str,
    journal: Path | None,
    sysfs_root: Path,
    rw_text: str | None,
    repeat: int | None,
    **switch: int,
) -> None:
    """The lab's benchmark: every mode at every job count, 4 KiB random I/O at depth 1.

    Runs on the simulated host and device of --profile (default: the lab's QEMU guest) and
    prints bench.sh's table per mode; results.json, results.csv and bench.png go to --out.
    """
    refuse_unused(ctx, device)
    modes, rw, repeats = parse_words(words)
    rw = parse_rw(rw_text, rw)
    repeats = repeat or repeats
    parse_cpus("--cpus", cpus, lists=device is not None)
    jobs = parse_jobs(jobs_text)
    d_init_ns = parse_d_init(d_init_text)
    runtime = parse_runtime(runtime_text, real=device is not None)
    profile = load(profile_name) if device is None else None  # a bad one: before any output
    file_size = parse_size(size, bs)
    check_out_dir(out_dir)
    if device is not None:
        real = RealConfig(
            device=device,
            modes=modes,
            rw=rw,
            repeats=repeats,
            jobs=jobs,
            cpus=cpus,
            runtime_s=runtime,
            bs=bs,
            d_init_ns=d_init_ns,
            switch=SwitchParams(**switch),
            ioengine=ioengine,
            destroy_data=destroy_data,
            fio=fio_path,
            journal=journal.absolute() if journal is not None else None,
            size=file_size,
        )
        _real_bench(real, LocalExecutor(sysfs_root), out_dir, as_json)
        return
    assert profile is not None
    config = BenchConfig(
        profile=profile,
        modes=modes,
        rw=rw,
        repeats=repeats,
        jobs=jobs,
        cpus=cpus,
        runtime_s=runtime,
        ios=ios,
        seed=seed,
        d_init_ns=d_init_ns,
        switch=SwitchParams(**switch),
        order=Order(order),
    )
    console = Console(stderr=as_json)
    d_init = config.d_init_ns if config.d_init_ns is not None else d_init_auto(config)
    runs = plan(config, d_init)
    results = _run_with_progress(len(runs), console, lambda done: run_all(runs, done))
    record = results_record(config, d_init, results)
    header = (
        f"profile {profile.name}, {'read' if rw is Op.READ else 'write'} 4 KiB, "
        f"jobs on {'CPU 0' if cpus == '0' else 'one CPU each'}, "
        f"{runtime if ios is None else ios} {'s' if ios is None else 'I/Os'} per run, "
        f"pas_d_init {d_init} ns{' (auto)' if config.d_init_ns is None else ''}"
    )
    report(record, out_dir, console, as_json, header, f"dpas bench on {profile.name} (simulated)")


def parse_runtime(text: str | None, real: bool) -> float:
    """Seconds per run, default 1: up to an hour simulated, a day of real fio."""
    if text is None:
        return 1.0
    high = MAX_REAL_RUNTIME_S if real else MAX_SIM_RUNTIME_S
    return float(parse_number("--runtime", text, 0, high, above=True))


def report(
    record: dict[str, Any], out_dir: Path, console: Console, as_json: bool, header: str, title: str
) -> None:
    """Files first (results.json before anything can fail), then the screen, then the figure."""
    (out_dir / "results.json").write_text(json.dumps(record, indent=1, allow_nan=False))
    write_csv(record["records"], out_dir / "results.csv")
    if as_json:
        click.echo(json.dumps(record, indent=1, allow_nan=False))
    else:
        console.print(header)
        for table in mode_tables(record["records"]):
            console.print(table)
    figure = out_dir / "bench.png"
    if record["records"]:
        plot(record["records"], figure, title)
    console.print(
        f"wrote {out_dir / 'results.json'}, {out_dir / 'results.csv'}"
        + (f", {figure}" if record["records"] else "")
    )


def _real_bench(config: RealConfig, executor: LocalExecutor, out_dir: Path, as_json: bool) -> None:
    """dpas bench --device: real fio runs; every knob is back as found when this returns."""
    runner = Runner(config, executor)
    console = Console(stderr=as_json)
    total = len(config.modes) * len(config.jobs) * config.repeats
    try:
        bench = _run_with_progress(total, console, runner.run)
        ended: Interrupted | None = None
    except Interrupted as err:  # keep what was measured, then say why it ended
        bench, ended = err.bench, err
    for mode, why in bench.refused.items():
        console.print(f"[yellow]{mode} refused[/yellow]: {why}")
    record = {
        "schema": SCHEMA,
        "backend": "fio",
        "kernel": bench.kernel,
        "fio_version": bench.fio_version,
        "device": config.device,
        "config": {
            **asdict(config),
            "modes": [m.value for m in config.modes],
            "rw": "R" if config.rw is Op.READ else "W",
            "journal": str(config.journal),
            "switch": asdict(config.switch),
        },
        "d_init_ns": bench.d_init_ns,
        "refused": bench.refused,
        "ended_early": None if ended is None else str(ended),
        "records": [asdict(r) for r in bench.records],
    }
    notes = sorted({r.note for r in bench.records if r.note})
    header = "\n".join(
        [
            f"{config.device} ({runner.device_model()}), kernel {bench.kernel}, "
            f"{bench.fio_version}, "
            f"{'read' if config.rw is Op.READ else 'write'} {config.bs} B, "
            f"{config.runtime_s:g} s per run, "
            f"pas_d_init {bench.d_init_ns} ns{' (auto)' if config.d_init_ns is None else ''}",
            *notes,
            "queue knobs set per mode and restored as found"
            if any(r.knobs for r in bench.records)
            else "no queue knob was changed",
        ]
    )
    report(record, out_dir, console, as_json, header, f"dpas bench on {config.device} (fio)")
    if ended is not None:
        raise ended
    if not bench.records:
        raise InputError("every mode was refused: " + "; ".join(bench.refused.values()))


def _run_with_progress(
    total: int, console: Console, work: Callable[[Callable[[Any], None]], T]
) -> T:
    """Runs ``work(done)`` with a progress bar that ``done(what)`` advances."""
    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("running", total=total)

        def done(what: Any) -> None:
            label = what if isinstance(what, str) else f"{what.method.value} x{what.jobs}"
            progress.update(task, advance=1, description=f"running (last: {label})")

        return work(done)
