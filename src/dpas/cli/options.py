"""Options that several commands share."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import click

from dpas.cli.app import InputError
from dpas.errors import LimitError
from dpas.limits import INT_MAX, checked
from dpas.policy import Op, Order, SwitchParams

#: ASCII digits only: str.isdigit() also takes '²' and other scripts' digits
WHOLE = re.compile(r"[+-]?[0-9]+")


class Number(click.ParamType):
    """A finite number in [low, high] (a whole number where ``integer``), checked as parsed;
    ``above`` excludes the low end itself (a runtime of 0 s is no run)."""

    def __init__(
        self, low: float, high: float, *, integer: bool = False, above: bool = False
    ) -> None:
        self.low, self.high, self.integer, self.above = low, high, integer, above
        self.name = "integer" if integer else "number"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value
        what = param.get_error_hint(ctx) if param is not None and ctx is not None else "value"
        try:
            return parse_number(what, value, self.low, self.high, self.integer, self.above)
        except LimitError as err:
            self.fail(str(err), param, ctx)

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return "N" if self.integer else "X"


def parse_number(
    what: str, text: str, low: float, high: float, integer: bool = False, above: bool = False
) -> Any:
    """``text`` as an int (ASCII digits) or a finite float, in range; LimitError otherwise."""
    text = text.strip()
    kind = "a whole number" if integer else "a number"
    bound = f"above {low:g}" if above else f"from {low:g}"
    accepted = f"expected {kind} {bound} to {high:g}"
    if integer:
        if not WHOLE.fullmatch(text):
            raise LimitError(f"{what} {text!r}: {accepted}")
        value: float = int(text)
    else:
        try:
            value = float(text)
        except ValueError:
            raise LimitError(f"{what} {text!r}: {accepted}") from None
    if above and value == low:
        raise LimitError(f"{what} {text}: {accepted}")
    try:
        return checked(what, value, low, high, integer=integer)
    except LimitError:
        raise LimitError(f"{what} {text}: {accepted}") from None


def switch_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """--order and --param1 .. --param7: DPAS's switch knobs, with the kernel's defaults."""
    for i in reversed(range(1, 8)):
        default = getattr(SwitchParams(), f"param{i}")
        f = click.option(
            f"--param{i}",
            type=Number(-1, INT_MAX, integer=True),
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
