"""Every CPU a polled run uses starts in PAS: settled by the kernel's own path, or refused.

On the artifact DPAS kernel the per-CPU switch state is global and never reset; writing
switch_enabled only sets the flag (reference §9). A CPU that an earlier DPAS run left in INT
forces interrupts on every later polled run of any mode, since submission counts, and in INT
forces, every synchronous polled I/O whatever switch_enabled says. A CPU left in OL or CP
counts the run's I/Os in that mode, and a DPAS run would start there instead of in PAS. EHP
leaves MODE[4], a mode the switch has no way out of.

The way back is the switch's own (reference §4): with the DPAS knobs set, one job of
synchronous polled reads pinned to the CPU; INT leaves for OL after param7 I/Os, OL returns to
PAS when the mean queue depth over param5 I/Os is at most param2 (one job: 1.0, i.e. 10), CP
returns to PAS after param6 I/Os. ``Settler`` runs that in bounded steps and checks
switch_stat after each; ``Unsettled`` is the one-line refusal when it does not get there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from math import ceil

from dpas.errors import DpasError
from dpas.policy import Method, SwitchParams
from dpas.policy.switch import Mode
from dpas.real.modes import ModePlan

#: seconds a settling fio run may take at most (it stops at its I/O count long before)
RUN_CAP_S = 30.0

#: why a run on a CPU in this mode would not measure what it says
WHY = {
    Mode.INT: (
        "its polled I/Os would be forced to interrupt completion (the kernel does so in INT "
        "whatever switch_enabled says)"
    ),
    Mode.OL: "its I/Os would be counted in OL, and a DPAS run would start overloaded, not in PAS",
    Mode.CP: "its I/Os would be counted in CP, and a DPAS run would start polling, not in PAS",
}


class Unsettled(DpasError, RuntimeError):
    """A CPU the next polled run uses is out of PAS and stays there. It ends the sweep: the
    state is global, so every later polled run would be falsified in the same way."""


def counted(plan: ModePlan) -> bool:
    """Whether the switch sees this run's I/Os: only synchronous polled I/O is counted (and,
    in INT, forced to interrupts); interrupt runs and io_uring pass it by (reference §9)."""
    return plan.hipri and plan.ioengine == "pvsync2"


def out_of_pas(modes: dict[int, Mode], cpus: Iterable[int], plan: ModePlan) -> dict[int, Mode]:
    """The CPUs of ``cpus`` whose mode would falsify ``plan``'s run. A CPU switch_stat does not
    show is not judged. An EHP run accepts MODE[4]: it is the mark EHP itself leaves."""
    bad: dict[int, Mode] = {}
    for cpu in sorted(set(cpus)):
        mode = modes.get(cpu)
        if mode is None or mode is Mode.PAS:
            continue
        if mode is Mode.EHP and plan.mode is Method.EHP:
            continue
        bad[cpu] = mode
    return bad


def shown(mode: Mode) -> str:
    """A mode as the messages name it: MODE[4] has no name in the switch."""
    return "MODE[4]" if mode is Mode.EHP else f"{mode.name} (MODE[{int(mode)}])"


def _others(bad: dict[int, Mode], first: int) -> str:
    rest = [f"CPU {cpu} in {shown(mode)}" for cpu, mode in bad.items() if cpu != first]
    return f" (also {', '.join(rest)})" if rest else ""


def ehp_refusal(cpu: int, bad: dict[int, Mode]) -> str:
    return (
        f"CPU {cpu} is in MODE[4]{_others(bad, cpu)}, which an earlier EHP run left there "
        "(reference §9) and no DPAS I/O leaves: the switch has no transition out of it, so this "
        "run's I/Os would be counted in no mode of the switch; clear it with a reboot (and run "
        "EHP last in a sweep)"
    )


def clear_hint(cpu: int) -> str:
    return (
        f"clear it with a reboot, or run DPAS with one job on CPU {cpu} (fio pvsync2 hipri) "
        "until switch_stat shows MODE[2]"
    )


def no_settle_refusal(bad: dict[int, Mode]) -> str:
    """--no-settle: the refusal of a run whose CPUs are out of PAS, without trying."""
    cpu, mode = next(iter(bad.items()))
    return (
        f"CPU {cpu} was left in {shown(mode)} by an earlier DPAS run{_others(bad, cpu)} "
        f"(--no-settle): {WHY[mode]}; {clear_hint(cpu)}, or leave out --no-settle"
    )


def cannot_settle(bad: dict[int, Mode], why: str) -> str:
    """The refusal when the DPAS knobs themselves cannot be set here."""
    cpu, mode = next(iter(bad.items()))
    return (
        f"CPU {cpu} was left in {shown(mode)} by an earlier DPAS run{_others(bad, cpu)}: "
        f"{WHY[mode]}; dpas cannot settle it here ({why}); {clear_hint(cpu)}"
    )


def refuse_outright(bad: dict[int, Mode], settle: bool) -> None:
    """What is refused before any settling: MODE[4] (nothing leaves it), and with
    ``settle`` False everything out of PAS."""
    for cpu, mode in bad.items():
        if mode is Mode.EHP:
            raise Unsettled(ehp_refusal(cpu, bad))
    if bad and not settle:
        raise Unsettled(no_settle_refusal(bad))


@dataclass(frozen=True, slots=True)
class Budget:
    """How far settling one CPU may go: I/Os per fio run by mode, and in all."""

    chunk: dict[Mode, int]
    ios: int
    runs: int

    @classmethod
    def of(cls, params: SwitchParams, capacity: int | None = None) -> Budget:
        """From param5-7, twice the longest way back (INT -> OL -> PAS, via CP at worst).

        OL and CP go in steps of at most param5 I/Os: a CPU that reaches PAS within a step
        then has fewer than param5 PAS I/Os, so no PAS evaluation moves it on before the
        check. INT goes in one step of param7: it only counts I/Os until it leaves. A
        ``capacity`` (I/Os one run can read without time_based: the file's size) caps a step.
        """
        p5, p6, p7 = (max(v, 1) for v in (params.param5, params.param6, params.param7))
        cap = capacity if capacity is not None and capacity > 0 else p5 + p6 + p7
        c5, c7 = min(p5, cap), min(p7, cap)
        runs = ceil(p7 / c7) + ceil(p6 / c5) + 3 * ceil(p5 / c5)
        return cls({Mode.INT: c7, Mode.OL: c5, Mode.CP: c5}, 2 * (p7 + p6 + 3 * p5), 2 * runs)


class Settler:
    """Brings CPUs back to PAS with ``fio(cpu, n)`` (n polled single-job reads pinned to the
    CPU, with the DPAS knobs set; returns the I/Os done), reading ``modes()`` after each run."""

    def __init__(
        self,
        budget: Budget,
        fio: Callable[[int, int], int],
        modes: Callable[[], dict[int, Mode]],
        say: Callable[[str], None],
    ) -> None:
        self.budget = budget
        self.fio = fio
        self.modes = modes
        self.say = say

    def settle(self, cpu: int, mode: Mode) -> str:
        """CPU ``cpu``, found in ``mode``, back in PAS; returns the record's note of what it
        took (Unsettled: it did not get there within the budget). The mode is read again
        before the first run: a kernel that resets the switch when switch_enabled is written
        (the lab's) is back in PAS with no I/O at all."""
        budget = self.budget
        path, ios, runs = [mode], 0, 0
        self.say(
            f"settling CPU {cpu}, left in {shown(mode)}: one job of polled reads on it until "
            f"switch_stat shows PAS (at most {budget.ios} I/Os in {budget.runs} fio runs)"
        )
        while True:
            now = self.modes().get(cpu)
            if now is None:
                raise Unsettled(
                    f"CPU {cpu} is missing from switch_stat while it was settled from "
                    f"{shown(path[0])}: its mode is unknown; {clear_hint(cpu)}"
                )
            if now is not path[-1]:
                path.append(now)
            if now is Mode.PAS:
                break
            if now is Mode.EHP:
                raise Unsettled(ehp_refusal(cpu, {cpu: now}))
            left = budget.ios - ios
            if left <= 0 or runs >= budget.runs:
                raise Unsettled(self._refusal(cpu, path, ios, runs))
            ios += self.fio(cpu, min(budget.chunk[now], left))
            runs += 1
        way = " -> ".join(m.name for m in path)
        self.say(f"CPU {cpu} back in PAS: {way}, {ios} polled reads in {runs} fio runs")
        return f"CPU {cpu} settled {way} before the run ({ios} polled single-job reads)"

    def _refusal(self, cpu: int, path: list[Mode], ios: int, runs: int) -> str:
        way = " -> ".join(m.name for m in path)
        return (
            f"CPU {cpu} was left in {shown(path[0])} by an earlier DPAS run and is not back in "
            f"PAS (MODE[2]) after {ios} polled single-job reads in {runs} fio runs ({way}): "
            f"{WHY[path[0]]}; {clear_hint(cpu)}"
        )
