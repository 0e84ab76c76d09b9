"""DPAS: PAS plus the per-CPU switch among PAS, CP, OL and INT (reference §4)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from dpas.policy.base import Io
from dpas.policy.pas import PasParams, PasPolicy
from dpas.policy.request import Bucketing, Request
from dpas.policy.rules import LAB, SYNC_PATH_BYTES, Rules
from dpas.policy.switch import Mode, Order, SwitchParams, SwitchState, Transition


class DpasPolicy(PasPolicy):
    """pas_enabled=1, switch_enabled=1.

    An I/O whose request has no statistics bucket never enters the state machine: it is
    polled without sleeping and counted nowhere. That is how the unpatched bucket
    computation of reference §5.1 shows: switch_stat stays at "pas io: 0".
    """

    name = "DPAS"

    def __init__(
        self,
        params: PasParams | None = None,
        switch: SwitchParams | None = None,
        order: Order = Order.KERNEL,
        bucketing: Bucketing | None = None,
        rules: Rules = LAB,
    ) -> None:
        super().__init__(params, bucketing, rules)
        self.switch = switch or SwitchParams()
        self.order = order
        self._switch: dict[int, SwitchState] = {}
        #: every mode change, in event order
        self.transitions: list[Transition] = []

    def switch_state(self, cpu: int) -> SwitchState:
        state = self._switch.get(cpu)
        if state is None:
            state = self._switch[cpu] = SwitchState()
        return state

    @property
    def cpus(self) -> list[int]:
        """The CPUs that have seen an I/O, in order."""
        return sorted(self._switch)

    def on_submit(self, cpu: int, request: Request, now_ns: int) -> Io:
        bucket = self.bucketing.bucket(request)
        rules = self.rules
        if rules.sync_path_only and request.size > SYNC_PATH_BYTES:
            # not the synchronous path: the artifact counts it nowhere (reference section 9)
            return Io(request, cpu, now_ns, True, bucket, mode=self.switch_state(cpu).mode)
        if bucket < 0 and not rules.count_unbucketed:
            return Io(request, cpu, now_ns, True, bucket)
        sw = self.switch_state(cpu)
        old, tf = sw.mode, sw.tf
        polled, new = sw.count_submit(self.switch)
        if new is not None:
            self._record(cpu, now_ns, old, new, sw.int_cnt, None, tf)
        return Io(request, cpu, now_ns, polled, bucket, mode=old)

    def on_wait_start(self, io: Io, now_ns: int) -> int:
        if io.bucket < 0:
            return 0
        sw = self.switch_state(io.cpu)
        if sw.mode != Mode.CP:
            sw.qd += 1
            sw.qd_sum += sw.qd
            io.qd_counted = True
        self._try_evaluate(io.cpu, sw, now_ns)
        if sw.mode == Mode.CP:
            io.sleep_ns = 0
            return 0
        force, sw.force_update = sw.force_update, False
        return self._pas_sleep(io, force)

    def on_wait_end(self, io: Io, now_ns: int) -> None:
        if self.rules.qd_on_sleep:
            # the artifact lowers qd after any wait that slept, whoever raised it: a PAS->CP
            # switch at wait start leaks +1 (reference section 9)
            if io.bucket >= 0 and io.sleep_ns != 0:
                self.switch_state(io.cpu).qd -= 1
            io.qd_counted = False
            return
        if io.qd_counted:
            self.switch_state(io.cpu).qd -= 1
            io.qd_counted = False

    def _on_floor(self, cpu: int) -> None:
        self.switch_state(cpu).tf += 1

    def _try_evaluate(self, cpu: int, sw: SwitchState, now_ns: int) -> None:
        # events arrive one at a time, so only evaluation_held() can make the lock busy
        if sw.evaluating:
            sw.evaluations_skipped += 1
            return
        old, tf = sw.mode, sw.tf
        outcome = sw.evaluate(self.switch, self.order, self.rules)
        if outcome is not None:
            new, count, avg_qd = outcome
            self._record(cpu, now_ns, old, new, count, avg_qd, tf)

    @contextmanager
    def evaluation_held(self, cpu: int) -> Iterator[None]:
        """Hold the CPU's evaluation lock, as a concurrent evaluation on that CPU would.

        Evaluations attempted meanwhile are skipped (the kernel's try-lock), which a caller
        modelling preemption inside an evaluation needs.
        """
        sw = self.switch_state(cpu)
        if sw.evaluating:
            raise RuntimeError(f"cpu {cpu}: evaluation lock already held")
        sw.evaluating = True
        try:
            yield
        finally:
            sw.evaluating = False

    def _record(
        self, cpu: int, now_ns: int, old: Mode, new: Mode, count: int, avg_qd: int | None, tf: int
    ) -> None:
        self.transitions.append(Transition(cpu, now_ns, old, new, count, avg_qd, tf))
