"""Options that several commands share."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from dpas.bench.backend import ALL_MODES, ENGINE_ALL_MODES, Sweep
from dpas.cli.app import InputError
from dpas.errors import LimitError
from dpas.limits import BS_SECTOR, INT_MAX, MAX_BS, MAX_JOBS, MAX_REPEATS, U32_MAX, checked
from dpas.machine.fio import cpu_list
from dpas.policy import BENCH_ORDER, Method, Op, Order, SwitchParams
from dpas.policy.rules import RULE_SETS
from dpas.policy.switch import param_error
from dpas.sizes import checked_size
from dpas.workload import STEADY
from dpas.workload import load as load_workload
from dpas.workload import shipped as shipped_workloads

#: bench.sh's mode words, as its arguments list them
BENCH_MODES = tuple(m.value for m in BENCH_ORDER)
#: job counts in one sweep
MAX_JOB_COUNTS = 64
#: a file the command writes (a figure, a CSV): a path that is not a folder
FILE_OUT = click.Path(dir_okay=False, path_type=Path)

#: ASCII digits only: str.isdigit() also takes '²' and other scripts' digits
WHOLE = re.compile(r"[+-]?[0-9]+")


class Number(click.ParamType):
    """A finite number in [low, high] (a whole number where ``integer``, a multiple of
    ``step``), checked as parsed; ``above`` excludes the low end (a runtime of 0 s is no run)."""

    def __init__(
        self,
        low: float,
        high: float,
        *,
        integer: bool = False,
        above: bool = False,
        step: int = 1,
    ) -> None:
        self.low, self.high, self.integer, self.above, self.step = low, high, integer, above, step
        self.name = "integer" if integer else "number"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value
        try:  # click names the option itself: "Invalid value for '--seed': -1: expected ..."
            return parse_number("", value, self.low, self.high, self.integer, self.above, self.step)
        except LimitError as err:
            self.fail(str(err), param, ctx)

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return "N" if self.integer else "X"


def parse_number(
    what: str,
    text: str,
    low: float,
    high: float,
    integer: bool = False,
    above: bool = False,
    step: int = 1,
) -> Any:
    """``text`` as an int (ASCII digits) or a finite float, in range; LimitError otherwise,
    naming ``what`` (when given) and the value as typed."""
    text = text.strip()
    kind = "a whole number" if integer else "a number"
    bound = f"above {_bound(low)}" if above else f"from {_bound(low)}"
    multiple = f", a multiple of {step}" if step > 1 else ""
    refusal = LimitError(
        f"{what + ' ' if what else ''}{text or repr(text)}: "
        f"expected {kind} {bound} to {_bound(high)}{multiple}"
    )
    if integer:
        if not WHOLE.fullmatch(text):
            raise refusal
        value: float = int(text)
    else:
        try:
            value = float(text)
        except ValueError:
            raise refusal from None
    try:
        checked(what, value, low, high, integer=integer)
    except LimitError:
        raise refusal from None
    if (above and value == low) or (integer and int(value) % step):
        raise refusal
    return value


def _bound(x: float) -> str:
    """A range's end as typed: every digit of an int (4294967295, not 4.29497e+09)."""
    if isinstance(x, float) and x.is_integer() and abs(x) < 1e16:
        x = int(x)
    return str(x) if isinstance(x, int) else f"{x:g}"


rules_option = click.option(
    "--rules",
    "rules_name",
    type=click.Choice(list(RULE_SETS)),
    default="lab",
    show_default=True,
    help="Whose DPAS kernel the policy follows: the lab's, or the artifact's 5.18-rc6 tree where "
    "it differs (docs/policy.md#rules-lab-or-artifact).",
)


def _switch_param(ctx: click.Context, param: click.Parameter, value: int) -> int:
    """The kernel's refusals beyond the int range (a zero evaluation period)."""
    why = param_error(str(param.name), value)
    if why:
        raise click.BadParameter(why.split(": ", 1)[1], ctx, param)
    return value


def switch_options(
    f: Callable[..., Any] | None = None, *, order: bool = True
) -> Callable[..., Any]:
    """--param1 .. --param7 (DPAS's switch knobs, with the kernel's defaults, in the range its
    int attributes take) and, where ``order``, --order (the simulator's and emulator's)."""

    def decorate(f: Callable[..., Any]) -> Callable[..., Any]:
        for i in reversed(range(1, 8)):
            default = getattr(SwitchParams(), f"param{i}")
            f = click.option(
                f"--param{i}",
                type=Number(-1, INT_MAX, integer=True),
                default=default,
                show_default=True,
                callback=_switch_param,
                help=f"DPAS switch_param{i}.",
            )(f)
        if not order:
            return f
        return click.option(
            "--order",
            type=click.Choice([o.value for o in Order]),
            default="kernel",
            show_default=True,
            help="DPAS PAS-exit test order: the kernel's (tf first) or the guide's.",
        )(f)

    return decorate(f) if f is not None else decorate


def sweep_options(*, out: Path, order: bool = True) -> Callable[[Callable[..., Any]], Any]:
    """What ``dpas bench`` and ``dpas vm bench`` both take: bench.sh's words, --jobs, --rw,
    --repeat, --d-init, the switch knobs (--order where ``order``), --out (default ``out``,
    as ``out_dir``) and --json (``as_json``). The command collects the rest as ``**sweep_args``
    and hands them to ``parse_sweep``."""

    def decorate(f: Callable[..., Any]) -> Any:
        for option in reversed(
            [
                click.argument(
                    "words",
                    nargs=-1,
                    metavar=f"[{' '.join(BENCH_MODES)} | ALL] [R|W] [REPEATS]",
                ),
                click.option(
                    "--jobs",
                    "jobs_text",
                    default="1,2,4,8,16",
                    show_default=True,
                    help="Job counts to sweep (fio numjobs).",
                ),
                click.option(
                    "--rw",
                    "rw_text",
                    default=None,
                    metavar="randread|randwrite",
                    help="The I/O direction, as fio names it (the same as the words R and W).",
                ),
                click.option(
                    "--repeat",
                    type=Number(1, MAX_REPEATS, integer=True),
                    default=None,
                    help="Runs per mode and job count (the same as the REPEATS word).",
                ),
                click.option(
                    "--d-init",
                    "d_init_text",
                    default="auto",
                    show_default=True,
                    help="pas_d_init in ns, or auto: a tenth of a first short run's mean latency.",
                ),
                switch_options(order=order),
                out_option(out, "Where results.json, results.csv and bench.png go."),
                click.option("--json", "as_json", is_flag=True, help="Print the records as JSON."),
                click.option(
                    "--engine",
                    type=click.Choice(["fio", "dpas", "fio,dpas"]),
                    default="fio",
                    show_default=True,
                    help="Who completes the I/Os of a real run: fio (the kernel's methods) or "
                    "dpas (its own io_uring engine: every mode, HYB too, on stock kernels; ALL "
                    "then adds EHP); dpas vm bench: fio,dpas runs both in one boot, round by "
                    "round.",
                ),
                click.option(
                    "--log",
                    "log",
                    is_flag=True,
                    help="--engine dpas: keep each run's per-I/O log (OUT/logs/MODE-xJOBS-rN.npy).",
                ),
                click.option(
                    "--iu",
                    "iu_text",
                    default=None,
                    metavar="SIZES",
                    help="W: record each run's WAF_IU for these indirection units, "
                    "comma-separated as fio writes sizes (16k, or 4k,16k): the media bytes a "
                    "drive mapping in such units writes for the run's own writes.",
                ),
                click.option(
                    "--workload",
                    "workload_name",
                    default=STEADY,
                    show_default=True,
                    metavar="NAME|FILE.toml",
                    help=f"Job groups with patterns in time: {', '.join(shipped_workloads())}, "
                    "or a workload file (docs/workloads.md). A workload fixes its jobs.",
                ),
                click.option(
                    "--baseline",
                    default=None,
                    metavar="MODE",
                    help="Also show each mode's foreground IOPS and CPU as a percentage of "
                    "MODE's (INT = 100, as the paper does).",
                ),
                click.option(
                    "--timeline",
                    type=FILE_OUT,
                    default=None,
                    help="Draw one run (DPAS's, else the last mode's) over time: each group's "
                    "load, each CPU's DPAS mode, the foreground's latency.",
                ),
            ]
        ):
            f = option(f)
        return f

    return decorate


def parse_sweep(options: dict[str, Any], **more: Any) -> Sweep:
    """The Sweep of what ``sweep_options`` gave a command (``options``: words, jobs_text,
    rw_text, repeat, d_init_text, param1..7, engine, log and maybe order); ``more``: the rest
    of the Sweep, already checked. With ``--engine dpas`` ALL is every policy (EHP too)."""
    switch = dict(options)
    engine, _ = switch.pop("engine", "fio"), switch.pop("log", None)
    iu_text = switch.pop("iu_text", None)
    for report_only in ("baseline", "timeline"):
        switch.pop(report_only, None)
    workload = load_workload(switch.pop("workload_name", STEADY))
    all_modes = ENGINE_ALL_MODES if "dpas" in engine.split(",") else ALL_MODES
    modes, rw, repeats = parse_words(switch.pop("words"), all_modes)
    rw = parse_rw(switch.pop("rw_text"), rw)
    repeats = switch.pop("repeat") or repeats
    jobs = parse_jobs(switch.pop("jobs_text"))
    d_init_ns = parse_d_init(switch.pop("d_init_text"))
    if "order" in switch:
        more["order"] = Order(switch.pop("order"))
    if not workload.steady:
        jobs = (workload.foreground_jobs,)
    return Sweep(
        modes, rw, repeats, jobs, d_init_ns=d_init_ns, switch=SwitchParams(**switch),
        workload=workload, ius=parse_iu(iu_text, rw, workload.steady), **more,
    )  # fmt: skip


def parse_iu(text: str | None, rw: Op, steady: bool) -> tuple[int, ...]:
    """--iu's IUs (dpas waf's rule: 512 B times a power of two, a LimitError otherwise), for
    a steady write sweep only: a read sweep writes nothing to count, and a workload's
    groups are not counted."""
    if text is None:
        return ()
    from dpas.cli.waf import parse_ius  # here: dpas.cli.waf imports this module

    ius = tuple(parse_ius(text))
    if not steady:
        raise InputError(f"--iu {text}: counted for bench.sh's steady W runs, not a workload's")
    if rw is Op.READ:
        raise InputError(f"--iu {text}: a read sweep (R) writes nothing to count; WAF_IU needs W")
    return ius


#: what a workload's groups say for themselves: given with --workload, an error
WORKLOAD_SAYS = ("jobs_text", "rw_text", "bs", "cpus", "pin", "ios")


def refuse_with_workload(ctx: click.Context) -> None:
    """A workload fixes its jobs, their I/O and their CPUs: the options that would say
    otherwise are errors, not silently overridden."""
    if ctx.params.get("workload_name", STEADY) != STEADY:
        present = tuple(n for n in WORKLOAD_SAYS if n in ctx.params)
        refuse_given(ctx, present, "with --workload (its groups say it: docs/workloads.md)")


def workload_runtime(ctx: click.Context, sweep: Sweep, option: str = "runtime_text") -> Sweep:
    """A workload's own runtime_s where the command line gave none."""
    runtime = sweep.workload.runtime_s
    if runtime is None or given(ctx, option):
        return sweep
    return replace(sweep, runtime_s=runtime)


class Size(click.ParamType):
    """A size in bytes as fio writes one (8k, 4K, 1m, 4096: dpas.sizes), in [low, high] and
    a multiple of ``step``, checked as parsed."""

    name = "size"

    def __init__(self, low: int, high: int, step: int = 1) -> None:
        self.low, self.high, self.step = low, high, step

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value
        try:  # click names the option itself: "Invalid value for '--bs': 8x: expected ..."
            return checked_size("", value, self.low, self.high, self.step)
        except LimitError as err:
            self.fail(str(err), param, ctx)

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return "SIZE"


#: fio's block size with direct I/O: whole 512-byte sectors, up to 64 MiB
BLOCK_SIZE = Size(BS_SECTOR, MAX_BS, step=BS_SECTOR)


def parse_rw(text: str | None, default: Op) -> Op:
    """--rw as fio names it (randread, randwrite) or as bench.sh does (R, W)."""
    if text is None:
        return default
    try:
        return Op.parse(text)
    except ValueError as err:
        raise InputError(f"--rw: {err}") from None


def parse_cpus(option: str, text: str, lists: bool) -> str:
    """0 (every job on CPU 0), split (one each), or, where ``lists``, a cpus_allowed list."""
    try:
        listed = text in ("0", "split") or (lists and bool(cpu_list(text)))
    except ValueError:  # not a list, or a range that runs backwards (3-1)
        listed = False
    if not listed:
        more = ", or a cpus_allowed list like 0-3" if lists else ""
        raise InputError(f"{option} {text}: expected 0, split{more}")
    return text


def parse_words(
    words: tuple[str, ...], all_modes: tuple[Method, ...] = ALL_MODES
) -> tuple[tuple[Method, ...], Op, int]:
    """bench.sh's arguments, in any order: modes (or ALL, which is ``all_modes``), R or W, and
    a repeat count."""
    modes: list[Method] = []
    rw: Op | None = None
    repeats: int | None = None
    for word in words:
        key = word.upper()
        if key == "ALL":
            modes += [m for m in all_modes if m not in modes]
        elif key in BENCH_MODES:
            mode = Method.parse(key)
            if mode not in modes:
                modes.append(mode)
        elif key in ("R", "W"):
            if rw is not None:
                raise InputError(f"{word!r}: R or W was given twice")
            rw = Op.parse(key)
        elif WHOLE.fullmatch(word):
            if repeats is not None:
                raise InputError(f"{word!r}: the repeat count was given twice")
            repeats = int(parse_number("repeat count", word, 1, MAX_REPEATS, integer=True))
        else:
            raise InputError(
                f"{word!r}: expected modes ({' '.join(BENCH_MODES)} or ALL), R or W, "
                "or a repeat count"
            )
    return tuple(modes) or all_modes, rw or Op.READ, repeats or 1


def parse_jobs(text: str) -> tuple[int, ...]:
    """fio numjobs values, comma-separated: each 1..4096, at most 64 of them."""
    parts = text.split(",")
    if len(parts) > MAX_JOB_COUNTS:
        raise InputError(f"--jobs: {len(parts)} job counts; at most {MAX_JOB_COUNTS} per sweep")
    accepted = "expected job counts such as 1,2,4,8,16"
    if not all(WHOLE.fullmatch(p.strip()) for p in parts):
        raise InputError(f"--jobs {text[:60]}: {accepted}")
    jobs = tuple(int(parse_number("--jobs", p, 1, MAX_JOBS, integer=True)) for p in parts)
    return tuple(dict.fromkeys(jobs))


def parse_d_init(text: str) -> int | None:
    """auto, or pas_d_init in ns: the kernel keeps it in a u32."""
    if text == "auto":
        return None
    if not WHOLE.fullmatch(text.strip()):
        raise InputError(
            f"--d-init {text}: expected auto or a whole number of ns from 1 to {U32_MAX}"
        )
    return int(parse_number("--d-init", text, 1, U32_MAX, integer=True))


OUT_FILES = ("results.json", "results.csv", "bench.png")
#: what a figure can be written as (matplotlib's format by the name's suffix)
FIGURE_SUFFIXES = (".png", ".svg")


def check_figure_name(option: str, path: Path | None) -> None:
    """Before any work: a figure's file name says a format dpas draws (.png or .svg)."""
    if path is not None and path.suffix.lower() not in FIGURE_SUFFIXES:
        raise InputError(f"{option} {path}: expected a file name ending in .png or .svg")


@contextmanager
def writing(option: str, path: Path) -> Iterator[None]:
    """Writing the file ``option`` names: a failure to write (a full disk, no permission) is
    one line naming the option and the file, not a traceback."""
    try:
        yield
    except OSError as err:
        raise InputError(f"{option} {path}: {err.strerror or err}") from None


def check_out_dir(out_dir: Path, names: tuple[str, ...] = OUT_FILES) -> None:
    """Before any run: the folder exists or can be made, and every file ``names`` can be
    written there (a sweep of hours must not end in a traceback about its output)."""
    with writing("--out", out_dir):
        out_dir.mkdir(parents=True, exist_ok=True)
        for name in names:
            path = out_dir / name
            if path.exists() and not path.is_file():
                raise InputError(f"--out {out_dir}: {name} there is not a regular file")
        probe = out_dir / ".dpas-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    for name in names:
        path = out_dir / name
        if path.exists() and not os.access(path, os.W_OK):
            raise InputError(f"--out {out_dir}: {name} there cannot be written")


def run_progress(console: Console, eta: bool = False) -> Progress:
    """The progress bar of a sweep of runs: what ran last, how many of how many, how long,
    and with ``eta`` the time left."""
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        *([TimeRemainingColumn()] if eta else []),
        console=console,
        transient=True,
    )


#: the parameters device_options adds
DEVICE_OPTIONS = ("destroy_data", "fio_path", "sysfs_root")


def device_options(
    destroy_help: str = "Allow writes (W) to a block device or an existing file: whatever it "
    "holds is lost.",
) -> Callable[[Callable[..., Any]], Any]:
    """--destroy-data, --fio and --sysfs-root: what a command that runs on a device takes
    (dpas bench --device, a sweep's device points), the same everywhere."""

    options: list[Callable[[Callable[..., Any]], Any]] = [
        click.option("--destroy-data", is_flag=True, help=destroy_help),
        click.option("--fio", "fio_path", default="fio", show_default=True, help="The fio binary."),
        sysfs_root_option("Where the queue knobs live (a test seam; leave it for real devices)."),
    ]

    def add(f: Callable[..., Any]) -> Any:
        for option in reversed(options):
            f = option(f)
        return f

    return add


def sysfs_root_option(help: str) -> Callable[[Callable[..., Any]], Any]:
    """--sysfs-root: where /sys is read from (the test seam of every root-only path)."""
    return click.option(
        "--sysfs-root",
        type=click.Path(file_okay=False, path_type=Path),
        default=Path("/sys"),
        show_default=True,
        help=help,
    )


def given(ctx: click.Context, name: str) -> bool:
    """Whether the user wrote parameter ``name`` on the command line (not its default)."""
    return ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE


def flag(ctx: click.Context, name: str) -> str:
    """The option a parameter name stands for (``fio_path`` is --fio)."""
    return next(str(p.opts[0]) for p in ctx.command.params if p.name == name)


def refuse_given(ctx: click.Context, names: tuple[str, ...], why: str) -> None:
    """An option that would be ignored is an error, not a silent no-op: the first of
    ``names`` given, in one line."""
    for name in names:
        if given(ctx, name):
            raise InputError(f"{flag(ctx, name)} means nothing {why}; leave it out")


def out_option(default: Path, help: str) -> Callable[[Callable[..., Any]], Any]:
    """--out DIR: where a command writes its files (as ``out_dir``)."""
    return click.option(
        "--out",
        "out_dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=default,
        show_default=True,
        help=help,
    )


def scheduler_options(f: Callable[..., Any]) -> Any:
    """--scheduler and --workers: where a sweep's or a tuning's points run."""
    f = click.option(
        "--workers",
        "workers_n",
        type=Number(1, 1024, integer=True),
        default=None,
        help="The pool's processes (default: every core).",
    )(f)
    return click.option(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="local:N (a dask LocalCluster of N workers) or tcp://HOST:PORT (a running dask "
        "scheduler). Default: a process pool here.",
    )(f)
