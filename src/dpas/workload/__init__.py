"""Workloads: job groups with a pattern in time, the same on every backend."""

from dpas.workload.load import WorkloadError, load, parse, shipped
from dpas.workload.model import STEADY, Group, Pattern, Role, Workload
from dpas.workload.pacer import NEVER, Pacer

__all__ = [
    "NEVER",
    "STEADY",
    "Group",
    "Pacer",
    "Pattern",
    "Role",
    "Workload",
    "WorkloadError",
    "load",
    "parse",
    "shipped",
]
