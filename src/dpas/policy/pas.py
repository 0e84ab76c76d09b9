"""PAS: per-I/O adaptive sleep, in the kernel's fixed-point integer arithmetic (reference §2)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from enum import IntEnum

from dpas.policy.base import Io, Policy
from dpas.policy.pas_update import Case, PasUpdate
from dpas.policy.request import STATS_BUCKETS, Bucketing
from dpas.policy.rules import LAB, Rules

#: Fixed-point 1.0 of adj, up, dn, heat_up and cool_dn.
DIV = 1_000_000
_U64 = (1 << 64) - 1
_U32 = (1 << 32) - 1
_U8 = 0xFF
_CASES = tuple(Case)


class Adaptive(IntEnum):
    """pas_adaptive_enabled: which rate adapts between updates."""

    OFF = 0
    DN = 1  # dn heats up / cools down, up follows as dn / updn_ratio
    UP = 2  # up alone, between DIV/10000 and DIV/10


@dataclass(frozen=True, slots=True)
class PasParams:
    """Queue-wide PAS constants, named after their sysfs knobs (pas_d_init, ...).

    ``adaptive`` defaults to 1 because every PAS and DPAS run of the paper and the lab sets
    pas_adaptive_enabled=1 (the kernel's own default is 0).
    """

    d_init: int = 100
    up_init: int = 10_000
    dn_init: int = 100_000
    heat_up: int = 50_000
    cool_dn: int = 100_000
    min_dn: int = 10_000
    max_dn: int = 100_000
    updn_ratio: int = 10
    adaptive: Adaptive | int = Adaptive.DN  # an int is taken as its Adaptive

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value < 0 or (f.name == "updn_ratio" and value == 0):
                raise ValueError(
                    f"pas {f.name} {value}: expected an integer >= 0 (> 0 for updn_ratio)"
                )
        object.__setattr__(self, "adaptive", Adaptive(self.adaptive))


@dataclass(slots=True)
class PasState:
    """One CPU's state for one statistics bucket (kernel: struct blk_rq_pas_stat)."""

    dur: int
    adj: int
    up: int
    dn: int
    sr_pnlt: int = 0
    sr_last: int = 1
    dur_cnt: int = 1
    dur_cnt_checked: int = 0
    update_req: int = 0

    @classmethod
    def initial(cls, params: PasParams) -> PasState:
        return cls(dur=params.d_init, adj=DIV, up=params.up_init, dn=params.dn_init)

    def feedback(self, dur_cnt: int, overslept: bool) -> bool:
        """Record the result of the I/O that slept generation ``dur_cnt``.

        Only the first completion of the current generation reports; the rest are ignored
        (returns False), so one result drives at most one update.
        """
        if dur_cnt != self.dur_cnt or self.dur_cnt == self.dur_cnt_checked:
            return False
        self.dur_cnt_checked = self.dur_cnt
        self.sr_pnlt = self.sr_last
        self.sr_last = 0 if overslept else 1
        self.update_req = 1
        return True

    def update(self, params: PasParams, force: bool = False) -> PasUpdate | None:
        """Apply a pending result to dur before the next sleep; None when nothing is pending.

        Written with locals: it runs once per I/O in every emulation.
        """
        if not (self.update_req or force):
            return None
        self.update_req = 0
        adj, up, dn = self.adj, self.up, self.dn
        case = self.sr_pnlt * 2 + self.sr_last
        if case == 0:  # over, over
            adj -= dn
        elif case == 1:  # over, under
            adj = DIV + up
        elif case == 2:  # under, over
            adj = DIV - dn
        else:  # under, under
            adj += up
        if adj <= 0:
            adj = DIV
        # u64 multiply, truncating divide: the kernel's dur * adj / div
        dur = (self.dur * adj & _U64) // DIV
        floored = dur < params.d_init
        if floored:
            dur = params.d_init
        # dur_cnt is a u8 in the kernel; it wraps
        self.dur_cnt = (self.dur_cnt + 1) & _U8
        # the rates adapt after the update: same verdict twice heats up, a flip cools down
        heat = case == 0 or case == 3
        adaptive = params.adaptive
        if adaptive == 1:  # Adaptive.DN: dn moves, up follows
            if heat:
                dn = dn * (DIV + params.heat_up) // DIV
                if dn > params.max_dn:
                    dn = params.max_dn
                up = dn // params.updn_ratio
            else:
                up = up * (DIV - params.cool_dn) // DIV
                if up < params.min_dn // params.updn_ratio:
                    up = params.min_dn // params.updn_ratio
                dn = up * params.updn_ratio
        elif adaptive == 2:  # Adaptive.UP: up alone, within [DIV/10000, DIV/10]
            if heat:
                up = up * (DIV + params.heat_up) // DIV
                if up > DIV // 10:
                    up = DIV // 10
            else:
                up = up * (DIV - params.cool_dn) // DIV
                if up < DIV // 10_000:
                    up = DIV // 10_000
        self.adj, self.up, self.dn, self.dur = adj, up, dn, dur
        return PasUpdate(_CASES[case], adj, dur, up, dn, floored)


class PasPolicy(Policy):
    """PAS (pas_enabled=1, switch_enabled=0): sleep the bucket's learned dur, then poll."""

    name = "PAS"

    def __init__(
        self,
        params: PasParams | None = None,
        bucketing: Bucketing | None = None,
        rules: Rules = LAB,
    ) -> None:
        super().__init__(bucketing)
        self.params = params or PasParams()
        self.rules = rules
        self._cpus: dict[int, list[PasState]] = {}

    def state(self, cpu: int, bucket: int) -> PasState:
        """The PAS state of (cpu, bucket), created with the initial values on first use."""
        states = self._cpus.get(cpu)
        if states is None:
            states = self._cpus[cpu] = [PasState.initial(self.params) for _ in range(STATS_BUCKETS)]
        return states[bucket]

    def on_wait_start(self, io: Io, now_ns: int) -> int:
        return self._pas_sleep(io, force_update=False)

    def _pas_sleep(self, io: Io, force_update: bool) -> int:
        """Apply any pending update, then give this I/O the bucket's dur and generation."""
        if io.bucket < 0:
            return 0
        state = self.state(io.cpu, io.bucket)
        io.pas_update = update = state.update(self.params, force_update)
        if update is not None and update.floored:
            self._on_floor(io.cpu)
        io.dur_cnt = state.dur_cnt
        # the artifact hands the timer an unsigned int of ns (reference section 9)
        io.sleep_ns = state.dur & _U32 if self.rules.u32_sleep else state.dur
        return io.sleep_ns

    def _on_floor(self, cpu: int) -> None:
        """A timer-floor event; only DPAS counts them."""

    def on_complete(
        self, io: Io, now_ns: int, found_on_first_poll: bool = False, cpu: int | None = None
    ) -> None:
        # feedback only from the CPU that slept, for the generation it slept
        if io.dur_cnt < 0 or (cpu is not None and cpu != io.cpu):
            return
        self.state(io.cpu, io.bucket).feedback(io.dur_cnt, found_on_first_poll)
