"""The simulator's model rules added with the paper's drives, each checked against numbers
derived by hand from the rule: platforms, [published], block size, cold cost, contention,
LHP's statistics and determinism."""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dpas.policy import Method, Op
from dpas.sim import Profile, ProfileError, RunConfig, load, simulate
from dpas.sim.device import Device
from dpas.sim.engine import Engine
from dpas.sim.profile import parse, shipped

PROFILES = Path(__file__).parents[1] / "src/dpas/sim/profiles"
DRIVES = ("optane-p5800x", "skhynix-p41", "samsung-983zet")
OPTANE = load("optane-p5800x")


def optane_text() -> str:
    return (PROFILES / "optane-p5800x.toml").read_text()


def platform_data() -> dict[str, Any]:
    return tomllib.loads((PROFILES / "platforms/bare-metal.toml").read_text())


def one_line_error(text: str, where: str = "x.toml") -> str:
    """The ProfileError ``parse`` raises for ``text``, checked to be one line."""
    with pytest.raises(ProfileError) as caught:
        parse(text, where)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"profile {where}: "), message
    return message


def deterministic(profile: Profile, **device: Any) -> Profile:
    """``profile`` with a device whose every command takes exactly read_ns: no spread in the
    media (cv 0: a lognormal multiplier of exactly 1) or the controller, no floor, no tails."""
    changes = {"cv": 0.0, "serial_cv": 0.0, "floor": 0.0, "tail_p": 0.0, **device}
    return replace(profile, device=replace(profile.device, **changes))


#: The bare-metal platform's costs as these tests' hand derivations use them, pinned so the
#: derived numbers hold if the platform is recalibrated.
PINNED_HOST = {
    "submit_ns": 500,
    "kib_ns": 64,
    "complete_ns": 300,
    "cold_ns": 900,
    "cold_full_ns": 18500,
    "poll_ns": 60,
    "isr_ns": 250,
    "irq_latency_ns": 200,
    "ctx_switch_ns": 700,
    "block_ns": 910,
    "idle_exit_ns": 260,
}
PINNED_TIMER = {
    "arm_mean_ns": 150,
    "arm_sd_ns": 30,
    "slack_ns": 300,
    "jitter_ns": 0,
    "isr_ns": 600,
    "cancel_ns": 100,
}
#: hybrid polling on, adaptive LHP, no yield after an expired timer, statistics buckets kept
PINNED_PITFALLS = {
    "stats_sectors_bug": True,
    "queue_stats": True,
    "poll_queues": True,
    "io_poll_delay": 0,
    "always_yield": False,
}


def bare_metal(**device: Any) -> Profile:
    """The Optane profile on the bare-metal platform with the pinned costs and a
    deterministic device (``device`` changes on top)."""
    profile = deterministic(OPTANE, **device)
    return replace(
        profile,
        host=replace(profile.host, **PINNED_HOST),
        timer=replace(profile.timer, **PINNED_TIMER),
        pitfalls=replace(profile.pitfalls, **PINNED_PITFALLS),
    )


def ceil_to(value: int, step: int) -> int:
    """``value`` rounded up to a multiple of ``step``: where a poll loop that started with
    the wait sees a completion ``value`` ns in."""
    return -(-value // step) * step


# -- platforms ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", DRIVES)
def test_a_drive_profile_takes_host_timer_and_pitfalls_from_its_platform(name: str) -> None:
    """``platform = "bare-metal"`` gives the profile that file's [host], [timer] and
    [pitfalls], value for value, and the record names the platform."""
    profile = load(name)
    data = platform_data()
    assert profile.platform == "bare-metal"
    assert asdict(profile.host) == data["host"]
    assert asdict(profile.timer) == data["timer"]
    assert asdict(profile.pitfalls) == data["pitfalls"]
    assert profile.parameters()["platform"] == "bare-metal"
    assert load("qemu-lab").platform == ""


def test_naming_a_platform_is_the_same_as_copying_its_sections() -> None:
    """A drive profile that names its platform equals the same file with the platform's three
    sections pasted in instead (only the record's platform name differs)."""
    text = optane_text()
    assert text.count('platform = "bare-metal"\n') == 1
    platform = (PROFILES / "platforms/bare-metal.toml").read_text()
    sections = platform[platform.index("[host]\n") :]
    pasted = text.replace('platform = "bare-metal"\n', "") + "\n" + sections
    assert parse(pasted, "optane-p5800x") == replace(OPTANE, platform="")


@pytest.mark.parametrize("value", ['"cloud"', '""', "3", '"platforms/bare-metal"'])
def test_an_unknown_platform_is_refused_naming_the_key(value: str) -> None:
    """``platform`` must name a shipped platform; the error names the key and lists them."""
    text = optane_text().replace('platform = "bare-metal"', f"platform = {value}")
    message = one_line_error(text)
    assert message.startswith("profile x.toml: platform = ") and "(bare-metal)" in message


@pytest.mark.parametrize("section", ["host", "timer", "pitfalls"])
def test_a_section_given_by_the_file_and_its_platform_is_refused(section: str) -> None:
    """A profile that names a platform and gives one of its sections too is ambiguous: a
    ProfileError naming that section, before the section's own keys are looked at."""
    text = optane_text() + f"\n[{section}]\ncpus = 2\n"
    message = one_line_error(text)
    assert message == (
        f"profile x.toml: [{section}] is given by platform 'bare-metal'; remove one of them"
    )


# -- [published] --------------------------------------------------------------------------


def with_published(key: str, value: str | None) -> str:
    """The Optane profile with [published] ``key`` set to ``value`` (TOML text); None
    removes the key; a key the section lacks is added."""
    head, sep, body = re.split(r"^(\[published\]\n)", optane_text(), flags=re.M)
    line = "" if value is None else f"{key} = {value}"
    body, count = re.subn(rf"^{key} = .*$", line, body, count=1, flags=re.M)
    if not count:
        assert value is not None, key
        body = line + "\n" + body
    return head + sep + body


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("speed", "3", "[published] has no key 'speed'"),
        ("table", None, "[published] table is missing"),
        ("table", '"nope"', "[published] table = 'nope': expected a shipped reference table"),
        ("device", "7", "[published] device = 7: expected the table's name"),
        ("cpus", '"1"', '[published] cpus = \'1\': expected "0" or "split"'),
        ("cpus", "0", "[published] cpus = 0: expected"),
        ("jobs", "4", "[published] jobs = 4: expected a list of job counts from 1 to 4096"),
        ("jobs", "[]", "[published] jobs = []: expected a list"),
        ("jobs", "[1, 0]", "[published] jobs = [1, 0]: expected a list"),
        ("jobs", "[1, 4097]", "[published] jobs = [1, 4097]: expected a list"),
        ("jobs", "[1, 2.0]", "[published] jobs = [1, 2.0]: expected a list"),
        ("jobs", '[1, "2"]', "[published] jobs = [1, '2']: expected a list"),
        ("jobs", "[true]", "[published] jobs = [True]: expected a list"),
        ("modes", '["CP", "FAST"]', "[published] modes = ['CP', 'FAST']: expected a list of modes"),
        ("modes", '["CP", "HYB"]', "[published] modes = ['CP', 'HYB']: expected a list of modes"),
        ("modes", "[]", "[published] modes = []: expected a list of modes"),
        ("modes", "[1]", "[published] modes = [1]: expected a list of modes"),
        ("modes", '"CP"', "[published] modes = 'CP': expected a list of modes"),
        ("fitted", '["CP x3"]', "[published] fitted = 'CP x3': expected a list of cells"),
        ("fitted", '["HYB x1"]', "[published] fitted = 'HYB x1': expected a list of cells"),
        ("fitted", '["CP 1"]', "[published] fitted = 'CP 1': expected a list of cells"),
        ("fitted", '["FAST x1"]', "[published] fitted = 'FAST x1': expected a list of cells"),
        ("fitted", '"CP x1"', "[published] fitted = "),
        ("fitted", "[1]", "[published] fitted = 1: expected a list of cells"),
        ("params", "{ speed = 1 }", "[published] params = {'speed': 1}: expected a table"),
        ("params", "{ param5 = 0 }", "[published] params = {'param5': 0}: expected a table"),
        ("params", "{ param3 = -2 }", "[published] params = {'param3': -2}: expected"),
        ("params", "{ adaptive = 3 }", "[published] params = {'adaptive': 3}: expected"),
        ("params", "{ param3 = true }", "[published] params = {'param3': True}: expected"),
        ("params", "3", "[published] params = 3: expected a table"),
        ("runtime_s", "0", "[published] runtime_s = 0: expected seconds, above 0"),
        ("runtime_s", "-1.5", "[published] runtime_s = -1.5: expected seconds, above 0"),
        ("runtime_s", "nan", "[published] runtime_s = nan: expected seconds"),
        ("runtime_s", "true", "[published] runtime_s = true: expected seconds"),
        ("runtime_s", '"10"', "[published] runtime_s = '10': expected seconds"),
    ],
)
def test_published_errors_name_the_key(key: str, value: str | None, message: str) -> None:
    """Each bad [published] value is one ProfileError naming ``[published] KEY`` (a fitted
    cell must be one of the grid's modes and jobs: CP x3 is not in jobs 1..20)."""
    got = one_line_error(with_published(key, value))
    assert got.startswith("profile x.toml: " + message), got


def test_a_published_section_with_only_valid_values_loads() -> None:
    """The edits above fail for their value alone: the same keys with good values load."""
    text = with_published("fitted", '["CP x2", "dpas x20"]')
    published = parse(with_published("params", "{ param5 = 1 }"), "x.toml").published
    assert published is not None
    assert published.switch.param5 == 1 and published.switch.param3 == 10
    assert published.adaptive == 1  # pas_adaptive_enabled's default when params omit it
    published = parse(text, "x.toml").published
    assert published is not None
    assert published.fitted == ((Method.CP, 2), (Method.DPAS, 20))


def toml_value(value: Any) -> str:
    """A JSON value (as ``record()`` gives it) in TOML."""
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(value)  # strings, ints and floats are spelled alike


@pytest.mark.parametrize("name", shipped())
def test_the_record_is_json_and_round_trips_published(name: str) -> None:
    """``Profile.record()`` holds only JSON types (a JSON round trip changes nothing), and its
    [published] written back as TOML parses to the same Published."""
    profile = load(name)
    record = profile.record()
    assert json.loads(json.dumps(record)) == record
    published = record["published"]
    assert published is not None and profile.published is not None
    params = {**published["switch"], "adaptive": published["adaptive"]}
    lines = [
        f"{k} = {toml_value(v)}" for k, v in published.items() if k not in ("switch", "adaptive")
    ]
    lines.append(f"params = {toml_value(params)}")
    text = (PROFILES / f"{name}.toml").read_text()
    section = "[published]\n" + "\n".join(lines) + "\n"
    start = re.search(r"^\[published\]\n", text, flags=re.M)
    assert start is not None
    again = parse(text[: start.start()] + section, name)
    assert again.published == profile.published
    assert again.record() == record


@pytest.mark.parametrize("name", DRIVES)
def test_the_record_spells_modes_and_fitted_cells_as_the_file(name: str) -> None:
    """Modes by name and fitted cells as "MODE xJOBS", as the profile's file writes them."""
    published = load(name).record()["published"]
    written = tomllib.loads((PROFILES / f"{name}.toml").read_text())["published"]
    for key in ("table", "device", "cpus", "jobs", "modes", "fitted"):
        assert published[key] == written[key], key
    assert published["runtime_s"] == float(written["runtime_s"])
    params = written.get("params", {})
    assert published["adaptive"] == params.get("adaptive", 1)
    assert all(published["switch"][k] == v for k, v in params.items() if k != "adaptive")


# -- block size ---------------------------------------------------------------------------


@pytest.mark.parametrize("poll_ns", [None, 0])
def test_a_larger_block_costs_its_slowest_path_and_kib_ns(poll_ns: int | None) -> None:
    """--bs is a prediction from the drive's layout: on the Optane profile 128 KiB is 32
    stripes of 4 KiB over 7 channels, so its busiest channel carries 5 (20480 B at 1029 MB/s,
    19902.8 ns) against the link's 131072 B at 7200 MB/s (18204.4 ns); a 4 KiB read spends
    4096 B on its channel (3980.6 ns). The device time grows by the slower path's difference,
    submission by kib_ns per KiB: 15922.2 + 124 x 64 = 23858.2 ns.

    Same seed: both runs draw the same media multipliers (and controller times), one per I/O
    in the same order (one job: no contention), so per I/O the difference is the extra exactly,
    but for the media time's rounding (under 1 ns) and where the poll loop sees the entry:
    at the next multiple of poll_ns after the doorbell, a delay in [0, poll_ns) in each run.
    So the means differ from the formula by less than poll_ns + 1, whatever the draws; with
    poll_ns 0 by less than 1."""
    profile = OPTANE
    if poll_ns is not None:
        profile = replace(profile, host=replace(profile.host, poll_ns=poll_ns))
    device = profile.device
    assert (device.channels, device.stripe_bytes) == (7, 4096)
    channel_ns = 5 * 4096 * 1000 / device.channel_mb_s - 4096 * 1000 / device.channel_mb_s
    assert 5 * 4096 * 1000 / device.channel_mb_s > 131072 * 1000 / device.bandwidth_mb_s
    expected = channel_ns + (131072 - 4096) // 1024 * profile.host.kib_ns

    def mean_ns(bs: int) -> float:
        r = simulate(RunConfig(profile, Method.CP, bs=bs, cpus="split", ios=3000, seed=3))
        assert r.ios == 3000
        return r.lat_mean_us * 1000

    difference = mean_ns(131072) - mean_ns(4096)
    assert abs(difference - expected) < profile.host.poll_ns + 1


# -- the cold completion path -------------------------------------------------------------


@pytest.mark.parametrize(("read_ns", "cold"), [(50_000, 900), (8000, 423)])
def test_an_interrupt_ios_cpu_time_pays_cold_caches_by_its_sleep(read_ns: int, cold: int) -> None:
    """INT at one job: per I/O the CPU runs submit, schedule() out (block_ns), the switch back
    in and the completion, which after a sleep of ``idle`` costs
    cold_ns x min(idle, cold_full_ns) // cold_full_ns more.

    ``idle`` runs from the block (at the doorbell) to the end of the interrupt handler that
    wakes the job: device time + irq_latency + the idle CPU's exit + the ISR
    = read_ns + 200 + 260 + 250 on the bare-metal host. At read_ns 50 µs that is above
    cold_full_ns (18.5 µs): the whole 900 ns. At 8 µs, 8710 ns: 900 x 8710 // 18500 = 423.

    With --ios N the job also switches in once at the start and out once at the end, so the
    run's CPU time is N x per I/O + ctx_switch_ns + block_ns; the run lasts the switch in
    and N latencies of submit + device + irq + idle exit + ISR + switch + completion."""
    profile = bare_metal(read_ns=read_ns)
    h = profile.host
    idle = read_ns + h.irq_latency_ns + h.idle_exit_ns + h.isr_ns
    assert cold == h.cold_ns * min(idle, h.cold_full_ns) // h.cold_full_ns
    per_io = h.submit_ns + h.complete_ns + h.ctx_switch_ns + h.block_ns + cold
    latency = idle + h.submit_ns + h.ctx_switch_ns + h.complete_ns + cold

    n = 2000
    r = simulate(RunConfig(profile, Method.INT, cpus="split", ios=n))
    runtime_ns = n / r.iops * 1e9
    assert runtime_ns == pytest.approx(h.ctx_switch_ns + n * latency, abs=1e-3)
    assert r.lat_mean_us * 1000 == pytest.approx(latency, abs=1e-6)
    cpu_ns = r.cpu_pct / 100 * runtime_ns
    assert cpu_ns == pytest.approx(n * per_io + h.ctx_switch_ns + h.block_ns, abs=1e-3)
    assert r.ctx == n + 1  # a block per I/O, and the one that ends the job


def test_without_cold_cost_the_cpu_per_io_is_the_paths_alone() -> None:
    """cold_ns 0 takes exactly the cold share out of the CPU per I/O (and the latency)."""
    warm = bare_metal(read_ns=50_000)
    cold = replace(warm, host=replace(warm.host, cold_ns=0))
    n = 500
    a, b = (simulate(RunConfig(p, Method.INT, ios=n)) for p in (warm, cold))
    cpu_a, cpu_b = (r.cpu_pct / 100 * r.ios / r.iops * 1e9 for r in (a, b))
    assert cpu_a - cpu_b == pytest.approx(n * 900, abs=1e-3)
    assert (a.lat_mean_us - b.lat_mean_us) * 1000 == pytest.approx(900, abs=1e-6)


# -- device contention --------------------------------------------------------------------


class Command:
    """A command the device serves; notes when it is done."""

    def __init__(self, engine: Engine, size: int = 4096) -> None:
        self.engine = engine
        self.op = Op.READ
        self.size = size
        self.done_at = -1

    def device_done(self) -> None:
        self.done_at = self.engine.now


def test_two_commands_in_the_media_at_once_lengthen_the_second() -> None:
    """Two commands submitted together: the controller takes them one after the other
    (serial_ns each); the first finds the media empty (media time read_ns - serial_ns), the
    second finds one command there and its media time is longer by ``contention``:
    (5060 - 1170) x 1.1 = 4279 ns."""
    profile = bare_metal(serial_ns=1170, read_ns=5060, contention=0.1).device
    serial, media = profile.serial_ns, profile.read_ns - profile.serial_ns
    engine = Engine()
    device = Device(engine, profile, np.random.default_rng(1))
    first, second = Command(engine), Command(engine)
    device.submit(first)
    device.submit(second)
    engine.run(10**9)
    assert first.done_at == serial + media
    assert second.done_at == 2 * serial + 4279
    # and alone, a command is not lengthened
    alone = Command(engine)
    device.submit(alone)
    engine.run(2 * 10**9)
    assert alone.done_at == 10**9 + serial + media


def test_contention_slows_two_jobs_and_no_contention_leaves_them_as_one() -> None:
    """CP on a deterministic device with no controller time: with contention 0, two jobs on
    their own CPUs see exactly one job's latency (submit + read_ns rounded up to a poll +
    completion = 500 + 5100 + 300). With contention 0.1 each command that finds the other in
    the media takes 5060 x 1.1 = 5566 ns, seen at 5580: latency 6380. Two jobs hold at most
    one other command, so the mean lies above 5900 and at most 6380; and it is 6380 most of
    the time: once job 1 trails job 0 by more than the 814 ns between a completion and the
    next doorbell (and less than the 5566 of a command), each submits while the other's
    command is in the media, their periods are equal and that lasts."""
    base = bare_metal(serial_ns=0, read_ns=5060)
    h = base.host

    def run(contention: float, jobs: int) -> Any:
        profile = replace(base, device=replace(base.device, contention=contention))
        return simulate(RunConfig(profile, Method.CP, jobs=jobs, cpus="split", runtime_s=0.01))

    one = h.submit_ns + ceil_to(5060, h.poll_ns) + h.complete_ns
    contended = h.submit_ns + ceil_to(5566, h.poll_ns) + h.complete_ns
    assert (one, contended) == (5900, 6380)
    assert run(0.0, 1).lat_mean_us * 1000 == pytest.approx(one, abs=1e-6)
    assert run(0.1, 1).lat_mean_us * 1000 == pytest.approx(one, abs=1e-6)
    assert run(0.0, 2).lat_mean_us * 1000 == pytest.approx(one, abs=1e-6)
    two = run(0.1, 2)
    assert one < two.lat_mean_us * 1000 <= contended
    assert two.lat_p50_us * 1000 == pytest.approx(contended, abs=1e-6)


# -- LHP's statistics ---------------------------------------------------------------------

LHP_READ_NS = 3010
LHP_IOS = 30_000


def lhp_profile() -> Profile:
    """One LHP job on the bare-metal host (io_poll_delay 0: adaptive) with a device that
    takes exactly 3010 ns."""
    return bare_metal(read_ns=LHP_READ_NS)


def test_lhp_sleeps_half_the_block_layers_mean_from_the_doorbell() -> None:
    """LHP sleeps (mean + 1) // 2 of the last 100 ms window, where the block layer's latency
    runs from the doorbell (after submit_ns) to the poll that finds the completion (before
    complete_ns): not fio's latency.

    Window 1 (nothing published yet: no sleep): the poll loop starts at the doorbell and
    sees the 3010 ns completion at the next 60 ns poll, so every sample, and the mean, is
    3060, and an I/O takes L1 = 500 + 3060 + 300 = 3860 ns. The sleep is then 1530 (fio's
    3860 would give 1930). With it (arming 150 ns, sd 0 here), an I/O runs: the sleep, the
    timer's slack 300, the idle CPU's exit 260, the timer ISR 600, the switch in 700 and the
    timer's cancel 100; the entry is there, the first poll (60) finds it; the completion
    pays cold caches for the sleep from the block (after arming) to the ISR's end:
    900 x (1530 + 300 + 260 + 600 - 150) // 18500 = 123. L2 = 500 + 1530 + 2020 + 300 + 123.

    How many I/Os run in window 1: it opens at the first completion, t1 = 700 (the first
    switch in) + 500 + 3060, and closes at the first statistics event 100 ms later. I/O k
    completes at t1 + k L1 and rings its doorbell 3060 earlier; the first completion at or
    after t1 + 100 ms is k = ceil(1e8 / 3860) = 25907, whose doorbell came before: I/Os 0
    to 25907 poll at once, the rest sleep. Window 2 would close 100 ms later, after the run.
    """
    profile = lhp_profile()
    profile = replace(profile, timer=replace(profile.timer, arm_sd_ns=0))
    h, t = profile.host, profile.timer
    window = 100_000_000

    mean = ceil_to(LHP_READ_NS, h.poll_ns)
    sleep = (mean + 1) // 2
    assert (mean, sleep) == (3060, 1530)
    l1 = h.submit_ns + mean + h.complete_ns
    woken = sleep + t.slack_ns + h.idle_exit_ns + t.isr_ns  # the timer ISR's end
    assert sleep + t.slack_ns > t.arm_mean_ns + h.block_ns  # the CPU idles before the ISR
    first_poll = woken + h.ctx_switch_ns + t.cancel_ns
    assert first_poll >= LHP_READ_NS  # the first poll finds the completion
    cold = h.cold_ns * min(woken - t.arm_mean_ns, h.cold_full_ns) // h.cold_full_ns
    l2 = h.submit_ns + first_poll + h.poll_ns + h.complete_ns + cold
    assert (l1, cold, l2) == (3860, 123, 4473)

    k = -(-window // l1)
    assert k * l1 - mean < window  # I/O k's doorbell comes before the window closes
    polled = k + 1
    slept = LHP_IOS - polled
    assert (polled, slept) == (25908, 4092)
    t1 = h.ctx_switch_ns + h.submit_ns + mean
    assert h.ctx_switch_ns + polled * l1 + slept * l2 < t1 + k * l1 + window

    r = simulate(RunConfig(profile, Method.LHP, cpus="split", ios=LHP_IOS))
    assert (r.sleeps_taken, r.sleeps_skipped) == (slept, 0)
    assert r.lat_mean_us * 1000 * LHP_IOS == pytest.approx(polled * l1 + slept * l2, abs=1e-3)


@pytest.mark.pure
def test_lhp_sleep_read_at_the_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same rule seen at the policy: every sleep LHP chose is 0 until the first window
    closes, then (3060 + 1) // 2 = 1530, whatever the timer's arming draws (the samples of
    window 1 never slept, so the draws cannot reach them)."""
    from dpas.policy.lhp import LhpPolicy

    chosen: list[tuple[int, int]] = []
    original = LhpPolicy.on_wait_start

    def spy(self: LhpPolicy, io: Any, now_ns: int) -> int:
        sleep = original(self, io, now_ns)
        chosen.append((now_ns, sleep))
        return sleep

    monkeypatch.setattr(LhpPolicy, "on_wait_start", spy)
    r = simulate(RunConfig(lhp_profile(), Method.LHP, cpus="split", ios=LHP_IOS))
    assert r.sleeps_taken == LHP_IOS - 25908
    sleeps = [s for _, s in chosen]
    assert sleeps == [0] * 25908 + [1530] * (LHP_IOS - 25908)
    first_completion = 700 + 500 + 3060
    assert chosen[25908][0] >= first_completion + 100_000_000 > chosen[25907][0]


# -- determinism --------------------------------------------------------------------------


@pytest.mark.parametrize("name", DRIVES)
def test_same_seed_same_record_other_seed_other_record(name: str) -> None:
    """A run is a function of its config and seed: the same seed gives the same record bit
    for bit (every field, floats included); another seed draws other device times."""
    profile = load(name)

    def run(seed: int) -> dict[str, Any]:
        config = RunConfig(profile, Method.DPAS, jobs=2, cpus="split", runtime_s=0.01, seed=seed)
        return asdict(simulate(config))

    a = run(11)
    assert a["ios"] > 0
    assert run(11) == a
    other = run(12)
    assert other != a and other["lat_mean_us"] != a["lat_mean_us"]
