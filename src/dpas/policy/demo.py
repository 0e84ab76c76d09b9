"""A short, scripted PAS and DPAS run that shows the rules at work, I/O by I/O.

The feedback is scripted, not measured: each step says how many I/Os overlap on CPU 0 and
whether their sleeps overslept (O) or underslept (U). DPAS runs with short evaluation
periods so that every transition fits on one screen.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from itertools import groupby

from dpas.policy.dpas import DpasPolicy
from dpas.policy.pas import PasParams, PasPolicy
from dpas.policy.request import Op, Request
from dpas.policy.rules import LAB, Rules
from dpas.policy.switch import SwitchParams

SCHEMA = "dpas.policy-demo/1"
STEP_NS = 10_000

#: PAS: climb on undersleeps, fall on oversleeps, hit the d_init floor, and flip.
PAS_SCRIPT: tuple[tuple[int, str], ...] = tuple((1, f) for f in "UUUUUUUUUUOOOUOUUOOOOOOO")

#: DPAS: one job (QD 1) -> CP; back to PAS; two overlapping jobs oversleep at the floor ->
#: OL -> INT; INT runs its period -> OL; one job again -> PAS; a last floor -> OL -> PAS;
#: undersleeps with no floor at QD 1 -> CP.
DPAS_SCRIPT: tuple[tuple[int, str], ...] = (
    ((1, "U"),) * 4 + ((1, "O"),) * 6 + ((2, "O"),) * 6 + ((1, "O"),) * 5 + ((1, "U"),) * 12
)

#: DPAS's evaluation periods in the demo (the kernel's are 100, 1000, 10000)
DPAS_DEMO_PERIODS = {"param5": 4, "param6": 6, "param7": 5}


@dataclass(frozen=True, slots=True)
class DemoStep:
    """One I/O of the demo: what the policy decided and why."""

    step: int
    io: int
    cpu: int
    mode: str | None
    polled: bool
    qd: int | None
    sleep_ns: int
    case: str | None
    adj: int | None
    dur: int | None
    up: int | None
    dn: int | None
    floored: bool
    feedback: str | None
    transitions: list[str]


@dataclass(slots=True)
class DemoRun:
    method: str
    script: str
    pas: dict[str, int]
    switch: dict[str, int] | None
    steps: list[DemoStep] = field(default_factory=list)


def _script_text(script: tuple[tuple[int, str], ...]) -> str:
    """Run-length form: "1U*4 2O*6" is 4 steps of 1 job underslept, then 6 of 2 jobs
    oversleeping."""
    return " ".join(f"{jobs}{fb}*{len(list(run))}" for (jobs, fb), run in groupby(script))


def run_script(policy: PasPolicy, script: tuple[tuple[int, str], ...]) -> list[DemoStep]:
    """Drive ``policy`` through the event API, one step of overlapping I/Os at a time."""
    request = Request(Op.READ, 4096)
    steps: list[DemoStep] = []
    dpas = policy if isinstance(policy, DpasPolicy) else None
    for n, (jobs, fb) in enumerate(script, 1):
        now = n * STEP_NS
        seen = len(dpas.transitions) if dpas else 0
        ios = [policy.on_submit(0, request, now) for _ in range(jobs)]
        qds: list[int | None] = []
        for io in ios:
            if io.polled:
                policy.on_wait_start(io, now)
            qds.append(dpas.switch_state(0).qd if dpas and io.polled else None)
        for io in ios:
            if io.polled:
                policy.on_wait_end(io, now + io.sleep_ns)
        for io in ios:
            policy.on_complete(io, now + io.sleep_ns, found_on_first_poll=(fb == "O"))
        moved = [f"{t.old.name}->{t.new.name}" for t in dpas.transitions[seen:]] if dpas else []
        for i, (io, qd) in enumerate(zip(ios, qds, strict=True)):
            u = io.pas_update
            steps.append(
                DemoStep(
                    step=n,
                    io=i,
                    cpu=io.cpu,
                    mode=io.mode.name if io.mode is not None else None,
                    polled=io.polled,
                    qd=qd,
                    sleep_ns=io.sleep_ns,
                    case=u.case.short if u else None,
                    adj=u.adj if u else None,
                    dur=u.dur if u else None,
                    up=u.up if u else None,
                    dn=u.dn if u else None,
                    floored=bool(u and u.floored),
                    feedback=fb if io.dur_cnt >= 0 else None,
                    transitions=moved if i == len(ios) - 1 else [],
                )
            )
    return steps


def demo_runs(rules: Rules = LAB) -> list[DemoRun]:
    """The PAS run and the DPAS run, with their parameters, under ``rules``."""
    pas_params = PasParams()
    pas = DemoRun("PAS", _script_text(PAS_SCRIPT), asdict(pas_params), None)
    pas.steps = run_script(PasPolicy(pas_params, rules=rules), PAS_SCRIPT)
    switch = SwitchParams(**DPAS_DEMO_PERIODS)
    dpas = DemoRun("DPAS", _script_text(DPAS_SCRIPT), asdict(pas_params), asdict(switch))
    dpas.steps = run_script(DpasPolicy(pas_params, switch, rules=rules), DPAS_SCRIPT)
    return [pas, dpas]


def demo_records(rules: Rules = LAB) -> dict[str, object]:
    """The demo as JSON-ready records."""
    runs = [asdict(run) for run in demo_runs(rules)]
    return {"schema": SCHEMA, "rules": rules.name, "runs": runs}
