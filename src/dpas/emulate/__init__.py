"""Trace emulators: run completion methods over a device-latency trace (the lab's pages).

``emulate(trace, methods, config)`` runs each method, under the kernel model (the policy
core, integer ns) or the page model (the lab's floating-point pages), and returns per-I/O
logs and one summary record per method.
"""

from dpas.emulate.config import EmulateConfig, Model
from dpas.emulate.iolog import IoLog, Outcome
from dpas.emulate.run import SCHEMA, Emulation, emulate
from dpas.emulate.summary import MethodSummary
from dpas.emulate.traces import Trace, TraceError, load

__all__ = [
    "SCHEMA",
    "EmulateConfig",
    "Emulation",
    "IoLog",
    "MethodSummary",
    "Model",
    "Outcome",
    "Trace",
    "TraceError",
    "emulate",
    "load",
]
