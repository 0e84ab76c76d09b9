"""Queue knobs: read, set for a run, and always put back; a journal survives crashes.

Before the first write the original values go to a journal file; they are written back in a
finally block (errors, Ctrl-C) and the journal is removed only once they are. If the process
dies in between, ``dpas restore`` reads the journal and puts them back.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

from dpas.errors import DpasError
from dpas.real.executor import Executor

#: the knobs only the DPAS kernel has (reference section 1)
DPAS_KNOBS = (
    "pas_enabled",
    "pas_adaptive_enabled",
    "pas_d_init",
    "switch_enabled",
    "ehp_enabled",
    *(f"switch_param{i}" for i in range(1, 8)),
)


class KnobError(DpasError, RuntimeError):
    """A knob could not be read or written; the message names it."""


def default_journal() -> Path:
    state = Path(os.environ.get("XDG_STATE_HOME", Path.home() / ".local" / "state"))
    return state / "dpas" / "knobs-journal.json"


class Knobs(Protocol):
    """What a mode plan needs to know of a queue: which knobs exist and what they hold."""

    def has(self, name: str) -> bool: ...

    def read(self, name: str) -> str: ...


class QueueKnobs:
    """The knob files of one queue directory, through an executor."""

    def __init__(self, executor: Executor, queue_dir: Path) -> None:
        self.executor = executor
        self.queue_dir = queue_dir

    def has(self, name: str) -> bool:
        return self.executor.exists(self.queue_dir / name)

    def read(self, name: str) -> str:
        try:
            text = self.executor.read(self.queue_dir / name).strip()
        except OSError as err:
            raise KnobError(f"{self.queue_dir / name}: {err.strerror or err}") from None
        # a choice knob shows all choices with the current one in brackets
        chosen = re.search(r"\[([^\]]+)\]", text)
        return chosen[1] if chosen else text

    def write(self, name: str, value: str) -> None:
        try:
            self.executor.write(self.queue_dir / name, value)
        except OSError as err:
            raise KnobError(
                f"cannot set {self.queue_dir / name} to {value}: {err.strerror or err}"
            ) from None


def _save(journal: Path, record: dict[str, object]) -> None:
    journal.parent.mkdir(parents=True, exist_ok=True)
    tmp = journal.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=1))
    tmp.replace(journal)  # atomic: a crash leaves the old journal or the new one


def restore(knobs: QueueKnobs, originals: dict[str, str]) -> list[str]:
    """Write the originals back, last set first; returns the knobs that could not be."""
    failed = []
    for name, value in reversed(list(originals.items())):
        try:
            if knobs.read(name) != value:
                knobs.write(name, value)
        except KnobError:
            failed.append(name)
    return failed


@contextmanager
def applied(knobs: QueueKnobs, writes: dict[str, str], journal: Path) -> Iterator[dict[str, str]]:
    """Set ``writes`` for the duration of the block; yields the original values."""
    if journal.exists():
        raise KnobError(
            f"journal {journal} is from a run that did not restore its knobs: "
            f"run 'dpas restore --journal {journal}' first"
        )
    originals = {name: knobs.read(name) for name in writes}
    _save(
        journal,
        {
            "queue_dir": str(knobs.queue_dir),
            "knobs": originals,
            "pid": os.getpid(),
            "time": time.time(),
        },
    )
    try:
        for name, value in writes.items():
            knobs.write(name, value)
        yield originals
    finally:
        failed = restore(knobs, originals)
        if failed:
            raise KnobError(
                f"could not restore {', '.join(failed)}; the journal {journal} keeps "
                "them for 'dpas restore'"
            )
        journal.unlink()


def restore_journal(executor: Executor, journal: Path) -> dict[str, str]:
    """Put back what a crashed run left changed; returns what the journal held."""
    try:
        record = json.loads(journal.read_text())
    except FileNotFoundError:
        raise KnobError(f"journal {journal}: no such file, so nothing to restore") from None
    except (OSError, json.JSONDecodeError) as err:
        raise KnobError(f"journal {journal}: unreadable ({err})") from None
    queue_dir = Path(record["queue_dir"])
    originals = {str(k): str(v) for k, v in record["knobs"].items()}
    failed = restore(QueueKnobs(executor, queue_dir), originals)
    if failed:
        raise KnobError(f"could not restore {', '.join(failed)} in {queue_dir}")
    journal.unlink()
    return originals
