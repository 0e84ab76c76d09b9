"""The ``dpas`` command. Bad input gives one line on stderr and exit code 2, never a traceback."""

from __future__ import annotations

import signal
import sys

import click

from dpas import __version__
from dpas.errors import DpasError

EXIT_USAGE = 2


class InputError(click.UsageError):
    """Bad input found after parsing (a value out of range, an unreadable file)."""


def help_without_subcommand(ctx: click.Context) -> None:
    """A group called alone prints its help and exits 0, as `git` does."""
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dpas")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """DPAS I/O completion methods: INT, CP, LHP, EHP, PAS and DPAS."""
    help_without_subcommand(ctx)


def register() -> None:
    """Attach the subcommands (their modules import this one for ``cli``)."""
    from dpas.cli import (  # noqa: F401  (registers them)
        bench,
        compare,
        doctor,
        emulate,
        policy,
        restore,
        sweep,
        tune,
        validate,
        vm,
        waf,
    )


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the command, turning usage errors into one line and exit code 2."""
    # the helper threads numpy and pyarrow start as the commands import them inherit this
    # block, so a Ctrl-C always lands on the main thread, never on one of them while a command
    # ignores SIGINT for a moment (dpas.sweep.schedulers, as a cluster's workers start)
    held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        register()
        signal.pthread_sigmask(signal.SIG_SETMASK, held)  # a Ctrl-C held back: raised here
    except KeyboardInterrupt:
        click.echo("dpas: aborted", err=True)
        sys.exit(130)
    try:
        cli.main(args=argv, prog_name="dpas", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("dpas: aborted", err=True)
        sys.exit(130)
    except click.UsageError as err:
        hint = ""
        if err.ctx is not None and not isinstance(err, InputError):
            hint = f" (see '{err.ctx.command_path} --help')"
        message = " ".join(err.format_message().split())
        click.echo(f"dpas: error: {message}{hint}", err=True)
        sys.exit(EXIT_USAGE)
    except DpasError as err:
        click.echo(f"dpas: error: {' '.join(str(err).split())}", err=True)
        sys.exit(err.exit_code)
    except click.ClickException as err:
        click.echo(f"dpas: error: {' '.join(err.format_message().split())}", err=True)
        sys.exit(err.exit_code)
    except BrokenPipeError:
        sys.exit(0)
