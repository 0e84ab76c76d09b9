"""``dpas vm``: the lab's QEMU guest with a polled NVMe drive, built and booted here."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape

from dpas.cli.app import InputError, cli, help_without_subcommand
from dpas.cli.bench import Views, refuse_unused, run_backend
from dpas.cli.options import (
    BLOCK_SIZE,
    FILE_OUT,
    Number,
    check_out_dir,
    parse_cpus,
    parse_sweep,
    refuse_with_workload,
    sweep_options,
    workload_runtime,
)
from dpas.doctor.diagnose import examination
from dpas.limits import runtime_range
from dpas.reports.doctor import show
from dpas.vm.fixes import NAMES as FIX_NAMES
from dpas.vm.fixes import parse_fixes
from dpas.vm.guest import DRIVE, GuestRun
from dpas.vm.kernel import VmError
from dpas.vm.kernels import parse_kernel
from dpas.vm.runner import VmBackend, VmConfig, default_cache, shell, vm_doctor

#: vCPUs of the guest: QEMU's pc machine takes up to 255 without an IOMMU; 64 is plenty here
MAX_VCPUS = 64


class GuestMemory(click.ParamType):
    """QEMU's -m size: a whole number of MiB (M) or GiB (G), 128M to 64G."""

    name = "size"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        found = re.fullmatch(r"([0-9]{1,6})([MG])", str(value).strip().upper())
        mib = int(found[1]) * (1024 if found[2] == "G" else 1) if found else 0
        if not 128 <= mib <= 64 * 1024:
            self.fail(
                f"{value!r}: expected a size such as 512M or 1G, from 128M to 64G", param, ctx
            )
        return f"{mib}M"


MEMORY = GuestMemory()


def guest_options(f):  # type: ignore[no-untyped-def]
    """The guest's shape, shared by bench and shell."""
    for option in reversed(
        [
            click.option(
                "--kernel",
                "kernel_spec",
                metavar="SPEC",
                default="debian",
                show_default=True,
                help="The guest kernel: debian (the host's suite, newest), debian:SUITE "
                "(debian:sid), debian:SUITE:VERSION (debian:sid:7.2.13), PATH.deb (a kernel "
                "image package, e.g. the lab's linux-image-5.18.0-dpas_*.deb), "
                "build:VERSION (build:7.2: built from Debian's linux-source, NVMe built "
                "in, with --patch), build:DIR (any kernel source tree, built likewise from "
                "a copy), or PATH to a "
                "bzImage (with --modules). Fetched or built once, cached under --cache.",
            ),
            click.option(
                "--modules",
                type=click.Path(file_okay=False, path_type=Path),
                default=None,
                help="lib/modules/<release> of a bzImage given as --kernel PATH.",
            ),
            click.option(
                "--patch",
                "patches",
                multiple=True,
                type=FILE_OUT,
                help="A patch for --kernel build:VERSION or build:DIR (repeatable, applied in "
                "order, to a copy).",
            ),
            click.option(
                "--fix",
                "fixes",
                metavar="LIST",
                default=None,
                help="For --kernel build:DIR of the artifact's DPAS 5.18 tree: the source "
                "fixes to make in the copy, comma-separated from "
                f"{','.join(FIX_NAMES)}, or all (docs/vm.md).",
            ),
            click.option(
                "--cpus",
                "vcpus",
                type=Number(1, MAX_VCPUS, integer=True),
                default=2,
                show_default=True,
                help="vCPUs of the guest.",
            ),
            click.option(
                "--memory",
                type=MEMORY,
                default="1G",
                show_default=True,
                help="Guest memory, as QEMU's -m takes it (512M, 1G; 128M to 64G).",
            ),
            click.option(
                "--cache",
                type=click.Path(file_okay=False, path_type=Path),
                default=None,
                help="Kernel and guest files (default ~/.cache/dpas/vm).",
            ),
        ]
    ):
        f = option(f)
    return f


def check_kernel(
    spec: str, modules: Path | None, patches: tuple[Path, ...], fixes: str | None = None
) -> tuple[str, ...]:
    """--kernel, --modules, --patch and --fix together, refused before anything is fetched;
    the --fix names."""
    try:
        names = parse_fixes(fixes) if fixes is not None else ()
        parse_kernel(spec, modules, patches, names)
    except VmError as err:
        raise InputError(str(err)) from None
    return names


def progress_lines(console: Console) -> Callable[[str], None]:
    """Fetch and build steps as they happen (a kernel build takes minutes), one dim line
    each (above the spinner while there is one)."""

    def say(line: str) -> None:
        console.print(f"[dim]{escape(line)}[/dim]", highlight=False)

    return say


@cli.group("vm", invoke_without_command=True)
@click.pass_context
def vm(ctx: click.Context) -> None:
    """The lab's QEMU guest with a polled NVMe drive (poll_queues=2)."""
    help_without_subcommand(ctx)


@vm.command("bench")
@sweep_options(out=Path("vm-results"))
@click.option(
    "--runtime",
    type=Number(*runtime_range("fio", "engine")),
    default=10.0,
    show_default=True,
    help="Seconds per fio run in the guest.",
)
@click.option("--bs", type=BLOCK_SIZE, default="4k", show_default=True)
@click.option(
    "--pin",
    default="0",
    show_default=True,
    help="fio job pinning in the guest: 0, split, or a cpus_allowed list.",
)
@click.option(
    "--ioengine", default=None, help="Override fio's engine in the guest; stated in the output."
)
@click.option(
    "--replay/--no-replay",
    default=True,
    show_default=True,
    help="On the DPAS series' kernel (dpas:VERSION): trace each PAS and DPAS run's decisions "
    "and replay them through dpas.policy; --no-replay measures without the trace's cost.",
)
@click.option(
    "--keep-going",
    is_flag=True,
    help="After a guest kernel crashes or hangs, boot a fresh guest and go on with the runs "
    "left (the crashed run is named in the header and results.json).",
)
@guest_options
@click.pass_context
def vm_bench_command(
    ctx: click.Context,
    runtime: float,
    bs: int,
    pin: str,
    ioengine: str | None,
    replay: bool,
    keep_going: bool,
    out_dir: Path,
    as_json: bool,
    kernel_spec: str,
    modules: Path | None,
    patches: tuple[Path, ...],
    fixes: str | None,
    vcpus: int,
    memory: str,
    cache: Path | None,
    **sweep_args: Any,
) -> None:
    """dpas bench --device, run in a throw-away QEMU guest on its polled NVMe drive.

    The guest's /proc/interrupts counts for the NVMe queues are recorded per run, so the
    table shows that CP really polled (no interrupts) and INT did not. With --engine dpas,
    dpas's own engine completes the I/Os in the guest: every mode, HYB too, on any kernel.
    """
    engine = sweep_args["engine"]
    if "dpas" not in engine.split(",") and sweep_args["order"] != "kernel":
        raise InputError("--order sets the engine's DPAS test order: it needs --engine dpas")
    refuse_unused(ctx, str(DRIVE), engine)  # as dpas bench --device: the guest's drive
    refuse_with_workload(ctx)
    sweep = parse_sweep(
        sweep_args, cpus=parse_cpus("--pin", pin, lists=True), runtime_s=runtime, bs=bs
    )
    sweep = workload_runtime(ctx, sweep, option="runtime")
    views = Views.of(sweep_args)
    check_out_dir(out_dir)
    console = Console(stderr=as_json)
    guest = GuestRun(cpus=vcpus, memory=memory, ioengine=ioengine)
    config = guest_config(guest, kernel_spec, modules, patches, fixes, cache, console)
    log_dir = (out_dir / "logs").absolute() if sweep_args["log"] else None
    backend = VmBackend(
        replace(config, engine=engine, log_dir=log_dir, keep_going=keep_going, replay=replay)
    )
    try:
        run_backend(
            backend,
            sweep,
            console,
            out_dir,
            as_json,
            lambda outcome: f"dpas vm bench ({outcome.context['kernel']})",
            spinner="building and booting the guest (TCG takes a minute)",
            views=views,
        )
    except VmError as err:
        raise InputError(str(err)) from None


def guest_config(
    run: GuestRun,
    kernel_spec: str,
    modules: Path | None,
    patches: tuple[Path, ...],
    fixes: str | None,
    cache: Path | None,
    console: Console,
) -> VmConfig:
    """The guest of the shared options, its kernel options checked before anything is fetched."""
    names = check_kernel(kernel_spec, modules, patches, fixes)
    return VmConfig(
        run,
        kernel_spec,
        modules,
        cache or default_cache(),
        patches=patches,
        fixes=names,
        progress=progress_lines(console),
    )


@vm.command("shell")
@guest_options
def vm_shell_command(
    kernel_spec: str,
    modules: Path | None,
    patches: tuple[Path, ...],
    fixes: str | None,
    vcpus: int,
    memory: str,
    cache: Path | None,
) -> None:
    """Boot the guest with a shell on this terminal (poweroff -f leaves it)."""
    run = GuestRun(cpus=vcpus, memory=memory)
    config = guest_config(run, kernel_spec, modules, patches, fixes, cache, Console(stderr=True))
    try:
        sys.exit(shell(config))
    except VmError as err:
        raise InputError(str(err)) from None


@vm.command("doctor")
@click.argument("devices", nargs=-1, metavar="[DEV]...")
@guest_options
@click.option("--json", "as_json", is_flag=True, help="Print the guest's findings as JSON.")
def vm_doctor_command(
    devices: tuple[str, ...],
    kernel_spec: str,
    modules: Path | None,
    patches: tuple[Path, ...],
    fixes: str | None,
    vcpus: int,
    memory: str,
    cache: Path | None,
    as_json: bool,
) -> None:
    """`dpas doctor` inside the guest, against its polled NVMe drive (default nvme0n1).

    Boots the guest with dpas and its Python in the initramfs, runs every check there (io_poll,
    poll queues, the io_uring IOPOLL and HYBRID_IOPOLL probes, the interrupt probe, the timer
    table) and prints the findings as `dpas doctor` does.
    """
    for device in devices:
        if not re.fullmatch(r"[\w./-]{1,64}", device):
            raise InputError(f"{device!r}: expected a guest block device such as nvme0n1")
    console = Console(stderr=as_json)
    run = GuestRun(cpus=vcpus, memory=memory)
    config = guest_config(run, kernel_spec, modules, patches, fixes, cache, console)
    with console.status("booting the guest to run dpas doctor in it (TCG takes a minute)"):
        record = vm_doctor(config, devices)
    if as_json:
        click.echo(json.dumps(record, indent=1, allow_nan=False))
        return
    guest = record["guest"]
    console.print(f"guest kernel {guest['kernel']} under {str(guest['accelerator']).upper()}")
    show(examination(record), console)
