"""Options that several commands share."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from dpas.policy import SwitchParams


def switch_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """--param1 .. --param7: DPAS's switch_param knobs, with the kernel's defaults."""
    for i in reversed(range(1, 8)):
        default = getattr(SwitchParams(), f"param{i}")
        f = click.option(
            f"--param{i}",
            type=click.IntRange(min=-1),
            default=default,
            show_default=True,
            help=f"DPAS switch_param{i}.",
        )(f)
    return f
