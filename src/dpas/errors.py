"""The one error type dpas explains to a user.

Every error that bad input, a refusal or a failed tool can cause derives from ``DpasError``:
the command line prints its message as one line and exits 2. Anything else that escapes is a
bug in dpas, and the fuzz tests look for exactly that.
"""

from __future__ import annotations


class DpasError(Exception):
    """Something dpas can say in one line: what input or tool, and what is accepted."""

    #: the command's exit status: 2 for bad input and refusals; a stop by signal N is 128 + N
    exit_code: int = 2


class LimitError(DpasError, ValueError):
    """A number outside what dpas accepts (not finite, or out of its stated range)."""
