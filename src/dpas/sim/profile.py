"""Host and device profiles: the numbers the simulator runs on, read from TOML files.

Every parameter lives in a profile file with a comment giving its source; this module only
names, types and checks them. ``load("qemu-lab")`` reads a shipped profile, ``load(path)``
any file of the same shape.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import MISSING, asdict, dataclass, fields, replace
from importlib import resources
from pathlib import Path
from typing import Any

from dpas.errors import DpasError, LimitError
from dpas.limits import INT_MAX, MAX_JOBS, checked
from dpas.policy import Method, SwitchParams
from dpas.policy.switch import param_error
from dpas.sizes import show_size


class ProfileError(DpasError, ValueError):
    """A profile that cannot be used; the message names the file and the key."""


@dataclass(frozen=True, slots=True)
class DeviceProfile:
    """The drive: latency per op, its spread and tail, parallelism and bandwidth."""

    read_ns: int  # mean device time of a 4 KiB read (doorbell to CQ entry), when idle
    write_ns: int  # the same for a 4 KiB write
    serial_ns: int  # the part of it the controller serves one command at a time (mean)
    serial_cv: float  # coefficient of variation of the controller's time (gamma distributed)
    floor: float  # the fixed share of the media time (a NAND page read's tR); the rest varies
    cv: float  # coefficient of variation of the media time's varying share (lognormal)
    tail_p: float  # probability that an I/O is a tail I/O
    tail_x: float  # a tail I/O's media time, as a multiple of its drawn time
    parallelism: int  # commands the media serves at once; more wait behind the controller
    contention: float  # each other command in the media lengthens one's media time this much
    bandwidth_mb_s: float  # the host link's rate (the datasheet's sequential read)
    #: the media's layout, which sets what a command of more than 4 KiB costs (dpas.sim.transfer);
    #: optional: 0 channels leaves it out, and a larger command pays the link only
    channels: int = 0  # flash channels the controller reads over
    channel_mb_s: float = 0.0  # one channel's rate
    stripe_bytes: int = 4096  # consecutive bytes on one die before the next channel's


@dataclass(frozen=True, slots=True)
class HostProfile:
    """The CPUs, the kernel paths' CPU costs, and the scheduler."""

    cpus: int
    submit_ns: int  # fio loop + syscall + block layer + doorbell, per 4 KiB I/O
    kib_ns: int  # submission's CPU time per KiB beyond 4 KiB (pinning and mapping the pages)
    complete_ns: int  # completion handling + return to user space, per I/O
    cold_ns: int  # the completion path's extra time after its job slept cold_full_ns or more
    cold_full_ns: int  # the sleep after which the caches are as cold as they get
    poll_ns: int  # one iteration of the completion-queue poll loop
    isr_ns: int  # CPU time of the device interrupt handler and its wakeup
    irq_latency_ns: int  # device completion to the guest's handler (no guest CPU used)
    ctx_switch_ns: int  # CPU time of switching a job in
    block_ns: int  # CPU time of schedule() switching a blocking job out
    idle_exit_ns: int  # an idle CPU's delay before it runs what woke it
    sched_latency_ns: int  # CFS period: a polling job's slice is this / runnable jobs...
    min_granularity_ns: int  # ...but at least this
    wakeup_preempt: bool  # a wakeup ends another job's poll loop (need_resched)


@dataclass(frozen=True, slots=True)
class TimerProfile:
    """High-resolution timers, as the hybrid sleep uses them."""

    arm_mean_ns: int  # CPU time to arm the hrtimer (normal distribution)
    arm_sd_ns: int
    slack_ns: int  # expiry to the timer interrupt
    jitter_ns: int  # mean of an exponential delay added to that, drawn per timer (0: none)
    isr_ns: int  # CPU time of the timer interrupt and wakeup
    cancel_ns: int  # CPU time of hrtimer_cancel after the sleep, before the first poll


@dataclass(frozen=True, slots=True)
class Pitfalls:
    """Reference section 5: what breaks DPAS in a virtual machine, as switches."""

    stats_sectors_bug: bool  # fix 1 not applied: buckets from stats sectors (pas io: 0)
    queue_stats: bool  # the queue collects statistics (write-back throttling on)
    poll_queues: bool  # fix 2: nvme poll_queues > 0; without them nothing is polled
    io_poll_delay: int  # -1: classic polling only, the hybrid (sleeping) path is never entered
    always_yield: bool  # fix 3: the sleep loop always yields, even if the timer expired


@dataclass(frozen=True, slots=True)
class Published:
    """The published results a profile was calibrated against, and how they were run.

    ``dpas validate`` runs this grid and compares it cell by cell with ``table`` (a reference
    shipped in dpas.sim.reference); ``fitted`` marks the cells the profile's FIT values were
    fitted to, so the rest are predictions.
    """

    table: str  # a shipped reference table: paper_4k_randread or qemu_lab
    device: str  # the table's name for the drive ("" for a table of one drive)
    cpus: str  # "0": every job on CPU 0 (the lab); "split": one CPU per job (the paper)
    jobs: tuple[int, ...]
    modes: tuple[Method, ...]
    runtime_s: float  # the published runs' length (validate runs shorter ones by default)
    fitted: tuple[tuple[Method, int], ...]  # (mode, jobs) cells the FIT values were fitted to
    switch: SwitchParams  # the switch_param1..7 the drive was published with
    adaptive: int  # pas_adaptive_enabled of the published runs

    def record(self) -> dict[str, Any]:
        """As the profile file spells it: modes by name, fitted cells "MODE xJOBS"."""
        return {
            "table": self.table,
            "device": self.device,
            "cpus": self.cpus,
            "jobs": list(self.jobs),
            "modes": [m.value for m in self.modes],
            "runtime_s": self.runtime_s,
            "fitted": [f"{mode.value} x{jobs}" for mode, jobs in self.fitted],
            "switch": asdict(self.switch),
            "adaptive": self.adaptive,
        }


@dataclass(frozen=True, slots=True)
class Support:
    """How far the sources behind a profile's device model reach: the largest command and
    the most jobs a measurement or a datasheet covers. A run beyond them is still simulated,
    but its numbers are the model's guess, and tables mark it."""

    bs_max: int  # bytes
    jobs_max: int
    sources: str  # what covers them, for the footnote and the record

    def gap(self, bs: int, jobs: int) -> str:
        """Why a run of ``bs`` bytes and ``jobs`` jobs is beyond the sources ("" if it is not)."""
        beyond = [
            *([f"bs {show_size(bs)} > {show_size(self.bs_max)}"] if bs > self.bs_max else []),
            *([f"{jobs} jobs > {self.jobs_max}"] if jobs > self.jobs_max else []),
        ]
        return ", ".join(beyond)


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    description: str
    device: DeviceProfile
    host: HostProfile
    timer: TimerProfile
    pitfalls: Pitfalls
    published: Published | None = None
    #: how far the device model's sources reach; None: the profile does not say
    support: Support | None = None
    #: the shipped platform that gave host, timer and pitfalls ("" when the file gives them)
    platform: str = ""

    def parameters(self) -> dict[str, Any]:
        """The numbers the model runs on (every section but [published]), for records."""
        return {
            "description": self.description,
            "platform": self.platform,
            **{s: asdict(getattr(self, s)) for s in ("device", "host", "timer", "pitfalls")},
        }

    def record(self) -> dict[str, Any]:
        """The whole profile as JSON can hold it (results.json's "profile")."""
        published = self.published.record() if self.published else None
        support = asdict(self.support) if self.support else None
        return {"name": self.name, **self.parameters(), "published": published, "support": support}

    def with_pitfalls(self, **changes: Any) -> Profile:
        return replace(self, pitfalls=replace(self.pitfalls, **changes))


SECTIONS = {
    "device": DeviceProfile,
    "host": HostProfile,
    "timer": TimerProfile,
    "pitfalls": Pitfalls,
}

#: Top-level keys besides the sections: free text.
TEXT_KEYS = ("name", "description")
#: Optional sections
OPTIONAL = ("published", "support")

#: 10 s in ns: no single cost or device time of a 4 KiB I/O comes near it
MAX_NS = 10_000_000_000


@dataclass(frozen=True, slots=True)
class Range:
    """What one number of a profile accepts: finite, in [low, high]."""

    low: float
    high: float
    why: str = ""


_COST = Range(0, MAX_NS)  # a CPU cost or a delay: none is possible, 10 s is not
_CV = Range(0, 10)  # a coefficient of variation: 10 is already a shape of 0.01

#: Every number of a profile, by (section, key); booleans take true or false.
RANGES: dict[tuple[str, str], Range] = {
    # the fastest drives take several µs for 4 KiB; below 1 µs a simulated second would be
    # millions of events per job (at 1 ns a run never ends)
    ("device", "read_ns"): Range(1000, MAX_NS, "no drive answers 4 KiB in under 1 µs"),
    ("device", "write_ns"): Range(1000, MAX_NS, "no drive answers 4 KiB in under 1 µs"),
    ("device", "serial_ns"): _COST,
    ("device", "serial_cv"): _CV,
    ("device", "floor"): Range(0, 0.999, "a share of the media time; below 1 so it varies"),
    ("device", "cv"): _CV,
    ("device", "tail_p"): Range(0, 1, "a probability"),
    ("device", "tail_x"): Range(1, 1000, "a tail I/O is no faster than others"),
    ("device", "parallelism"): Range(1, 65_536),
    ("device", "contention"): Range(0, 1, "a share of the media time per other command"),
    ("device", "bandwidth_mb_s"): Range(1, 10_000_000, "1 MB/s to 10 TB/s"),
    ("device", "channels"): Range(0, 1024, "0: the layout is not modelled"),
    ("device", "channel_mb_s"): Range(0, 1_000_000, "0 only with channels = 0"),
    ("device", "stripe_bytes"): Range(512, 1 << 30, "512 B to 1 GiB"),
    ("host", "cpus"): Range(1, 4096),
    ("host", "submit_ns"): _COST,
    ("host", "kib_ns"): Range(0, 1_000_000, "1 ms a KiB would be a floppy disk"),
    ("host", "complete_ns"): _COST,
    ("host", "cold_ns"): _COST,
    ("host", "cold_full_ns"): Range(1, MAX_NS),
    ("host", "poll_ns"): _COST,
    ("host", "isr_ns"): _COST,
    ("host", "irq_latency_ns"): _COST,
    ("host", "ctx_switch_ns"): _COST,
    ("host", "block_ns"): _COST,
    ("host", "idle_exit_ns"): _COST,
    # the kernel's own bounds of sched_latency_ns and sched_min_granularity_ns (0.1 ms to 1 s):
    # shorter slices would preempt a poll loop every few ns
    ("host", "sched_latency_ns"): Range(100_000, 1_000_000_000, "the kernel's sysctl bounds"),
    ("host", "min_granularity_ns"): Range(100_000, 1_000_000_000, "the kernel's sysctl bounds"),
    ("timer", "arm_mean_ns"): _COST,
    ("timer", "arm_sd_ns"): _COST,
    ("timer", "slack_ns"): _COST,
    ("timer", "jitter_ns"): _COST,
    ("timer", "isr_ns"): _COST,
    ("timer", "cancel_ns"): _COST,
    ("pitfalls", "io_poll_delay"): Range(-1, INT_MAX, "-1: classic polling; N >= 0 µs"),
}


def _shipped_names(folder: str, suffix: str) -> list[str]:
    """Names of the files ending in ``suffix`` that dpas.sim ships in ``folder``."""
    files = resources.files("dpas.sim").joinpath(*folder.split("/")).iterdir()
    return sorted(p.name.removesuffix(suffix) for p in files if p.name.endswith(suffix))


def shipped() -> list[str]:
    """Names of the profiles shipped with dpas."""
    return _shipped_names("profiles", ".toml")


def _value(where: str, section: str, key: str, kind: str, value: Any) -> Any:
    """One key's value if it has the field's type and range; a ProfileError otherwise, in
    the form ``profile FILE: [section] key = value: expected ...``."""
    at = f"profile {where}: [{section}] {key} = {_toml(value)}"
    if kind == "bool":
        if not isinstance(value, bool):
            raise ProfileError(f"{at}: expected bool (true or false)")
        return value
    r = RANGES[(section, key)]
    accepted = f"expected {kind} from {r.low:,} to {r.high:,}".replace(",", "_")
    accepted += f" ({r.why})" if r.why else ""
    number = (int, float) if kind == "float" else (int,)
    if not isinstance(value, number) or isinstance(value, bool):
        raise ProfileError(f"{at}: {accepted}")
    try:
        checked(key, value, r.low, r.high)
    except LimitError:
        raise ProfileError(f"{at}: {accepted}") from None
    return float(value) if kind == "float" else value


def _toml(value: Any) -> str:
    """A value as the file spells it, cut short: messages are one line."""
    if isinstance(value, bool):
        return str(value).lower()
    text = repr(value) if isinstance(value, str | float) else str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _section(where: str, name: str, cls: type, table: Any) -> Any:
    if not isinstance(table, dict):
        raise ProfileError(f"profile {where}: [{name}] is missing (or not a table)")
    wanted = {f.name: str(f.type) for f in fields(cls)}
    unknown = sorted(set(table) - set(wanted))
    if unknown:
        raise ProfileError(f"profile {where}: [{name}] has no key {unknown[0][:40]!r}")
    optional = {f.name for f in fields(cls) if f.default is not MISSING}
    values = {}
    for key, kind in wanted.items():
        if key in table:
            values[key] = _value(where, name, key, kind, table[key])
        elif key not in optional:
            raise ProfileError(f"profile {where}: [{name}] {key} is missing")
    return cls(**values)


def _text(where: str, data: dict[str, Any], key: str, default: str) -> str:
    value = data.get(key, default)
    if not isinstance(value, str):
        raise ProfileError(f"profile {where}: {key} = {_toml(value)}: expected a string")
    return value


def _toml_data(text: str, where: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ProfileError(f"profile {where}: {err}") from None
    except RecursionError:
        raise ProfileError(f"profile {where}: nested too deeply to be a profile") from None


#: the sections a platform file gives a drive's profile
PLATFORM_SECTIONS = ("host", "timer", "pitfalls")


def platforms() -> list[str]:
    """Names of the host platforms shipped with dpas (profiles/platforms/NAME.toml)."""
    return _shipped_names("profiles/platforms", ".toml")


def _with_platform(where: str, data: dict[str, Any]) -> dict[str, Any]:
    """A drive's profile that names its host (``platform = "bare-metal"``) gets the platform's
    [host], [timer] and [pitfalls]: several drives share one calibrated host."""
    name = data.pop("platform")
    if not isinstance(name, str) or name not in platforms():
        raise ProfileError(
            f"profile {where}: platform = {_toml(name)}: expected a shipped platform "
            f"({', '.join(platforms())})"
        )
    both = [s for s in PLATFORM_SECTIONS if s in data]
    if both:
        raise ProfileError(
            f"profile {where}: [{both[0]}] is given by platform {name!r}; remove one of them"
        )
    text = (resources.files("dpas.sim") / "profiles" / "platforms" / f"{name}.toml").read_text()
    platform = _toml_data(text, f"platform {name}")
    return {**data, **{s: platform.get(s) for s in PLATFORM_SECTIONS}}


def parse(text: str, where: str) -> Profile:
    """The profile in ``text`` (TOML); ``where`` names it in errors."""
    data = _toml_data(text, where)
    platform = data.get("platform", "")
    if "platform" in data:
        data = _with_platform(where, data)
    unknown = sorted(set(data) - set(SECTIONS) - set(TEXT_KEYS) - set(OPTIONAL))
    if unknown:
        key = unknown[0]
        what = f"table [{key[:40]}]" if isinstance(data[key], dict) else f"key {key[:40]!r}"
        known = ", ".join([*TEXT_KEYS, *(f"[{s}]" for s in (*SECTIONS, *OPTIONAL))])
        raise ProfileError(f"profile {where}: unknown {what} (known: {known})")
    parts = {name: _section(where, name, cls, data.get(name)) for name, cls in SECTIONS.items()}
    device = parts["device"]
    if device.serial_ns > min(device.read_ns, device.write_ns):
        raise ProfileError(f"profile {where}: [device] serial_ns is part of read_ns and write_ns")
    if device.channels and not device.channel_mb_s:
        raise ProfileError(
            f"profile {where}: [device] channels = {device.channels} needs channel_mb_s above 0"
        )
    return Profile(
        name=_text(where, data, "name", where),
        description=_text(where, data, "description", ""),
        published=_published(where, data["published"]) if "published" in data else None,
        support=_support(where, data["support"]) if "support" in data else None,
        platform=platform,
        **parts,
    )


#: [published] keys: what each accepts
PUBLISHED_KEYS = {
    "table": "a shipped reference table (paper_4k_randread, qemu_lab)",
    "device": "the table's name for the drive, a string",
    "cpus": '"0" or "split"',
    "jobs": f"a list of job counts from 1 to {MAX_JOBS}",
    "modes": "a list of modes (INT, CP, LHP, EHP, PAS, DPAS)",
    "runtime_s": "seconds, above 0",
    "fitted": 'a list of cells "MODE xJOBS" from modes and jobs',
    "params": "a table of switch params (param1..7) and adaptive (0, 1, 2)",
}


FITTED_CELL = re.compile(r"([A-Za-z]+) x([1-9][0-9]{0,3})")


def _published(where: str, table: Any) -> Published:
    """The [published] section, every value checked; a ProfileError names the key."""

    def bad(key: str, value: Any) -> ProfileError:
        return ProfileError(
            f"profile {where}: [published] {key} = {_toml(value)}: expected {PUBLISHED_KEYS[key]}"
        )

    if not isinstance(table, dict):
        raise ProfileError(f"profile {where}: [published] must be a table")
    unknown = sorted(set(table) - set(PUBLISHED_KEYS))
    if unknown:
        raise ProfileError(f"profile {where}: [published] has no key {unknown[0][:40]!r}")
    missing = [k for k in PUBLISHED_KEYS if k not in table and k != "params"]
    if missing:
        raise ProfileError(f"profile {where}: [published] {missing[0]} is missing")
    if table["table"] not in reference_tables():
        raise bad("table", table["table"])
    if not isinstance(table["device"], str):
        raise bad("device", table["device"])
    if table["cpus"] not in ("0", "split"):
        raise bad("cpus", table["cpus"])
    jobs = table["jobs"]
    if not (
        isinstance(jobs, list)
        and jobs
        and all(isinstance(j, int) and not isinstance(j, bool) and 1 <= j <= MAX_JOBS for j in jobs)
    ):
        raise bad("jobs", jobs)
    try:
        modes = tuple(Method.parse(m) for m in table["modes"])
    except (ValueError, TypeError, AttributeError):
        raise bad("modes", table["modes"]) from None
    if not modes or Method.HYB in modes:
        raise bad("modes", table["modes"])
    runtime = table["runtime_s"]
    if not isinstance(runtime, int | float) or isinstance(runtime, bool) or not 0 < runtime < 1e6:
        raise bad("runtime_s", runtime)
    if not isinstance(table["fitted"], list):
        raise bad("fitted", table["fitted"])
    fitted = []
    for cell in table["fitted"]:
        match = FITTED_CELL.fullmatch(cell) if isinstance(cell, str) else None
        try:
            parsed = (Method.parse(match[1]), int(match[2])) if match else None
        except ValueError:
            parsed = None
        if parsed is None:
            raise bad("fitted", cell)
        if parsed[0] not in modes or parsed[1] not in jobs:
            raise bad("fitted", cell)
        fitted.append(parsed)
    params = table.get("params", {})
    if not isinstance(params, dict):
        raise bad("params", params)
    switch: dict[str, int] = {}
    adaptive = 1
    for key, value in params.items():
        whole = isinstance(value, int) and not isinstance(value, bool)
        if key == "adaptive" and whole and value in (0, 1, 2):
            adaptive = value
        elif key in SwitchParams.__dataclass_fields__ and whole and not param_error(key, value):
            switch[key] = value
        else:
            raise bad("params", {key: value})
    return Published(
        table=table["table"],
        device=table["device"],
        cpus=table["cpus"],
        jobs=tuple(jobs),
        modes=modes,
        runtime_s=float(runtime),
        fitted=tuple(fitted),
        switch=SwitchParams(**switch),
        adaptive=adaptive,
    )


def _support(where: str, table: Any) -> Support:
    """The [support] section: bs_max (bytes), jobs_max, sources (text); all three given."""
    at = f"profile {where}: [support]"
    if not isinstance(table, dict):
        raise ProfileError(f"{at} must be a table")
    wanted = {"bs_max": (512, 1 << 30), "jobs_max": (1, MAX_JOBS)}
    unknown = sorted(set(table) - {*wanted, "sources"})
    if unknown:
        raise ProfileError(f"{at} has no key {unknown[0][:40]!r} (keys: bs_max, jobs_max, sources)")
    values: dict[str, Any] = {}
    for key, (low, high) in wanted.items():
        value = table.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise ProfileError(
                f"{at} {key} = {_toml(value)}: expected a whole number from {low} to {high}"
            )
        values[key] = value
    sources = table.get("sources")
    if not isinstance(sources, str) or not sources.strip():
        raise ProfileError(f"{at} sources = {_toml(sources)}: expected the sources, a string")
    return Support(**values, sources=sources.strip())


def reference_tables() -> list[str]:
    """Names of the published tables shipped with dpas (dpas.sim.reference)."""
    return _shipped_names("reference", ".json")


def load(spec: str) -> Profile:
    """A shipped profile by name, or a TOML file by path."""
    if spec in shipped():
        text = (resources.files("dpas.sim") / "profiles" / f"{spec}.toml").read_text()
        return parse(text, spec)
    path = Path(spec)
    if not _is_file(path):
        raise ProfileError(
            f"profile {spec}: not a file or a shipped profile ({', '.join(shipped())})"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ProfileError(f"profile {path}: {err.strerror or err}") from None
    except UnicodeDecodeError:
        raise ProfileError(f"profile {path}: not a UTF-8 text file") from None
    return parse(text, str(path))


def _is_file(path: Path) -> bool:
    """Whether ``path`` is a file (a name the OS cannot take names none)."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False
