"""``dpas bench``: bench.sh's sweep and tables, on the simulated host and device."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from dpas.bench.backend import Backend, Interrupted, Outcome, Sweep, results_record
from dpas.bench.published import published_sweep
from dpas.bench.sweep import SimulatorBackend
from dpas.cli.app import InputError, cli
from dpas.cli.options import (
    BLOCK_SIZE,
    FILE_OUT,
    Number,
    check_out_dir,
    device_options,
    given,
    parse_cpus,
    parse_number,
    parse_sweep,
    refuse_given,
    refuse_with_workload,
    rules_option,
    run_progress,
    sweep_options,
    workload_runtime,
)
from dpas.errors import LimitError
from dpas.limits import MAX_IOS, MAX_SEED, MAX_SIM_RUNTIME_S, runtime_range
from dpas.policy import RULE_SETS, SwitchParams
from dpas.real.executor import LocalExecutor
from dpas.real.runner import RealBackend
from dpas.real.site import RealConfig
from dpas.reports.bench import beyond_sources, footnote, mode_tables, plot, write_csv
from dpas.reports.timeline_figure import pick_run, plot_timeline, workload_cpus
from dpas.reports.workload import baseline_record, baseline_table, group_tables
from dpas.sim import load
from dpas.sizes import checked_size

MAX_SIZE = 1 << 40


def parse_size(text: str, bs: int) -> int:
    """--size as fio writes one (256m, 1g: dpas.sizes), from one block to 1 TiB, in whole
    blocks (rounded down)."""
    try:
        return checked_size("--size", text, bs, MAX_SIZE) // bs * bs
    except LimitError as err:
        raise InputError(str(err)) from None


#: what only the simulator reads, and what only a real run (--device) reads
SIM_ONLY = ("ios", "profile_name", "seed", "order", "rules_name")
REAL_ONLY = (
    "ioengine",
    "size",
    "destroy_data",
    "fio_path",
    "journal",
    "sysfs_root",
    "engine",
    "settle",
)


#: what the engine reads of SIM_ONLY (DPAS's test order, the seed of its offsets), and what it
#: does not read of REAL_ONLY
ENGINE_READS = ("seed", "order")
FIO_ONLY = ("ioengine", "fio_path")


def refuse_unused(ctx: click.Context, device: str | None, engine: str = "fio") -> None:
    """An option the chosen backend would ignore is an error, not a silent no-op."""
    unused: tuple[str, ...] = SIM_ONLY if device is not None else REAL_ONLY
    why = "with --device" if device is not None else "without --device"
    if device is not None and engine == "dpas":
        unused = tuple(n for n in SIM_ONLY if n not in ENGINE_READS) + FIO_ONLY
        why = "with --engine dpas"
    if "dpas" not in engine.split(",") and given(ctx, "log"):
        raise InputError("--log keeps the engine's per-I/O logs: it needs --engine dpas")
    refuse_given(ctx, unused, why)


@cli.command("bench", context_settings={"ignore_unknown_options": False})
@sweep_options(out=Path("bench-results"))
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
@rules_option
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
    default="4k",
    show_default=True,
    help="Block size in bytes: fio's bs, or the simulator's (the device's transfer time and "
    "the host's per-page cost: a prediction beyond 4 KiB).",
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
@device_options()
@click.option(
    "--settle/--no-settle",
    default=True,
    show_default=True,
    help="DPAS kernel: bring a CPU an earlier run left out of PAS back to PAS before a polled "
    "run, by single-job polled reads on it (--no-settle: refuse the run instead).",
)
@click.option(
    "--journal",
    type=FILE_OUT,
    default=None,
    help="Where the original knob values are kept until restored "
    "(default: one per device under ~/.local/state/dpas/journals).",
)
@click.pass_context
def bench_command(
    ctx: click.Context,
    profile_name: str,
    cpus: str,
    runtime_text: str | None,
    ios: int | None,
    seed: int,
    rules_name: str,
    out_dir: Path,
    as_json: bool,
    device: str | None,
    bs: int,
    ioengine: str | None,
    size: str,
    destroy_data: bool,
    fio_path: str,
    settle: bool,
    journal: Path | None,
    sysfs_root: Path,
    **sweep_args: Any,
) -> None:
    """The lab's benchmark: every mode at every job count, 4 KiB random I/O at depth 1.

    Runs on the simulated host and device of --profile (default: the lab's QEMU guest) and
    prints bench.sh's table per mode; results.json, results.csv and bench.png go to --out.
    """
    engine = sweep_args["engine"]
    if "," in engine:
        raise InputError(
            f"--engine {engine}: both engines in one sweep is for dpas vm bench (one boot); "
            "here run one, then the other"
        )
    refuse_unused(ctx, device, engine)
    refuse_with_workload(ctx)
    real = device is not None
    sweep = parse_sweep(
        sweep_args,
        cpus=parse_cpus("--cpus", cpus, lists=real),
        runtime_s=parse_runtime(runtime_text, backend_of(device, engine)),
        ios=ios,
        seed=seed,
        bs=bs,
        rules=RULE_SETS[rules_name],
    )
    profile = load(profile_name) if device is None else None  # a bad one: before any output
    if profile is not None and profile.published is not None:
        # a drive profile runs as the drive was published (the paper: one CPU per job, DPAS's
        # param3 per drive, pas_adaptive_enabled=1) unless the command line says otherwise
        sweep = published_sweep(
            profile.published,
            sweep,
            modes=sweep.modes,
            jobs=sweep.jobs,
            cpus=sweep.cpus if given(ctx, "cpus") else None,
            switch={
                name: getattr(sweep.switch, name)
                for name in SwitchParams.__dataclass_fields__
                if given(ctx, name)
            },
        )
    sweep = workload_runtime(ctx, sweep)
    file_size = parse_size(size, bs)
    check_out_dir(out_dir)
    backend: Backend
    if device is None:
        assert profile is not None
        rules = "" if rules_name == "lab" else f", the {rules_name} kernel's rules"
        backend = SimulatorBackend(profile)
        title = f"dpas bench on {profile.name} (simulated{rules})"
    else:
        config = RealConfig(
            device,
            ioengine=ioengine,
            destroy_data=destroy_data,
            fio=fio_path,
            journal=journal.absolute() if journal is not None else None,
            size=file_size,
            engine=engine,
            log_dir=(out_dir / "logs").absolute() if sweep_args["log"] else None,
            settle=settle,
            jobfile_dir=None if sweep.workload.steady else (out_dir / "fio-jobs").absolute(),
        )
        backend, title = (
            RealBackend(config, LocalExecutor(sysfs_root)),
            f"dpas bench on {device} ({'dpas engine' if engine == 'dpas' else 'fio'})",
        )
    outcome = run_backend(
        backend,
        sweep,
        Console(stderr=as_json),
        out_dir,
        as_json,
        lambda _: title,
        views=Views.of(sweep_args),
    )
    if not outcome.records:
        raise InputError("every mode was refused: " + "; ".join(outcome.refused.values()))


def backend_of(device: str | None, engine: str) -> str:
    """Who times a run of ``dpas bench``: the simulator, fio, or dpas's own engine."""
    if device is None:
        return "sim"
    return "engine" if engine == "dpas" else "fio"


def parse_runtime(text: str | None, backend: str) -> float:
    """Seconds per run, default 1, in ``backend``'s range (dpas.limits.runtime_range)."""
    if text is None:
        return 1.0
    return float(parse_number("--runtime", text, *runtime_range(backend)))


@dataclass(frozen=True, slots=True)
class Views:
    """What the user asked to see beyond bench.sh's tables: --baseline MODE (each mode's
    foreground beside MODE's, = 100) and --timeline FILE (one run over time)."""

    baseline: str | None = None
    timeline: Path | None = None

    @classmethod
    def of(cls, options: dict[str, Any]) -> Views:
        baseline = options.get("baseline")
        return cls(baseline.upper() if baseline else None, options.get("timeline"))

    def check(self, sweep: Sweep) -> None:
        """Before anything runs: the baseline is one of the sweep's modes."""
        modes = [m.value for m in sweep.modes]
        if self.baseline is not None and self.baseline not in modes:
            raise InputError(
                f"--baseline {self.baseline}: expected one of the modes run ({', '.join(modes)})"
            )


def report(
    record: dict[str, Any],
    out_dir: Path,
    console: Console,
    as_json: bool,
    header: str,
    title: str,
    views: Views = Views(),
) -> None:
    """Files first (results.json before anything can fail), then the screen, then the figures."""
    records = record["records"]
    if views.baseline is not None and records:
        record["baseline"] = baseline_record(records, views.baseline)
    (out_dir / "results.json").write_text(json.dumps(record, indent=1, allow_nan=False))
    write_csv(record["records"], out_dir / "results.csv")
    if as_json:
        click.echo(json.dumps(record, indent=1, allow_nan=False))
    else:
        console.print(header)
        for table in mode_tables(records, beyond_sources(record)):
            console.print(table)
        for table in group_tables(records):
            console.print(table)
        if "baseline" in record:
            console.print(baseline_table(records, views.baseline or ""))
        if note := footnote(record):
            console.print(note, soft_wrap=True)
    figures = [out_dir / "bench.png"] if records else []
    if records:
        plot(records, figures[0], title)
    if views.timeline is not None and records:
        run = pick_run(records, None)
        title = f"{title}: {run['mode']} x{run['jobs']}"
        plot_timeline(run, views.timeline, title, workload_cpus(record))
        figures.append(views.timeline)
    console.print(
        f"wrote {out_dir / 'results.json'}, {out_dir / 'results.csv'}"
        + "".join(f", {f}" for f in figures)
    )


def run_backend(
    backend: Backend,
    sweep: Sweep,
    console: Console,
    out_dir: Path,
    as_json: bool,
    title: Callable[[Outcome], str],
    spinner: str | None = None,
    views: Views = Views(),
) -> Outcome:
    """The sweep on ``backend`` under a progress bar (or, given ``spinner``, a status line),
    then the refusals, results.json, the tables and the figure. A sweep that ended early is
    saved and shown as far as it went, then its error is raised (with the cause's exit code)."""
    views.check(sweep)
    try:
        outcome = _running(backend, sweep, console, spinner)
        ended: Interrupted | None = None
    except Interrupted as err:  # keep what was measured, then say why it ended
        outcome, ended = err.outcome, err
    for mode, why in outcome.refused.items():
        console.print(f"[yellow]{mode} refused[/yellow]: {why}")
    record = results_record(sweep, backend.name, outcome)
    report(record, out_dir, console, as_json, "\n".join(outcome.header), title(outcome), views)
    if ended is not None:
        raise ended
    return outcome


def _running(backend: Backend, sweep: Sweep, console: Console, spinner: str | None) -> Outcome:
    """``backend.run`` with a progress bar that each finished run advances, or a spinner."""
    if spinner is not None:
        with console.status(spinner):
            return backend.run(sweep, lambda what: None)
    with run_progress(console) as progress:
        task = progress.add_task("running", total=len(sweep.runs()))

        def done(what: str) -> None:
            progress.update(task, advance=1, description=f"running (last: {what})")

        return backend.run(sweep, done)
