"""The ``dpas`` command: one module per command group, sharing app.cli and app.main."""

from dpas.cli.app import InputError, cli, main

__all__ = ["InputError", "cli", "main"]
