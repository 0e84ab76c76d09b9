"""Options that several commands share."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import click

from dpas.cli.app import InputError
from dpas.policy import Op, Order, SwitchParams


def switch_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """--order and --param1 .. --param7: DPAS's switch knobs, with the kernel's defaults."""
    for i in reversed(range(1, 8)):
        default = getattr(SwitchParams(), f"param{i}")
        f = click.option(
            f"--param{i}",
            type=click.IntRange(min=-1),
            default=default,
            show_default=True,
            help=f"DPAS switch_param{i}.",
        )(f)
    return click.option(
        "--order",
        type=click.Choice([o.value for o in Order]),
        default="kernel",
        show_default=True,
        help="DPAS PAS-exit test order: the kernel's (tf first) or the guide's.",
    )(f)


CPU_LIST = re.compile(r"0|split|\d+(-\d+)?(,\d+(-\d+)?)*")


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
    if not CPU_LIST.fullmatch(text) or (not lists and text not in ("0", "split")):
        more = ", or a cpus_allowed list like 0-3" if lists else ""
        raise InputError(f"{option} {text}: expected 0, split{more}")
    return text
