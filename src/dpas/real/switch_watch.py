"""switch_stat around a run, where the DPAS kernel keeps it: each CPU's switch mode before
and after, and for DPAS the I/Os each mode completed (the breakdown). The attribute's own text
is read, or, on the artifact kernel whose read only prints, the kernel log."""

from __future__ import annotations

from dataclasses import dataclass, field

from dpas.errors import DpasError
from dpas.policy.switch import Mode
from dpas.policy.switch_stat import NoBreakdown, SwitchStatLine, delta, latest, parse
from dpas.real.knobs import KnobError
from dpas.real.site import Site


@dataclass(frozen=True, slots=True)
class Snapshot:
    """switch_stat at one moment: its lines, or why they could not be read as such."""

    lines: list[SwitchStatLine] = field(default_factory=list)
    unread: str = ""

    @property
    def modes(self) -> dict[int, Mode]:
        """Each CPU's mode now (a kernel log holds older reads too: the last line counts)."""
        return {cpu: line.mode for cpu, line in latest(self.lines).items()}


#: what a queue without switch_stat gives
NO_SNAPSHOT = Snapshot()


class SwitchWatch:
    """The site's switch_stat; ``active`` where fio runs on a queue that has one (the DPAS
    kernel, whose switch state outlives runs; the engine keeps its own)."""

    def __init__(self, site: Site, fio: bool) -> None:
        self.site = site
        self.fio = fio

    @property
    def active(self) -> bool:
        knobs = self.site.knobs
        return self.fio and knobs is not None and knobs.has("switch_stat")

    def lines(self) -> list[SwitchStatLine]:
        """Both forms: the attribute's own text, or (artifact kernel) the kernel log."""
        knobs = self.site.knobs
        if knobs is None or not knobs.has("switch_stat"):
            return []
        path = knobs.queue_dir / "switch_stat"
        executor = self.site.executor
        try:
            lines = parse(executor.read(path))
            if lines:
                return lines
            return parse(executor.run(["dmesg"], 30).stdout)
        except FileNotFoundError:
            return []
        except OSError as err:
            raise KnobError(f"{path}: {err.strerror or err}") from None

    def snapshot(self) -> Snapshot:
        """switch_stat now (NO_SNAPSHOT when not watching), or why its text could not be read
        as switch_stat lines."""
        if not self.active:
            return NO_SNAPSHOT
        try:
            return Snapshot(self.lines())
        except KnobError:
            raise
        except (DpasError, ValueError) as err:
            return Snapshot([], f"switch_stat unreadable ({err})")


def breakdown(before: Snapshot, after: Snapshot) -> tuple[dict[str, int] | None, str]:
    """The I/Os per mode during a run, or None and why there is none (never a negative count)."""
    if before.unread or after.unread:
        return None, f"{before.unread or after.unread}: no breakdown"
    if not after.lines:
        return None, "switch_stat showed no CPU lines: no breakdown"
    try:
        return delta(before.lines, after.lines), ""
    except NoBreakdown as why:
        return None, f"{why}: no breakdown"


def cpu_modes(before: Snapshot, after: Snapshot) -> dict[str, dict[str, str]] | None:
    """Every CPU's mode before and after a run (CPU numbers as strings, as JSON keeps them)."""
    if not before.lines or not after.lines:
        return None
    return {
        side: {str(cpu): mode.name for cpu, mode in sorted(snap.modes.items())}
        for side, snap in (("before", before), ("after", after))
    }


def modes_unknown(before: Snapshot, after: Snapshot) -> str:
    unread = before.unread or after.unread
    return f"{unread or 'switch_stat showed no CPU lines'}: CPU modes unknown"
