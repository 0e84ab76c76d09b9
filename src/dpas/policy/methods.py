"""The six completion methods by name, and one config that builds any of them."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from dpas.policy.base import Policy
from dpas.policy.classic import CpPolicy, IntPolicy
from dpas.policy.dpas import DpasPolicy
from dpas.policy.ehp import EhpParams, EhpPolicy
from dpas.policy.lhp import LHP_WINDOW_NS, LhpPolicy
from dpas.policy.pas import PasParams, PasPolicy
from dpas.policy.request import Bucketing
from dpas.policy.rules import LAB, Rules
from dpas.policy.switch import Order, SwitchParams


class Method(Enum):
    """A completion method, named as bench.sh and the paper name it."""

    INT = "INT"
    CP = "CP"
    LHP = "LHP"
    EHP = "EHP"
    PAS = "PAS"
    DPAS = "DPAS"
    #: io_uring's own hybrid polling (IORING_SETUP_HYBRID_IOPOLL, 6.13+), the mainline
    #: descendant of LHP. The kernel decides its sleeps, so it has no policy here: only real
    #: runs (the engine) run it.
    HYB = "HYB"

    @classmethod
    def policies(cls) -> tuple[Method, ...]:
        """The six methods dpas.policy decides for (every method but HYB)."""
        return tuple(m for m in cls if m is not cls.HYB)

    @classmethod
    def parse(cls, text: str) -> Method:
        try:
            return cls(text.strip().upper())
        except ValueError:
            names = ", ".join(m.value for m in cls)
            raise ValueError(f"method {text!r}: expected one of {names}") from None


#: the methods that sleep before they poll, from pas_d_init or a guess: a run of one needs
#: bench.sh's auto pas_d_init measured first
SLEEPERS = (Method.LHP, Method.EHP, Method.PAS, Method.DPAS)
#: the methods whose wait the kernel makes on its own (interrupts, classic and hybrid polling):
#: a run of one only submits and waits, in one call
KERNEL_WAITS = (Method.INT, Method.CP, Method.HYB)
#: the order bench.sh's words, dpas bench's and a grid's modes are listed in: bench.sh's five
#: (its ALL), then EHP (the paper's extra baseline) and HYB
BENCH_ORDER = (Method.INT, Method.CP, Method.LHP, Method.PAS, Method.DPAS, Method.EHP, Method.HYB)
#: the order the engine's tables list its modes in: the kernel's waits, then the policies'
ENGINE_ORDER = KERNEL_WAITS + tuple(m for m in Method if m not in KERNEL_WAITS)


@dataclass(frozen=True, slots=True)
class PolicyConfig:
    """Everything that shapes a method's decisions; the knobs of reference §1-§4."""

    method: Method = Method.DPAS
    pas: PasParams = field(default_factory=PasParams)
    switch: SwitchParams = field(default_factory=SwitchParams)
    order: Order = Order.KERNEL
    #: LHP: 0 = adaptive, N > 0 = fixed N µs
    io_poll_delay: int = 0
    lhp_window_ns: int = LHP_WINDOW_NS
    ehp: EhpParams = field(default_factory=EhpParams)
    bucketing: Bucketing = field(default_factory=Bucketing)
    #: the lab's kernel (default) or the artifact's, or any mix of its differences
    rules: Rules = LAB


def make_policy(config: PolicyConfig) -> Policy:
    """A fresh policy (new per-CPU state) for the configured method."""
    m, rules = config.method, config.rules
    if m is Method.HYB:
        raise ValueError(
            "HYB is io_uring's hybrid polling, decided by the kernel: it has no policy here "
            "(the engine runs it on a real drive)"
        )
    if m is Method.INT:
        return IntPolicy(config.bucketing)
    if m is Method.CP:
        return CpPolicy(config.bucketing)
    if m is Method.LHP:
        return LhpPolicy(
            config.io_poll_delay, config.lhp_window_ns, config.bucketing, rules.per_cpu_stats
        )
    if m is Method.EHP:
        return EhpPolicy(config.ehp, config.bucketing, rules.per_cpu_stats)
    if m is Method.PAS:
        return PasPolicy(config.pas, config.bucketing, rules)
    return DpasPolicy(config.pas, config.switch, config.order, config.bucketing, rules)
