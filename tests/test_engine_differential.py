"""policy_core.c (the engine's compiled copy of dpas.policy) against dpas.policy itself.

Both replay the same random event streams (dpas.engine.rules: replay_native, replay_reference)
and must agree on every decision and every final state. The streams are what jobs sharing CPUs
produce: each job cycles submit -> wait_start -> wait_end -> complete, the jobs' steps
interleave (so several waits overlap on one CPU), completions are sometimes seen on another
CPU, and the poll results come in biased runs so that PAS heats up, hits its floor and lets its
duration grow past 2**32 and wrap. A wait of an I/O that was not polled is skipped by both
sides, so the streams need not know the decisions in advance.

The extension is imported plainly: CI builds it, and a missing build must fail here.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dpas.engine import _engine
from dpas.engine.rules import (
    COMPLETE,
    MAX_CPUS,
    SUBMIT,
    WAIT_END,
    WAIT_START,
    Replay,
    as_events,
    config_dict,
    replay_native,
    replay_reference,
)
from dpas.policy import (
    DIV,
    EDGES,
    Adaptive,
    Bucketing,
    EhpParams,
    EhpPolicy,
    Method,
    Order,
    PasParams,
    PasState,
    PasUpdate,
    PolicyConfig,
    SwitchParams,
)
from dpas.policy.windows import BucketStat, StatWindows

U64 = (1 << 64) - 1
I32_MAX = 2**31 - 1
SEED = 20260226
#: the random differential run: cases x events, >= 1,000,000 events in all
EVENTS_TOTAL = 2_000_000

# ---- random configs ---------------------------------------------------------------------------


def log_uniform(rng: np.random.Generator, lo: float, hi: float) -> int:
    """An integer spread evenly over the orders of magnitude from lo to hi."""
    return int(10 ** rng.uniform(np.log10(lo), np.log10(hi)))


def pick(rng: np.random.Generator, *choices: Callable[[], int]) -> int:
    """One of several ways of drawing a value, each equally likely."""
    return choices[int(rng.integers(len(choices)))]()


def rate(rng: np.random.Generator) -> int:
    """A fixed-point rate (DIV = 1.0): zero, tiny, the usual range, or far beyond DIV."""
    return pick(
        rng,
        lambda: 0,
        lambda: log_uniform(rng, 1, 1_000),
        lambda: log_uniform(rng, 1_000, 500_000),
        lambda: log_uniform(rng, 1_000, 500_000),
        lambda: log_uniform(rng, DIV, I32_MAX),
        lambda: I32_MAX,
    )


def switch_period(rng: np.random.Generator, small: int) -> int:
    """An evaluation period: what switch_param gives, at least 1 (SwitchParams refuses 0 and
    -1, on which the kernel would divide by zero)."""
    return max(switch_param(rng, small), 1)


def switch_param(rng: np.random.Generator, small: int) -> int:
    """-1, 0, small values (so the switch moves), or large ones up to 2**31-1."""
    return pick(
        rng,
        lambda: -1,
        lambda: 0,
        lambda: int(rng.integers(1, small + 1)),
        lambda: int(rng.integers(1, small + 1)),
        lambda: int(rng.integers(1, small + 1)),
        lambda: log_uniform(rng, small, 2_000),
        lambda: log_uniform(rng, 2_000, I32_MAX),
        lambda: I32_MAX,
    )


def random_pas(rng: np.random.Generator) -> PasParams:
    return PasParams(
        d_init=log_uniform(rng, 1, 10_000_000),
        up_init=rate(rng),
        dn_init=rate(rng),
        heat_up=rate(rng),
        cool_dn=pick(rng, lambda: rate(rng), lambda: log_uniform(rng, DIV, 3 * DIV)),
        min_dn=rate(rng),
        max_dn=rate(rng),
        updn_ratio=pick(rng, lambda: 1, lambda: log_uniform(rng, 1, 1_000), lambda: I32_MAX),
        adaptive=Adaptive(int(rng.integers(3))),
    )


def random_config(rng: np.random.Generator) -> PolicyConfig:
    """Any method, with every knob drawn over its range (defaults sometimes)."""
    methods = [Method.DPAS] * 5 + [Method.PAS] * 3 + [Method.LHP, Method.EHP] * 2
    methods += [Method.INT, Method.CP]
    method = methods[int(rng.integers(len(methods)))]
    pas = PasParams() if rng.random() < 0.15 else random_pas(rng)
    switch = SwitchParams(
        param1=switch_param(rng, 5),
        param2=switch_param(rng, 30),
        param3=switch_param(rng, 30),
        param4=int(rng.choice([-1, 0, 1, 1, 1, 5])),
        param5=switch_period(rng, 40),
        param6=switch_period(rng, 60),
        param7=switch_period(rng, 60),
    )
    ehp = EhpParams(
        ctx_ns=log_uniform(rng, 1, 5_000),
        isr_ns=log_uniform(rng, 1, 5_000),
        benefit_ratio=int(rng.integers(0, 30)),
        window_ns=log_uniform(rng, 1_000, 10_000_000),
    )
    return PolicyConfig(
        method=method,
        pas=pas,
        switch=switch if rng.random() < 0.9 else SwitchParams(),
        order=Order.GUIDE if rng.random() < 0.5 else Order.KERNEL,
        io_poll_delay=0 if rng.random() < 0.7 else int(rng.integers(1, 100)),
        lhp_window_ns=log_uniform(rng, 1_000, 10_000_000),
        ehp=ehp if rng.random() < 0.8 else EhpParams(),
        bucketing=Bucketing(
            stats_sectors_bug=bool(rng.random() < 0.1), queue_stats=bool(rng.random() < 0.5)
        ),
    )


# ---- random event streams ---------------------------------------------------------------------

SIZES = np.array([0] + [512 << k for k in range(9)] + [1 << 20, 1 << 30, 1 << 40])


def found_runs(rng: np.random.Generator, n: int) -> np.ndarray:
    """Poll results in runs of a biased coin: long all-under runs make dur grow past 2**32,
    long all-over runs drive it to its floor."""
    found = np.empty(n, dtype=np.int64)
    i = 0
    while i < n:
        length = log_uniform(rng, 4, 8_000)
        p = rng.choice([0.0, 0.0, 0.02, 0.3, 0.5, 0.7, 0.98, 1.0, 1.0])
        found[i : i + length] = rng.random(min(length, n - i)) < p
        i += length
    return found


def job_order(rng: np.random.Generator, n: int, jobs: int) -> np.ndarray:
    """Which job takes each step: random runs of one job, so steps interleave and waits overlap."""
    mean_run = rng.uniform(1, 6)
    runs = rng.geometric(1 / mean_run, size=n)
    who = rng.integers(0, jobs, size=n)
    return np.repeat(who, runs)[:n]


def per_job_steps(job: np.ndarray, jobs: int) -> tuple[np.ndarray, np.ndarray]:
    """Each event's step number within its job, and the order that sorts events by job."""
    order = np.argsort(job, kind="stable")
    counts = np.bincount(job, minlength=jobs)
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    step = np.empty(len(job), dtype=np.int64)
    step[order] = np.arange(len(job)) - starts
    return step, order


def random_events(
    rng: np.random.Generator, n: int, ncpus: int, jobs: int, grid_ns: int | None = None
) -> np.ndarray:
    """Jobs cycling submit, wait_start, wait_end, complete; one I/O id per job, reused.

    With ``grid_ns`` every time is a multiple of it and steps are a few grid units, so events
    land exactly on window ends and latencies tie with thresholds.
    """
    job = job_order(rng, n, jobs)
    step, order = per_job_steps(job, jobs)
    ev = np.zeros((n, 8), dtype=np.int64)
    ev[:, 0] = step % 4
    ev[:, 1] = job
    # each job has a home CPU and a usual size, and strays from both now and then
    home_cpu = rng.integers(0, ncpus, size=jobs)
    home_size = rng.choice(SIZES, size=jobs)
    cpu = np.where(rng.random(n) < 0.05, rng.integers(0, ncpus, size=n), home_cpu[job])
    size = np.where(rng.random(n) < 0.1, rng.choice(SIZES, size=n), home_size[job])
    size = np.where(rng.random(n) < 0.05, rng.integers(0, 1 << 22, size=n), size)
    # an I/O's later events carry its submit's CPU (sorted by job, the submit is step % 4 back)
    sorted_step = step[order]
    submit_of = order[np.arange(n) - sorted_step % 4]
    ev[order, 2] = cpu[submit_of]
    ev[:, 3] = rng.random(n) < rng.uniform(0, 1)
    ev[:, 4] = size
    scale = rng.uniform(2, 6)
    dt = (10 ** rng.uniform(0, scale, size=n)).astype(np.int64)
    dt[rng.random(n) < 0.05] = 0
    start = rng.integers(0, 1 << 40)
    if grid_ns is not None:
        dt = grid_ns * rng.integers(0, 4, size=n)
        start -= start % grid_ns
    now = start + np.cumsum(dt)
    # in some cases time steps back now and then (clocks read on other CPUs lag), so that a
    # latency can come out negative and the windows must clamp it
    back = rng.random(n) < rng.choice([0.0, 0.0, 0.02])
    now[back] -= rng.integers(0, int(30 * 10**scale), size=int(back.sum()))
    ev[:, 5] = np.maximum(now, 0)
    ev[:, 6] = found_runs(rng, n)
    stray = rng.random(n) < rng.choice([0.0, 0.02, 0.2])
    ev[:, 7] = np.where(stray, rng.integers(0, ncpus, size=n), ev[:, 2])
    return ev


# ---- coverage: the states the run must reach to prove anything --------------------------------


@dataclass
class Coverage:
    """What the reference's PAS updates and the replays went through."""

    seen: Counter[str] = field(default_factory=Counter)
    edges: set[tuple[int, int]] = field(default_factory=set)

    def update(
        self,
        before: tuple[int, int, int, int, int, int],
        params: PasParams,
        s: PasState,
        result: PasUpdate,
    ) -> None:
        """One applied PasState.update: before = dur, adj, up, dn, case, update_req."""
        dur, adj, up, dn, case, update_req = before
        hot = case in (0, 3)
        seen = self.seen
        seen[f"case {case} adaptive {int(params.adaptive)}"] += 1
        seen["dur > 2**32"] += s.dur > 1 << 32
        seen["dur * adj wraps u64"] += dur * s.adj > U64
        seen["adj > 2**32"] += s.adj > 1 << 32
        seen["adj > 2**63"] += s.adj > 1 << 63
        seen["dn > 2**63"] += s.dn > 1 << 63
        seen["adj <= 0 reset"] += (case == 0 and adj - dn <= 0) or (case == 2 and DIV - dn <= 0)
        seen["dur floored"] += result.floored
        seen["dur_cnt wraps"] += s.dur_cnt == 0
        seen["forced update"] += not update_req
        if params.adaptive == Adaptive.DN:
            floor = params.min_dn // params.updn_ratio
            seen["dn capped"] += hot and dn * (DIV + params.heat_up) // DIV > params.max_dn
            seen["up floored"] += not hot and up * (DIV - params.cool_dn) // DIV < floor
            seen["cool_dn > DIV"] += not hot and params.cool_dn > DIV
        elif params.adaptive == Adaptive.UP:
            seen["up capped"] += hot and up * (DIV + params.heat_up) // DIV > DIV // 10
            seen["up floored (UP)"] += not hot and up * (DIV - params.cool_dn) // DIV < 100

    def replay(self, config: PolicyConfig, events: np.ndarray, r: Replay) -> None:
        """What the outputs show: decisions of every kind, overlapping waits, transitions."""
        kind, out, seen = events[:, 0], r.outputs, self.seen
        name = config.method.value
        submits, waits = out[kind == SUBMIT], out[kind == WAIT_START]
        seen[f"{name} not polled"] += int((submits[:, 0] == 0).sum())
        seen[f"{name} slept"] += int((waits[:, 0] > 0).sum())
        seen["no bucket"] += int((submits[:, 2] == -1).sum())
        seen["last bucket pair"] += int((submits[:, 2] >= 14).sum())
        seen["overlapping waits"] += int((out[kind == WAIT_END][:, 0] >= 1).sum())
        seen["seen on another cpu"] += int(
            ((kind == COMPLETE) & (events[:, 7] != events[:, 2])).sum()
        )
        for t in r.transitions:
            self.edges.add((t[2], t[3]))
            seen["transition with tf > 0"] += t[6] > 0


@pytest.fixture
def coverage(monkeypatch: pytest.MonkeyPatch) -> Iterator[Coverage]:
    """Watch the reference's PAS updates, statistics windows and EHP tests (each wrapper calls
    the original and returns what it returns).
    A compiled dpas.policy cannot be wrapped: the tests that watch are marked pure."""
    cov = Coverage()
    update = PasState.update

    def watched(self: PasState, params: PasParams, force: bool = False) -> PasUpdate | None:
        case = self.sr_pnlt * 2 + self.sr_last
        before = (self.dur, self.adj, self.up, self.dn, case, self.update_req)
        result = update(self, params, force)
        if result is not None:
            cov.update(before, params, self, result)
        return result

    advance, add, polls = StatWindows.advance, StatWindows.add, EhpPolicy.polls
    seen = cov.seen

    def watched_advance(self: StatWindows, now_ns: int) -> None:
        seen["window closes at its very end"] += now_ns == self.end_ns
        advance(self, now_ns)

    def watched_add(
        self: StatWindows, bucket: int, value_ns: int, now_ns: int, cpu: int = 0
    ) -> None:
        seen["negative latency"] += value_ns < 0
        add(self, bucket, value_ns, now_ns, cpu)

    def watched_polls(self: EhpPolicy, stat: BucketStat | None) -> bool:
        p = self.params
        seen["EHP benefit ties"] += stat is not None and p.overhead_ns * p.benefit_ratio == stat.min
        return polls(self, stat)

    monkeypatch.setattr(PasState, "update", watched)
    monkeypatch.setattr(StatWindows, "advance", watched_advance)
    monkeypatch.setattr(StatWindows, "add", watched_add)
    monkeypatch.setattr(EhpPolicy, "polls", watched_polls)
    yield cov


# ---- the differential run ---------------------------------------------------------------------


def check_same(config: PolicyConfig, events: np.ndarray, ncpus: int, label: str) -> Replay:
    """Both replays; fails with the first differing event and its neighbours."""
    native = replay_native(config, events, ncpus)
    reference = replay_reference(config, events, ncpus)
    difference = reference.diff(native, events)
    assert difference is None, f"{label} {config} ncpus={ncpus}: reference / C\n{difference}"
    return native


def on_grid(config: PolicyConfig, grid_ns: int, rng: np.random.Generator) -> PolicyConfig:
    """The config with windows of a few grid units and EHP costs that tie with latencies."""
    windows = {name: grid_ns * int(rng.integers(1, 20)) for name in ("lhp", "ehp")}
    ehp = EhpParams(
        ctx_ns=grid_ns // 2 * int(rng.integers(0, 3)),
        isr_ns=grid_ns * int(rng.integers(0, 3)),
        benefit_ratio=int(rng.integers(1, 4)),
        window_ns=windows["ehp"],
    )
    return replace(config, lhp_window_ns=windows["lhp"], ehp=ehp)


def random_cases(seed: int, total: int) -> Iterator[tuple[PolicyConfig, np.ndarray, int, str]]:
    """Cases of random length until ``total`` events: config, events, ncpus, label."""
    rng = np.random.default_rng(seed)
    done = case = 0
    while done < total:
        n = min(log_uniform(rng, 50, 30_000), total - done)
        ncpus = int(rng.integers(1, 5))
        jobs = int(rng.choice([1, 1, 2, 3, 4, 6, 8]))
        config = random_config(rng)
        grid = None
        if rng.random() < 0.25:
            grid = 1_000
            config = on_grid(config, grid, rng)
        events = random_events(rng, n, ncpus, jobs, grid)
        yield config, events, ncpus, f"case {case}"
        done += n
        case += 1


@pytest.mark.pure
def test_two_million_random_events_decide_alike(coverage: Coverage) -> None:
    started = time.perf_counter()
    events_run = 0
    for config, events, ncpus, label in random_cases(SEED, EVENTS_TOTAL):
        coverage.replay(config, events, check_same(config, events, ncpus, label))
        events_run += len(events)
    assert events_run >= 1_000_000
    seen = coverage.seen
    missing = [
        key
        for key in (
            *(f"case {c} adaptive {a}" for c in range(4) for a in range(3)),
            "dur > 2**32",
            "dur * adj wraps u64",
            "adj > 2**32",
            "adj <= 0 reset",
            "dur floored",
            "dur_cnt wraps",
            "forced update",
            "dn capped",
            "up floored",
            "cool_dn > DIV",
            "up capped",
            "up floored (UP)",
            "INT not polled",
            "EHP not polled",
            "DPAS not polled",
            "LHP slept",
            "EHP slept",
            "PAS slept",
            "DPAS slept",
            "no bucket",
            "last bucket pair",
            "overlapping waits",
            "seen on another cpu",
            "transition with tf > 0",
            "window closes at its very end",
            "negative latency",
            "EHP benefit ties",
        )
        if not seen[key]
    ]
    assert not missing, f"never reached: {missing}"
    assert coverage.edges == {(int(a), int(b)) for a, b in EDGES}
    print(f"\n{events_run} events in {time.perf_counter() - started:.1f} s; {dict(seen)}")


def one_job(found: list[bool]) -> np.ndarray:
    """One job on CPU 0 doing 4 KiB reads, one I/O per poll result in ``found``."""
    n = 4 * len(found)
    events = np.zeros((n, 8), dtype=np.int64)
    events[:, 0] = np.arange(n) % 4
    events[:, 4] = 4096
    events[:, 5] = np.arange(n) * 1_000
    events[3::4, 6] = found
    return events


def test_a_long_underslept_run_grows_dur_past_u64_and_wraps_dur_cnt() -> None:
    """One job, PAS defaults, never found on the first poll: adj climbs every update, dur
    passes 2**32, dur * adj wraps the kernel's u64, and dur_cnt wraps its u8."""
    events = one_job([False] * 600)
    no_cp = SwitchParams(param4=0)  # one job averages qd 1.0: DPAS would switch to CP
    for config in (PolicyConfig(method=Method.PAS), PolicyConfig(Method.DPAS, switch=no_cp)):
        r = check_same(config, events, 1, "underslept")
        waits = r.outputs[events[:, 0] == WAIT_START]
        assert waits[:, 0].max() > 1 << 32
        assert (np.diff(waits[:, 0]) < 0).any(), "a wrapped product shrinks dur"
        assert 0 in waits[:, 1], "dur_cnt wrapped"


@pytest.mark.pure
def test_knobs_past_63_bits_keep_pythons_unbounded_integers(coverage: Coverage) -> None:
    """adj and dn outgrow int64 in Python; the C copy keeps them in 128 bits and agrees."""
    U, O = False, True
    # up = 2**62 fixed: three under-under updates take adj past 2**63, under-over resets it
    huge_up = PasParams(d_init=1_000, up_init=1 << 62, adaptive=Adaptive.OFF)
    check_same(PolicyConfig(Method.PAS, pas=huge_up), one_job([U, U, U, U, O, O, U]), 1, "adj")
    # cooling sets dn = up * updn_ratio, about 2**71; over-over subtracts it from adj
    huge_dn = PasParams(up_init=1 << 40, cool_dn=0, max_dn=DIV, updn_ratio=I32_MAX)
    check_same(PolicyConfig(Method.PAS, pas=huge_dn), one_job([O, O, O, U, U]), 1, "dn")
    assert coverage.seen["adj > 2**63"] and coverage.seen["dn > 2**63"]


# ---- small streams from hypothesis -------------------------------------------------------------

configs = st.builds(
    PolicyConfig,
    method=st.sampled_from(Method.policies()),
    pas=st.builds(
        PasParams,
        d_init=st.integers(1, 100_000),
        up_init=st.integers(0, 2 * DIV),
        dn_init=st.integers(0, 2 * DIV),
        heat_up=st.integers(0, 2 * DIV),
        cool_dn=st.integers(0, 3 * DIV),
        min_dn=st.integers(0, 2 * DIV),
        max_dn=st.integers(0, 2 * DIV),
        updn_ratio=st.integers(1, 1_000),
        adaptive=st.sampled_from(Adaptive),
    ),
    switch=st.builds(
        SwitchParams,
        *(st.integers(-1, 20) for _ in range(4)),
        *(st.integers(1, 20) for _ in range(3)),  # evaluation periods: 0 and -1 are refused
    ),
    order=st.sampled_from(Order),
    io_poll_delay=st.integers(0, 5),
    lhp_window_ns=st.integers(1, 10_000),
    ehp=st.builds(EhpParams, window_ns=st.integers(1, 10_000)),
)

steps = st.lists(
    st.tuples(
        st.integers(0, 3),  # job
        st.integers(0, 3_000),  # dt
        st.sampled_from(SIZES.tolist()),
        st.integers(0, 1),  # op
        st.booleans(),  # found
        st.integers(0, 2),  # the CPU that submits / sees the completion
    ),
    max_size=120,
)


def job_events(steps: list[tuple[int, int, int, int, bool, int]]) -> np.ndarray:
    """Jobs 0..3 cycling through their four events on CPUs 0 and 1.

    The drawn cpu picks the submitting CPU (2: the job's own, job % 2) and whether the
    completion is seen on the other CPU (2: it is).

    I/O ids count up from 0 in order of appearance: replay() takes ids below the event count.
    """
    count = [0, 0, 0, 0]
    cpu_of = [0, 0, 0, 0]
    ids: dict[int, int] = {}
    now = 0
    rows = []
    for job, dt, size, op, found, cpu in steps:
        kind = count[job] % 4
        count[job] += 1
        now += dt
        if kind == SUBMIT:
            cpu_of[job] = cpu % 2 if cpu < 2 else job % 2
        seen = cpu_of[job] if cpu < 2 else 1 - cpu_of[job]
        io = ids.setdefault(job, len(ids))
        rows.append((kind, io, cpu_of[job], op, size, now, int(found), seen))
    return np.array(rows, dtype=np.int64).reshape(-1, 8)


@settings(max_examples=300, deadline=None)
@given(config=configs, steps=steps)
def test_small_job_streams_decide_alike(
    config: PolicyConfig, steps: list[tuple[int, int, int, int, bool, int]]
) -> None:
    check_same(config, job_events(steps), 2, "hypothesis")


@settings(max_examples=300, deadline=None)
@given(
    config=configs,
    rows=st.lists(
        st.tuples(
            st.integers(0, 3),  # kind, in any order: repeated waits, completions before waits
            st.integers(0, 2),  # io
            st.integers(0, 2),  # cpu
            st.integers(0, 1),  # op
            st.sampled_from(SIZES.tolist()),
            st.integers(0, 5_000),  # now_ns, not even monotonic
            st.integers(0, 1),  # found
            st.integers(0, 2),  # seen_cpu
        ),
        max_size=60,
    ),
)
def test_events_in_any_order_decide_alike(
    config: PolicyConfig, rows: list[tuple[int, ...]]
) -> None:
    # each I/O is submitted once up front; after that, anything goes
    first = [(SUBMIT, io, io, 0, 4096, 0, 0, 0) for io in range(3)]
    check_same(config, np.array(first + rows, dtype=np.int64).reshape(-1, 8), 3, "any order")


# ---- bad input ----------------------------------------------------------------------------------


def good_events() -> np.ndarray:
    return np.array(
        [
            (SUBMIT, 0, 0, 0, 4096, 10, 0, 0),
            (WAIT_START, 0, 0, 0, 0, 20, 0, 0),
            (WAIT_END, 0, 0, 0, 0, 30, 0, 0),
            (COMPLETE, 0, 0, 0, 0, 40, 1, 0),
        ],
        dtype=np.int64,
    )


def with_cell(row: int, column: int, value: int) -> np.ndarray:
    events = good_events()
    events[row, column] = value
    return events


CONFIG = config_dict(PolicyConfig())


def test_good_events_replay() -> None:
    outputs, switch_stat, transitions, pas = _engine.replay(CONFIG, good_events(), 1)
    assert np.frombuffer(outputs, dtype=np.int64).tolist()[:4] == [1, 2, 6, 0]
    assert len(switch_stat) == 9 * 8 and transitions == [] and len(pas) == 16 * 9 * 8


@pytest.mark.parametrize(
    ("events", "ncpus", "match"),
    [
        (good_events()[0], 1, "shape"),
        (good_events()[:, :7].copy(), 1, "shape"),
        (good_events().astype(np.int32), 1, "int64"),
        (good_events().astype(np.uint64), 1, "int64"),
        (good_events().astype(np.float64), 1, "int64"),
        (np.asfortranarray(np.tile(good_events(), (1, 2))[:, ::2]), 1, "contiguous"),
        (good_events(), 0, "ncpus"),
        (good_events(), 1 << 20, "ncpus"),
        (with_cell(1, 0, 4), 1, "kind: expected"),
        (with_cell(1, 0, -1), 1, "kind: expected"),
        (with_cell(1, 1, 4), 1, "io: expected"),
        (with_cell(1, 1, -1), 1, "io: expected"),
        (with_cell(0, 2, 1), 1, "cpu: expected"),
        (with_cell(0, 2, -1), 1, "cpu: expected"),
        (with_cell(0, 3, 2), 1, "op: expected"),
        (with_cell(0, 4, -1), 1, "size: expected"),
        (with_cell(2, 5, -1), 1, "now_ns: expected"),
        (with_cell(3, 6, 2), 1, "found: expected"),
        (with_cell(3, 7, 1), 1, "seen_cpu: expected"),
        (good_events()[1:], 1, "before its submit"),
        (with_cell(0, 1, 1), 2, "before its submit"),
    ],
)
def test_bad_events_raise_value_error(events: np.ndarray, ncpus: int, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        _engine.replay(CONFIG, events, ncpus)


@pytest.mark.parametrize(
    "events",
    [
        with_cell(1, 0, 4),
        with_cell(1, 1, 4),
        with_cell(0, 2, 1),
        with_cell(0, 3, 2),
        with_cell(0, 4, -1),
        with_cell(2, 5, -1),
        with_cell(3, 6, 2),
        with_cell(3, 7, 1),
        good_events()[1:],
        (good_events(), 0),
        (good_events(), MAX_CPUS + 1),
        (with_cell(0, 1, 1), 2),
    ],
)
def test_the_reference_refuses_bad_events_in_the_same_words(
    events: np.ndarray | tuple[np.ndarray, int],
) -> None:
    """replay.c's own checks (the extension called directly: replay_native checks with
    as_events first) and the reference's, word for word."""
    events, ncpus = events if isinstance(events, tuple) else (events, 1)
    with pytest.raises(ValueError) as native:
        _engine.replay(CONFIG, events, ncpus)
    with pytest.raises(ValueError) as reference:
        replay_reference(PolicyConfig(), events, ncpus)
    assert str(native.value) == str(reference.value)


@pytest.mark.parametrize(
    "events", [good_events()[0], good_events()[:, :7].copy(), good_events().astype(np.float64)]
)
def test_the_reference_takes_integer_n_by_8_arrays_only(events: np.ndarray) -> None:
    with pytest.raises(ValueError, match=r"expected an integer array of shape \(n, 8\), got"):
        as_events(events, 1)


def test_the_reference_takes_any_integer_array_and_every_cpu_count_up_to_the_limit() -> None:
    """Where replay.c wants C-contiguous int64, the reference converts any integer array."""
    for dtype in (np.int32, np.uint16, np.int64):
        arr = as_events(good_events().astype(dtype), MAX_CPUS)
        assert arr.dtype == np.int64 and (arr == good_events()).all()
    assert len(replay_reference(PolicyConfig(), good_events(), MAX_CPUS).switch_stat) == MAX_CPUS
    assert len(as_events(good_events()[:0], 1)) == 0


def test_not_a_buffer_raises_type_error() -> None:
    with pytest.raises(TypeError):
        _engine.replay(CONFIG, [[0] * 8], 1)


@pytest.mark.parametrize(
    ("key", "value", "error"),
    [
        ("d_init", None, KeyError),
        ("d_init", 1.5, TypeError),
        ("d_init", "100", TypeError),
        ("d_init", -1, ValueError),
        ("d_init", 1 << 64, ValueError),
        ("updn_ratio", 0, ValueError),
        ("method", 6, ValueError),
        ("adaptive", 3, ValueError),
        ("param5", -2, ValueError),
        ("order_guide", 2, ValueError),
    ],
)
def test_bad_config_names_the_key(key: str, value: object, error: type[Exception]) -> None:
    config: dict[str, object] = dict(CONFIG)
    if value is None:
        del config[key]
    else:
        config[key] = value
    with pytest.raises(error, match=key):
        _engine.replay(config, good_events(), 1)


@pytest.mark.parametrize(
    ("method", "key", "value"),
    [
        (Method.LHP, "io_poll_delay", -1),
        (Method.LHP, "lhp_window_ns", 0),
        (Method.EHP, "ehp_window_ns", 0),
        (Method.EHP, "ehp_ctx_ns", -1),
    ],
)
def test_bad_knobs_of_the_method_in_use_raise(method: Method, key: str, value: int) -> None:
    config = config_dict(PolicyConfig(method=method)) | {key: value}
    with pytest.raises(ValueError, match=key):
        _engine.replay(config, good_events(), 1)
    # another method ignores the knob, as make_policy() does
    other = config | {"method": list(Method).index(Method.PAS)}
    _engine.replay(other, good_events(), 1)
