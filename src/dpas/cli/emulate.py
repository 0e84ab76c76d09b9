"""``dpas emulate``: completion methods over a device-latency trace (the lab's pages)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from dpas.cli.app import InputError, cli
from dpas.cli.options import (
    FILE_OUT,
    Number,
    check_figure_name,
    flag,
    given,
    parse_number,
    rules_option,
    switch_options,
    writing,
)
from dpas.emulate import EmulateConfig, Emulation, Model, TraceError, emulate, load
from dpas.emulate.config import kernel_rates
from dpas.emulate.ranges import RANGES
from dpas.emulate.traces import DEFAULT_IOS, FORMATS
from dpas.errors import LimitError
from dpas.policy import (
    RULE_SETS,
    Adaptive,
    Method,
    Order,
    PasParams,
    PolicyConfig,
    SwitchParams,
)
from dpas.reports.emulation import summary_tables, write_per_io

EMULATED = ("pas", "lhp", "ehp", "dpas", "cp", "int")
AUTO = "auto"
#: options that only one model reads; giving one to the other model is refused
PAGE_ONLY = ("initial_sleep_us", "attenuation")
KERNEL_ONLY = (
    "d_init",
    "adaptive",
    "order",
    "rules_name",
    "io_poll_delay",
    *(f"param{i}" for i in range(1, 8)),
)
#: --plot-ios: ASCII digits only (str.isdigit() also takes '²', which int() refuses), and
#: no more of them than an I/O count has (int() refuses thousands with a traceback)
SPAN = re.compile(r"([0-9]{1,10}):([0-9]{1,10})")


def number(name: str) -> Number:
    """The option type of one number of ``dpas emulate``, ranged by the emulator's RANGES."""
    r = RANGES[name]
    return Number(r.low, r.high, integer=r.integer)


class EpochMs(click.ParamType):
    """--epoch-ms: ms of emulated time in RANGES, or ``auto`` (the LHP page's Auto)."""

    name = "epoch"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value
        if value.strip().lower() == AUTO:
            return AUTO
        r = RANGES["epoch_ms"]
        try:  # click names the option: "Invalid value for '--epoch-ms': x: expected ..."
            return parse_number("", value, r.low, r.high)
        except LimitError as err:
            self.fail(f"{err} (ms), or auto", param, ctx)

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return "MS|auto"


def parse_methods(text: str) -> list[Method]:
    names = [n.strip().lower() for n in text.split(",") if n.strip()]
    if names == ["all"]:
        names = list(EMULATED)
    methods = []
    for name in names:
        if name not in EMULATED:
            raise InputError(f"--method {name!r}: expected a list of {', '.join(EMULATED)} or all")
        method = Method.parse(name)
        if method not in methods:
            methods.append(method)
    if not methods:
        raise InputError(f"--method: expected a list of {', '.join(EMULATED)} or all")
    return methods


@cli.command("emulate")
@click.option(
    "--trace",
    "trace_spec",
    default="zssd",
    show_default=True,
    metavar="SPEC",
    help="zssd, a file (lines, CSV, fio lat log, blkparse text) or a pattern such as "
    "constant:30, noisy:30:5, ramp:10:50, step:50:10:5000, bimodal:20:80:0.1, "
    "gaussian:30:4.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="auto",
    show_default=True,
    help="How to read a trace file.",
)
@click.option("--column", default=None, help="CSV column holding the device times (µs).")
@click.option(
    "--method",
    "methods",
    default="pas,lhp",
    show_default=True,
    help=f"Comma-separated: {', '.join(EMULATED)}, or all.",
)
@click.option(
    "--model",
    type=click.Choice([m.value for m in Model]),
    default="kernel",
    show_default=True,
    help="kernel: the policy core in integer ns; page: the lab pages.",
)
@click.option("--track", is_flag=True, help="The pure PAS tracker: no context-switch overhead.")
@click.option(
    "--ios",
    type=number("ios"),
    default=None,
    help=f"I/Os to run: patterns make this many (default {DEFAULT_IOS}); files and zssd are "
    "cut or cycled to it (default: --model page runs them whole, as the pages; --model kernel "
    f"cycles one shorter than {DEFAULT_IOS} I/Os to {DEFAULT_IOS}, so that LHP's 100 ms "
    "windows close).",
)
@click.option(
    "--seed", type=number("seed"), default=1, show_default=True, help="Seed of random patterns."
)
@click.option(
    "--up",
    type=number("up"),
    default=0.01,
    show_default=True,
    help="PAS up rate (kernel model: up_init = UP x 1e6).",
)
@click.option(
    "--dn",
    type=number("dn"),
    default=0.1,
    show_default=True,
    help="PAS down rate (kernel model: dn_init = DN x 1e6).",
)
@click.option(
    "--initial-sleep-us",
    type=number("initial_sleep_us"),
    default=4.0,
    show_default=True,
    help="First sleep of LHP, and of PAS before its first rule (page model).",
)
@click.option(
    "--cs-overhead-us",
    type=number("cs_overhead_us"),
    default=2.0,
    show_default=True,
    help="Wake-up context switch after a sleep.",
)
@click.option(
    "--int-overhead-us",
    type=number("int_overhead_us"),
    default=2.0,
    show_default=True,
    help="INT: interrupt and wakeup cost added to the device time.",
)
@click.option(
    "--attenuation",
    type=number("attenuation"),
    default=0.5,
    show_default=True,
    help="LHP sleep = attenuation x last epoch's mean latency (page model).",
)
@click.option(
    "--epoch-ms",
    type=EpochMs(),
    default=None,
    help="LHP epoch (page model) / statistics window (kernel model), ms of emulated time; "
    "auto (page model): the trace's total device time / 20, as the LHP page. "
    "[default: auto with --model page, 100 with --model kernel]",
)
@click.option(
    "--d-init",
    type=number("d_init"),
    default=100,
    show_default=True,
    help="PAS initial and minimum sleep, ns (kernel model: pas_d_init).",
)
@click.option(
    "--adaptive",
    type=number("adaptive"),
    default=1,
    show_default=True,
    help="pas_adaptive_enabled (kernel model).",
)
@click.option(
    "--io-poll-delay",
    type=number("io_poll_delay"),
    default=0,
    show_default=True,
    help="LHP: 0 adaptive, N > 0 a fixed N µs sleep (kernel model).",
)
@switch_options
@rules_option
@click.option("--json", "as_json", is_flag=True, help="Print the summary records as JSON.")
@click.option(
    "--per-io",
    type=FILE_OUT,
    default=None,
    help="Write every I/O of every method to this CSV file.",
)
@click.option(
    "--plot",
    type=FILE_OUT,
    default=None,
    help="Draw the pages' figures for every method into FILE.png or FILE.svg.",
)
@click.option(
    "--plot-ios",
    default=None,
    metavar="START:END",
    help="The I/Os the figure draws (default: the last 1000).",
)
@click.pass_context
def emulate_command(
    ctx: click.Context,
    trace_spec: str,
    fmt: str,
    column: str | None,
    methods: str,
    model: str,
    track: bool,
    ios: int | None,
    seed: int,
    up: float,
    dn: float,
    initial_sleep_us: float,
    cs_overhead_us: float,
    int_overhead_us: float,
    attenuation: float,
    epoch_ms: float | str | None,
    d_init: int,
    adaptive: int,
    order: str,
    rules_name: str,
    io_poll_delay: int,
    as_json: bool,
    per_io: Path | None,
    plot: Path | None,
    plot_ios: str | None,
    **switch: int,
) -> None:
    """Run completion methods over a device-latency trace and compare them.

    Each I/O waits as its method decides: INT sleeps until the interrupt, CP busy-polls,
    the others sleep first and then poll. Under the kernel model the decisions come from
    the DPAS kernel's rules (dpas.policy); under the page model from the lab's web pages.
    """
    chosen_model = Model(model)
    _refuse_other_models_options(ctx, chosen_model)
    if epoch_ms == AUTO and chosen_model is Model.KERNEL:
        raise InputError(
            "--epoch-ms auto: the LHP page's epoch, for --model page; the kernel model's "
            "window is a time in ms (default 100)"
        )
    check_figure_name("--plot", plot)
    span = _span(plot_ios)
    policy = PolicyConfig(
        pas=kernel_rates(up, dn, PasParams(d_init=d_init, adaptive=Adaptive(adaptive))),
        switch=SwitchParams(**switch),
        order=Order(order),
        io_poll_delay=io_poll_delay,
        rules=RULE_SETS[rules_name],
    )
    config = EmulateConfig(
        model=chosen_model,
        cs_overhead_us=cs_overhead_us,
        int_overhead_us=int_overhead_us,
        track=track,
        up=up,
        dn=dn,
        initial_sleep_us=initial_sleep_us,
        attenuation=attenuation,
        epoch_ms=None if epoch_ms is None or epoch_ms == AUTO else float(epoch_ms),
        policy=policy,
    )
    try:
        trace = load(trace_spec, ios, seed, fmt, column, cycle=chosen_model is Model.KERNEL)
        result = emulate(trace, parse_methods(methods), config)
    except (TraceError, ValueError) as err:
        raise InputError(str(err)) from None
    if span is not None and span[1] > len(trace):
        raise InputError(f"--plot-ios {plot_ios}: the run has {len(trace)} I/Os")
    _save(result, per_io)
    _show(result, as_json)
    if plot is not None:
        _draw(result, plot, span, quiet=as_json)


def _span(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    m = SPAN.fullmatch(text)
    if m is None or int(m[1]) >= int(m[2]):
        raise InputError(f"--plot-ios {text}: expected START:END, whole numbers, START < END")
    return int(m[1]), int(m[2])


def _refuse_other_models_options(ctx: click.Context, model: Model) -> None:
    other = KERNEL_ONLY if model is Model.PAGE else PAGE_ONLY
    for name in other:
        if given(ctx, name):
            raise InputError(
                f"{flag(ctx, name)} applies to the other model, not --model {model.value}"
            )


def _save(result: Emulation, per_io: Path | None) -> None:
    """Files first: a failing figure must not lose the numbers."""
    if per_io is None:
        return
    with writing("--per-io", per_io):
        write_per_io(result, per_io)


def _show(result: Emulation, as_json: bool) -> None:
    if as_json:
        # allow_nan=False: NaN is no JSON; a statistic that becomes one must fail, not print
        click.echo(json.dumps(result.records(), indent=1, allow_nan=False))
        return
    console = Console()
    trace = result.trace
    console.print(
        f"trace {trace.name} ({trace.source}): {len(trace)} I/Os, device mean "
        f"{trace.device_us.mean():.2f} µs; model {result.config.model.value}"
    )
    if "lhp" in result.logs:
        console.print(_epoch(result))
    for table in summary_tables(result):
        console.print(table)


def _epoch(result: Emulation) -> str:
    """The LHP epoch the run used: Auto depends on the trace, so the output says it."""
    kind = "epoch" if result.config.model is Model.PAGE else "statistics window"
    auto = " (auto: the trace's total device time / 20)" if result.config.epoch_auto else ""
    return f"LHP {kind}: {result.epoch_ms:.6g} ms{auto}"


def _draw(result: Emulation, plot: Path, span: tuple[int, int] | None, quiet: bool) -> None:
    from dpas.reports.emulation_figure import plot_emulation  # matplotlib is slow to import

    with writing("--plot", plot):
        plot_emulation(result, plot, span)
    if not quiet:
        click.echo(f"figure: {plot}")
