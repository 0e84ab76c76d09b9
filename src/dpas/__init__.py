"""dpas: the DPAS I/O completion method, its lab, and the tools to run it."""

__version__ = "0.1.0"
