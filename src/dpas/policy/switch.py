"""DPAS's per-CPU mode switch: states, parameters, and the evaluation (reference §4)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from enum import Enum, IntEnum

from dpas.policy.rules import LAB, Rules, c_div, c_int


class Mode(IntEnum):
    """The kernel's mode numbers, as switch_stat prints them."""

    INT = 0
    CP = 1
    PAS = 2
    OL = 3
    #: the artifact kernel's EHP leaves 4 in switch_stat (reference §9); the switch never
    #: enters it, so it only ever comes from parsing
    EHP = 4


class Order(Enum):
    """Which PAS-exit test comes first when both hold."""

    KERNEL = "kernel"  # the published kernel: tf > p1 (-> OL) before avg_qd == 10 (-> CP)
    GUIDE = "guide"  # the lab guide's listing: the CP test first


#: The edges of the state machine; every transition is one of these.
EDGES = frozenset(
    {
        (Mode.PAS, Mode.OL),
        (Mode.PAS, Mode.CP),
        (Mode.CP, Mode.PAS),
        (Mode.OL, Mode.PAS),
        (Mode.OL, Mode.INT),
        (Mode.INT, Mode.OL),
    }
)


INT_MAX = 2**31 - 1
#: the evaluation periods: with 0 (or -1) an evaluation can run on a count of 0, and the
#: artifact kernel divides by it (reference section 9)
PERIODS = ("param5", "param6", "param7")


def param_error(name: str, value: object) -> str | None:
    """Why switch_``name`` cannot be ``value`` (the value, then what is accepted), or None."""
    if not isinstance(value, int) or not -1 <= value <= INT_MAX:
        return f"{value!r}: expected an integer from -1 to {INT_MAX} (the kernel's int attribute)"
    if name in PERIODS and value < 1:
        return (
            f"{value}: an evaluation period of {value} I/Os, on which the kernel would divide "
            f"by zero (accepted: 1 to {INT_MAX})"
        )
    return None


@dataclass(frozen=True, slots=True)
class SwitchParams:
    """switch_param1..7 with the kernel's defaults. Queue depths are in tenths (10 = 1.0)."""

    param1: int = 0  # PAS -> OL when tf > param1
    param2: int = 10  # OL -> PAS when avg_qd <= param2
    param3: int = 10  # OL -> INT when avg_qd > param3 (the paper: 30 on Optane)
    param4: int = 1  # PAS -> CP allowed when >= 1
    param5: int = 100  # I/Os per evaluation in PAS and OL
    param6: int = 1000  # I/Os spent in CP before PAS is tried again
    param7: int = 10000  # I/Os spent in INT before OL is tried again

    def __post_init__(self) -> None:
        for f in fields(self):
            why = param_error(f.name, getattr(self, f.name))
            if why:
                raise ValueError(f"switch_{f.name} {why}")


@dataclass(frozen=True, slots=True)
class Transition:
    """One mode change on one CPU, with the evidence it was made on."""

    cpu: int
    now_ns: int
    old: Mode
    new: Mode
    #: the I/O count of the old mode that triggered the evaluation
    count: int
    #: qd_sum*10/count at the evaluation (None for CP->PAS and INT->OL, which do not use it)
    avg_qd: int | None
    tf: int


@dataclass(slots=True)
class SwitchState:
    """One CPU's switch state (kernel: struct blk_switch)."""

    mode: Mode = Mode.PAS
    cp_cnt: int = 0
    pas_cnt: int = 0
    ol_cnt: int = 0
    int_cnt: int = 0
    cp_total: int = 0
    pas_total: int = 0
    ol_total: int = 0
    int_total: int = 0
    qd: int = 0
    qd_sum: int = 0
    tf: int = 0
    #: the next PAS update on this CPU runs even without a pending result (after CP -> PAS)
    force_update: bool = False
    #: an evaluation is running (the try-lock); a second one is skipped
    evaluating: bool = False
    evaluations_skipped: int = 0

    def count_submit(self, params: SwitchParams) -> tuple[bool, Mode | None]:
        """Submission hook: (polled, new mode if INT -> OL happened)."""
        mode = self.mode
        if mode == Mode.INT:
            self.int_cnt += 1
            self.int_total += 1
            if self.int_cnt >= params.param7:
                self.mode = Mode.OL
                self.ol_cnt = self.qd_sum = self.tf = 0
                return False, Mode.OL
            return False, None
        if mode == Mode.CP:
            self.cp_cnt += 1
            self.cp_total += 1
        elif mode == Mode.PAS:
            self.pas_cnt += 1
            self.pas_total += 1
        else:
            self.ol_cnt += 1
            self.ol_total += 1
        return True, None

    def evaluate(
        self, params: SwitchParams, order: Order = Order.KERNEL, rules: Rules = LAB
    ) -> tuple[Mode, int, int | None] | None:
        """Decide whether to leave the current mode.

        Returns (new mode, count, avg_qd) when the mode changed, else None. Every evaluation
        that reaches its count resets the window (qd_sum, tf and the landing mode's counter),
        whether or not the mode changes.
        """
        mode = self.mode
        if mode == Mode.CP:
            if self.cp_cnt < params.param6:
                return None
            count = self.cp_cnt
            self.mode = Mode.PAS
            self.pas_cnt = self.tf = self.qd_sum = 0
            self.force_update = True
            return Mode.PAS, count, None
        if mode == Mode.PAS:
            return self._evaluate_pas(params, order, rules)
        if mode == Mode.OL:
            return self._evaluate_ol(params, rules)
        return None  # INT leaves only from the submission hook

    def avg_qd(self, count: int, rules: Rules = LAB) -> int:
        """qd_sum*10/count: the mean queue depth in tenths over the window."""
        if rules.int_avg_qd:  # C int arithmetic: wraps, truncates toward zero (reference §9)
            return c_int(c_div(c_int(c_int(self.qd_sum) * 10), count))
        return self.qd_sum * 10 // count

    def _evaluate_pas(
        self, params: SwitchParams, order: Order, rules: Rules
    ) -> tuple[Mode, int, int | None] | None:
        count = self.pas_cnt
        if count < params.param5 or count <= 0:
            return None
        avg_qd = self.avg_qd(count, rules)
        to_ol = self.tf > params.param1
        to_cp = params.param4 >= 1 and avg_qd == 10
        if order == Order.GUIDE and to_cp:
            to_ol = False
        self.qd_sum = self.tf = 0
        if to_ol:
            self.mode = Mode.OL
            self.ol_cnt = 0
            return Mode.OL, count, avg_qd
        if to_cp:
            self.mode = Mode.CP
            self.cp_cnt = 0
            return Mode.CP, count, avg_qd
        self.pas_cnt = 0
        return None

    def _evaluate_ol(
        self, params: SwitchParams, rules: Rules
    ) -> tuple[Mode, int, int | None] | None:
        count = self.ol_cnt
        if count < params.param5 or count <= 0:
            return None
        avg_qd = self.avg_qd(count, rules)
        self.qd_sum = self.tf = 0
        if avg_qd <= params.param2:
            self.mode = Mode.PAS
            self.pas_cnt = 0
            return Mode.PAS, count, avg_qd
        if avg_qd > params.param3:
            self.mode = Mode.INT
            self.int_cnt = 0
            return Mode.INT, count, avg_qd
        self.ol_cnt = 0
        return None

    @property
    def totals(self) -> dict[str, int]:
        """The four switch_stat totals: I/Os submitted in CP, PAS, OL and INT."""
        return {
            "cp": self.cp_total,
            "pas": self.pas_total,
            "ol": self.ol_total,
            "int": self.int_total,
        }
