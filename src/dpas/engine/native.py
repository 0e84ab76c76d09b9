"""The compiled hot loop, loaded once; a clear error where it was not built."""

from __future__ import annotations

from types import ModuleType

from dpas.errors import DpasError


class EngineMissing(DpasError):
    """dpas was installed without its compiled engine (no C compiler or Python headers)."""


def native() -> ModuleType:
    """``dpas.engine._engine``, or EngineMissing saying how to build it."""
    try:
        from dpas.engine import _engine
    except ImportError as err:
        raise EngineMissing(
            f"the engine's compiled loop is missing ({err}): install a C compiler and Python's "
            "headers (apt-get install gcc python3-dev), then python3 -m pip install -e . again"
        ) from None
    return _engine
