"""``dpas policy``: the kernel's decision rules, step by step."""

from __future__ import annotations

import json

import click
from rich.console import Console
from rich.table import Table

from dpas.cli.app import cli, help_without_subcommand
from dpas.cli.options import rules_option
from dpas.policy import RULE_SETS
from dpas.policy.demo import DemoRun, demo_records, demo_runs


@cli.group(invoke_without_command=True)
@click.pass_context
def policy(ctx: click.Context) -> None:
    """The kernel's decision rules, step by step."""
    help_without_subcommand(ctx)


@policy.command()
@click.option("--json", "as_json", is_flag=True, help="Print the steps as JSON records.")
@rules_option
def demo(as_json: bool, rules_name: str) -> None:
    """Show PAS and DPAS deciding, I/O by I/O, over a built-in feedback script."""
    rules = RULE_SETS[rules_name]
    if as_json:
        click.echo(json.dumps(demo_records(rules), indent=1))
        return
    console = Console()
    for run in demo_runs(rules):
        console.print(_demo_table(run))
        console.print()


def _demo_table(run: DemoRun) -> Table:
    pas = run.pas
    caption = (
        f"d_init {pas['d_init']} ns, up_init {pas['up_init']}, dn_init {pas['dn_init']}, "
        f"pas_adaptive_enabled {pas['adaptive']}"
    )
    if run.switch:
        caption += ", " + ", ".join(f"{k} {v}" for k, v in run.switch.items())
    caption += (
        ". Script: jobs, feedback (O overslept, U underslept) * steps."
        " case: the last two results; tf: dur hit the d_init floor."
    )
    table = Table(
        title=f"{run.method}, script {run.script}",
        caption=caption,
        title_justify="left",
    )
    dpas = run.switch is not None
    # DPAS shows the mode and queue depth instead of the rates, to fit 80 columns
    columns = ["step", "mode", "qd", "sleep ns", "case", "dur", "floor", "fb", "transition"]
    if not dpas:
        columns = ["step", "sleep ns", "case", "adj", "dur", "up", "dn", "floor", "fb"]
    for name in columns:
        table.add_column(
            name, justify="left" if name in ("case", "mode", "transition") else "right"
        )
    for s in run.steps:
        values = {
            "step": f"{s.step}.{s.io}" if s.io else s.step,
            "mode": s.mode,
            "qd": "-" if s.qd is None else s.qd,
            "sleep ns": s.sleep_ns if s.polled else "irq",
            "case": s.case or "-",
            "adj": s.adj if s.case else "-",
            "dur": s.dur if s.case else "-",
            "up": s.up if s.case else "-",
            "dn": s.dn if s.case else "-",
            "floor": "tf" if s.floored else "",
            "fb": s.feedback or "-",
            "transition": " ".join(s.transitions),
        }
        table.add_row(*(str(values[name]) for name in columns))
    return table
