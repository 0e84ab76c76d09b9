"""``dpas restore``: put back the knobs a crashed run left changed."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from dpas.cli.app import EXIT_USAGE, cli
from dpas.errors import DpasError
from dpas.real.executor import LocalExecutor
from dpas.real.knobs import journals, restore_journal, state_dir


@cli.command("restore")
@click.option(
    "--journal",
    type=click.Path(path_type=Path),
    default=None,
    help="The journal a real run kept (default: every journal in ~/.local/state/dpas).",
)
def restore_command(journal: Path | None) -> None:
    """Write back the queue knob values saved by a `dpas bench --device` that did not finish.

    Refused while a live run holds the device: it restores its own knobs when it ends.
    """
    if journal is not None:
        _restore(journal)
        return
    found = journals()
    if not found:
        click.echo(f"no journal in {state_dir()}: nothing to restore")
        return
    failed = 0
    for path in found:  # every journal is tried; each failure is one line
        try:
            _restore(path)
        except DpasError as err:
            click.echo(f"dpas: error: {err}", err=True)
            failed += 1
    if failed:
        sys.exit(EXIT_USAGE)


def _restore(journal: Path) -> None:
    originals = restore_journal(LocalExecutor(), journal)
    for name, value in originals.items():
        click.echo(f"restored {name} = {value}")
    click.echo(f"removed {journal.absolute()}")
