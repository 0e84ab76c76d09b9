"""Queue knobs: read, set for a run, and always put back; a journal survives crashes.

Before the first write the original values go to a journal file; they are written back in a
finally block (errors, Ctrl-C) and the journal is removed only once they are. If the process
dies in between, ``dpas restore`` reads the journal and puts them back.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

from dpas.errors import DpasError
from dpas.real.executor import Executor, open_regular
from dpas.real.lock import Busy, DeviceLock


class KnobError(DpasError, RuntimeError):
    """A knob could not be read or written; the message names it."""


def state_dir() -> Path:
    """Where journals live: $XDG_STATE_HOME/dpas (default ~/.local/state/dpas)."""
    state = Path(os.environ.get("XDG_STATE_HOME", Path.home() / ".local" / "state"))
    return state.absolute() / "dpas"


def default_journal(queue_dir: Path | None = None) -> Path:
    """One journal per queue, so that runs on two devices never share one; the old single
    name stays where no queue is known (and ``dpas restore`` still finds it)."""
    if queue_dir is None:
        return state_dir() / "knobs-journal.json"
    digest = hashlib.sha256(str(queue_dir).encode()).hexdigest()[:8]
    return state_dir() / "journals" / f"{queue_dir.parent.name}-{digest}.json"


def journals() -> list[Path]:
    """Every journal a run left in the state folder (what plain ``dpas restore`` restores)."""
    legacy = state_dir() / "knobs-journal.json"
    found = sorted((state_dir() / "journals").glob("*.json"))
    return ([legacy] if legacy.is_file() else []) + found


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


JOURNAL_SCHEMA = "dpas.knobs-journal/1"
#: knob names are sysfs file names: a journal naming anything else is not ours
KNOB_NAME = re.compile(r"[A-Za-z0-9_]{1,64}")
MAX_JOURNAL_BYTES = 1 << 20


def _save(journal: Path, record: dict[str, object]) -> None:
    try:
        journal.parent.mkdir(parents=True, exist_ok=True)
        tmp = journal.with_suffix(".tmp")
        tmp.write_text(json.dumps(record, indent=1))
        tmp.replace(journal)  # atomic: a crash leaves the old journal or the new one
    except OSError as err:
        raise KnobError(f"cannot write the journal {journal}: {err.strerror or err}") from None


def check_journal_writable(journal: Path) -> None:
    """Before any run: a journal that cannot be written would stop the first knob change."""
    _save(journal.with_suffix(".probe"), {})
    journal.with_suffix(".probe").unlink()


def restore(knobs: QueueKnobs, originals: dict[str, str]) -> list[str]:
    """Write the originals back, last set first; returns the knobs that could not be, each
    with why ("scheduler (PATH: not a regular file)")."""
    failed = []
    for name, value in reversed(list(originals.items())):
        try:
            if knobs.read(name) != value:
                knobs.write(name, value)
        except KnobError as err:
            failed.append(f"{name} ({err})")
    return failed


def _unrestored(failed: list[str], where: Path, journal: Path) -> KnobError:
    return KnobError(
        f"could not restore {', '.join(failed)} in {where}; the journal {journal} keeps "
        f"the values: run 'dpas restore --journal {journal}'"
    )


@contextmanager
def applied(knobs: QueueKnobs, writes: dict[str, str], journal: Path) -> Iterator[dict[str, str]]:
    """Set ``writes`` for the duration of the block; yields the original values.

    The originals reach the journal before the first write and leave it only once every one
    is back. Nothing here catches signals: ``dpas.real.stop`` turns them into an orderly end of
    the block, so the finally below always runs to its end.
    """
    journal = journal.absolute()
    if journal.exists():
        raise KnobError(
            f"journal {journal} is from a run that did not restore its knobs: "
            f"run 'dpas restore --journal {journal}' first"
        )
    originals = {name: knobs.read(name) for name in writes}
    _save(
        journal,
        {
            "schema": JOURNAL_SCHEMA,
            "queue_dir": str(knobs.queue_dir.absolute()),
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
            raise _unrestored(failed, knobs.queue_dir, journal)
        journal.unlink(missing_ok=True)


def read_journal(journal: Path) -> tuple[Path, dict[str, str]]:
    """A journal's queue folder and original values; KnobError for a missing or corrupt one."""
    try:
        with open(open_regular(journal, os.O_RDONLY), "rb") as f:  # a FIFO: refused, no hang
            raw = f.read(MAX_JOURNAL_BYTES + 1)
    except FileNotFoundError:
        raise KnobError(f"journal {journal}: no such file, so nothing to restore") from None
    except OSError as err:
        raise KnobError(f"journal {journal}: unreadable ({err.strerror or err})") from None
    try:
        queue_dir, originals = _journal_fields(raw)
    except ValueError as err:
        raise KnobError(
            f"journal {journal} is corrupt: {err}; inspect it, then delete it"
        ) from None
    return queue_dir, originals


def _journal_fields(raw: bytes) -> tuple[Path, dict[str, str]]:
    if len(raw) > MAX_JOURNAL_BYTES:
        raise ValueError(f"larger than {MAX_JOURNAL_BYTES} bytes")
    try:
        record = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        raise ValueError(f"not JSON ({type(err).__name__})") from None
    if not isinstance(record, dict):
        raise ValueError(f"expected an object, found {type(record).__name__}")
    if record.get("schema", JOURNAL_SCHEMA) != JOURNAL_SCHEMA:
        raise ValueError(f"schema {str(record['schema'])[:40]!r} is not {JOURNAL_SCHEMA}")
    queue_dir, knobs = record.get("queue_dir"), record.get("knobs")
    if not isinstance(queue_dir, str) or "\0" in queue_dir or not _is_queue(Path(queue_dir)):
        # restore writes files there: nothing but a queue folder may be named
        raise ValueError("queue_dir is not an absolute path of the form .../block/DISK/queue")
    if not isinstance(knobs, dict) or not knobs:
        raise ValueError("knobs is not an object of knob values")
    for name, value in knobs.items():
        if not KNOB_NAME.fullmatch(name):
            raise ValueError(f"{name[:40]!r} is not a knob name")
        if not isinstance(value, str) or len(value) > 4096 or "\n" in value:
            raise ValueError(f"the value of {name} is not a knob value")
    return Path(queue_dir), dict(knobs)


def _is_queue(path: Path) -> bool:
    parts = path.parts
    return (
        path.is_absolute()
        and ".." not in parts
        and len(parts) >= 4
        and parts[-1] == "queue"
        and parts[-3] == "block"
    )


def restore_journal(executor: Executor, journal: Path) -> dict[str, str]:
    """Put back what a crashed run left changed; returns what the journal held.

    Refused while a live run holds the device: that run restores its own knobs, and writing
    them back under it would spoil its measurement.
    """
    journal = journal.absolute()
    queue_dir, originals = read_journal(journal)
    lock = DeviceLock(str(queue_dir), queue_dir.parent.name)
    pid = lock.holder()
    if pid is not None:
        raise Busy(
            f"a live dpas run (pid {pid}) holds {queue_dir.parent.name} and will restore its "
            f"own knobs; restoring {journal} now would undo them mid-measurement"
        )
    with lock:
        failed = restore(QueueKnobs(executor, queue_dir), originals)
        if failed:
            raise _unrestored(failed, queue_dir, journal)
        journal.unlink(missing_ok=True)
    return originals
