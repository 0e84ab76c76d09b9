"""A doctor's finding: what was checked, what it read, and the command that fixes it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Status(Enum):
    OK = "OK"
    WARN = "WARN"
    FAIL = "FAIL"
    INFO = "INFO"


@dataclass(frozen=True, slots=True)
class Finding:
    status: Status
    check: str
    evidence: str
    fix: str = ""
