"""``dpas restore``: put back the knobs a crashed run left changed."""

from __future__ import annotations

from pathlib import Path

import click

from dpas.cli.app import InputError, cli
from dpas.real.executor import LocalExecutor
from dpas.real.knobs import KnobError, default_journal, restore_journal


@cli.command("restore")
@click.option(
    "--journal",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The journal a real run kept (default: ~/.local/state/dpas/knobs-journal.json).",
)
def restore_command(journal: Path | None) -> None:
    """Write back the queue knob values saved by a `dpas bench --device` that did not finish."""
    path = journal or default_journal()
    try:
        originals = restore_journal(LocalExecutor(), path)
    except KnobError as err:
        raise InputError(str(err)) from None
    for name, value in originals.items():
        click.echo(f"restored {name} = {value}")
