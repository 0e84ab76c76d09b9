"""The device's interrupts during a run: one counter for fio, the engine, the QEMU guest and
the doctor's probe, so that every ``interrupts`` (the ``irqs`` column) means the same.

What counts: the /proc/interrupts lines of the device's I/O queues (NVMe ``nvme0q1``,
``nvme0q2``, ...: never ``nvme0q0``, the admin queue, whose interrupts are the driver's own
commands, not the run's I/Os; a virtio disk's ``virtio1-...`` lines), of those only the queues
the run's CPUs map to, summed over every CPU column, between a snapshot at the start of the
measurement and one at its end.

Which CPUs a queue serves is its IRQ's affinity mask, /proc/irq/N/smp_affinity_list: blk-mq
maps each CPU to the hardware queue whose IRQ mask holds it (the managed masks the driver
spreads). effective_affinity_list is only where the interrupt is delivered, one CPU of the mask
on x86: the virtio disk of this project's machines has mask 0-1 and effective affinity 1, and a
run on CPU 0 takes its interrupts all the same. So the effective list is read only where the
mask cannot be, and a queue whose affinity cannot be read at all counts: a count too high
rather than interrupts hidden.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from dataclasses import dataclass

from dpas.machine.fio import cpu_list
from dpas.machine.where import Where

#: a file's text under /proc by its path there ("irq/25/smp_affinity_list"); None: unreadable
Reader = Callable[[str], str | None]
#: where an IRQ's CPUs are read, in order of trust (see the module's docstring)
AFFINITY_FILES = ("smp_affinity_list", "effective_affinity_list")
#: the guest's shell dumps every IRQ's affinity with this, one "/proc/irq/N/FILE:LIST" a line
AFFINITY_DUMP = "grep -H . " + " ".join(f"/proc/irq/*/{f}" for f in AFFINITY_FILES) + " 2>/dev/null"


@dataclass(frozen=True, slots=True)
class Line:
    """One numbered line of /proc/interrupts: its IRQ and its count summed over the CPUs."""

    irq: str
    count: int


#: a /proc/interrupts snapshot: the numbered lines by their name (the last field)
Snapshot = dict[str, Line]


def parse(text: str) -> Snapshot:
    """/proc/interrupts as a Snapshot. Only numbered IRQs (the devices') have a /proc/irq/N;
    NMI, LOC and the like are left out."""
    lines = text.strip("\n").splitlines()
    cpus = len(lines[0].split()) if lines else 0
    out: Snapshot = {}
    for line in lines[1:]:
        fields = line.split()
        irq = fields[0].rstrip(":") if fields else ""
        if len(fields) < 2 or not re.fullmatch(r"[0-9]+", irq):
            continue
        counts = [int(f) for f in fields[1 : 1 + cpus] if re.fullmatch(r"[0-9]+", f)]
        out[fields[-1]] = Line(irq, sum(counts))
    return out


def io_queues(disk: str, where: Where | None = None) -> str | None:
    """A regular expression of the names of ``disk``'s I/O queue lines (nvme0q1...: the admin
    queue nvme0q0 never; virtio1-... for a virtio disk, found under ``where``'s sysfs), or None
    when dpas knows none."""
    if disk.startswith("nvme"):
        ctrl = re.match(r"nvme[0-9]+", disk)
        return rf"{ctrl[0]}q[1-9][0-9]*" if ctrl else None
    try:
        device = ((where or Where()).sysfs / "block" / disk / "device").resolve()
    except OSError:
        return None
    return rf"{re.escape(device.name)}-.*" if device.name.startswith("virtio") else None


def affinity(irq: str, read: Reader) -> frozenset[int] | None:
    """The CPUs IRQ ``irq`` serves (AFFINITY_FILES, the first readable); None: unknown."""
    for name in AFFINITY_FILES:
        text = read(f"irq/{irq}/{name}")
        try:
            return frozenset(cpu_list(text or ""))
        except ValueError:
            continue  # missing, empty (an IRQ shut down) or not a list: the next file
    return None


def affinity_listing(text: str) -> dict[str, str]:
    """What AFFINITY_DUMP printed, as a Reader's dict: "irq/25/smp_affinity_list" -> "0"."""
    found = re.findall(r"^/proc/(irq/[0-9]+/\w+):(.*)$", text, re.M)
    return {path: value.strip() for path, value in found}


def queue_lines(snapshot: Snapshot, queues: str | None) -> list[str]:
    """The names of the I/O queue lines (``queues``, from io_queues) in a snapshot."""
    return [n for n in snapshot if queues is not None and re.fullmatch(queues, n)]


def fired(
    before: Snapshot,
    after: Snapshot,
    queues: str | None,
    cpus: Collection[int] | None,
    read: Reader,
) -> int | None:
    """The interrupts between two snapshots on the I/O queues (``queues``) that serve one of
    ``cpus`` (None: any CPU); None when the device shows no I/O queue line (nothing to count).
    A queue whose count went back (a reset device) adds nothing, never a negative count."""
    names = queue_lines(before, queues)
    if not names:
        return None
    wanted = None if cpus is None else frozenset(cpus)
    return sum(
        max(after[n].count - before[n].count, 0)
        for n in names
        if n in after and _serves(before[n].irq, wanted, read)
    )


def _serves(irq: str, cpus: frozenset[int] | None, read: Reader) -> bool:
    """Whether IRQ ``irq``'s queue serves one of ``cpus`` (None: any); unknown: it may."""
    if cpus is None:
        return True
    cpus_of = affinity(irq, read)
    return cpus_of is None or bool(cpus_of & cpus)


class Counter:
    """One run's interrupts on this machine (or under a test's /proc): ``mark("start")`` and
    ``mark("stop")`` at the start and the end of the measurement (the engine calls them from
    its run; around fio, the runner does), then ``total``."""

    def __init__(self, disk: str | None, cpus: Collection[int] | None, where: Where) -> None:
        self.queues = io_queues(disk, where) if disk else None
        self.cpus = cpus
        self.where = where
        self.before: Snapshot = {}
        self.after: Snapshot = {}

    def read(self, path: str) -> str | None:
        """A Reader of this /proc (the test's, or the machine's)."""
        return self.where.read(self.where.proc / path)

    def snapshot(self) -> Snapshot:
        """/proc/interrupts now; nothing is read for a device with no queues dpas knows."""
        return parse(self.read("interrupts") or "") if self.queues is not None else {}

    def lines(self) -> list[str]:
        """The device's I/O queue lines now: whether there is anything to count."""
        return queue_lines(self.snapshot(), self.queues)

    def mark(self, moment: str) -> None:
        """The engine's ``marks``: "start" takes the first snapshot, "stop" the second."""
        if moment == "start":
            self.before = self.snapshot()
        elif moment == "stop":
            self.after = self.snapshot()

    def total(self) -> int | None:
        """The run's interrupts; None when nothing could be counted."""
        return fired(self.before, self.after, self.queues, self.cpus, self.read)
