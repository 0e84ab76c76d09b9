"""Options that several commands share."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from dpas.policy import Order, SwitchParams


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
