"""dpas: the DPAS I/O completion method, its lab, and the tools to run it."""

from dpas import compiled as _compiled

__version__ = "0.1.0"

# before any simulator module is imported: compiled (mypyc) or, if not usable, all from .py
_compiled.install()
