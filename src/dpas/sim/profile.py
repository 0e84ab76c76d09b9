"""Host and device profiles: the numbers the simulator runs on, read from TOML files.

Every parameter lives in a profile file with a comment giving its source; this module only
names, types and checks them. ``load("qemu-lab")`` reads a shipped profile, ``load(path)``
any file of the same shape.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, fields, replace
from importlib import resources
from pathlib import Path
from typing import Any

from dpas.errors import DpasError


class ProfileError(DpasError, ValueError):
    """A profile that cannot be used; the message names the file and the key."""


@dataclass(frozen=True, slots=True)
class DeviceProfile:
    """The drive: latency per op, its spread and tail, parallelism and bandwidth."""

    read_ns: int  # mean device time of a 4 KiB read (doorbell to CQ entry), when idle
    write_ns: int  # the same for a 4 KiB write
    serial_ns: int  # the part of it the controller serves one command at a time (mean)
    serial_cv: float  # coefficient of variation of the controller's time (gamma distributed)
    cv: float  # coefficient of variation of the lognormal media time
    tail_p: float  # probability that an I/O is a tail I/O
    tail_x: float  # a tail I/O's media time, as a multiple of its drawn time
    parallelism: int  # commands the media serves at once; more wait behind the controller
    bandwidth_mb_s: float  # bytes beyond 4 KiB cost size / bandwidth


@dataclass(frozen=True, slots=True)
class HostProfile:
    """The CPUs, the kernel paths' CPU costs, and the scheduler."""

    cpus: int
    submit_ns: int  # fio loop + syscall + block layer + doorbell, per I/O
    complete_ns: int  # completion handling + return to user space, per I/O
    poll_ns: int  # one iteration of the completion-queue poll loop
    isr_ns: int  # CPU time of the device interrupt handler and its wakeup
    irq_latency_ns: int  # device completion to the guest's handler (no guest CPU used)
    ctx_switch_ns: int  # CPU time of one context switch
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
class Profile:
    name: str
    description: str
    device: DeviceProfile
    host: HostProfile
    timer: TimerProfile
    pitfalls: Pitfalls

    def with_pitfalls(self, **changes: Any) -> Profile:
        return replace(self, pitfalls=replace(self.pitfalls, **changes))


SECTIONS = {
    "device": DeviceProfile,
    "host": HostProfile,
    "timer": TimerProfile,
    "pitfalls": Pitfalls,
}


def shipped() -> list[str]:
    """Names of the profiles shipped with dpas."""
    folder = resources.files("dpas.sim") / "profiles"
    return sorted(
        p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml")
    )


def _section(where: str, name: str, cls: type, table: Any) -> Any:
    if not isinstance(table, dict):
        raise ProfileError(f"profile {where}: [{name}] is missing")
    wanted = {f.name: f for f in fields(cls)}
    unknown = sorted(set(table) - set(wanted))
    if unknown:
        raise ProfileError(f"profile {where}: [{name}] has no key {unknown[0]!r}")
    values = {}
    for key, f in wanted.items():
        if key not in table:
            raise ProfileError(f"profile {where}: [{name}] {key} is missing")
        value, kind = table[key], f.type
        ok = (
            (kind == "bool" and isinstance(value, bool))
            or (kind == "int" and isinstance(value, int) and not isinstance(value, bool))
            or (kind == "float" and isinstance(value, int | float) and not isinstance(value, bool))
        )
        if not ok:
            raise ProfileError(f"profile {where}: [{name}] {key} = {value!r}: expected {kind}")
        if kind != "bool" and value < 0 and key != "io_poll_delay":
            raise ProfileError(f"profile {where}: [{name}] {key} = {value!r}: expected >= 0")
        values[key] = float(value) if kind == "float" else value
    return cls(**values)


def parse(text: str, where: str) -> Profile:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ProfileError(f"profile {where}: {err}") from None
    parts = {name: _section(where, name, cls, data.get(name)) for name, cls in SECTIONS.items()}
    device = parts["device"]
    if device.parallelism < 1 or parts["host"].cpus < 1:
        raise ProfileError(f"profile {where}: parallelism and cpus must be at least 1")
    if device.serial_ns > min(device.read_ns, device.write_ns):
        raise ProfileError(f"profile {where}: [device] serial_ns is part of read_ns and write_ns")
    return Profile(
        name=str(data.get("name", where)), description=str(data.get("description", "")), **parts
    )


def load(spec: str) -> Profile:
    """A shipped profile by name, or a TOML file by path."""
    if spec in shipped():
        text = (resources.files("dpas.sim") / "profiles" / f"{spec}.toml").read_text()
        return parse(text, spec)
    path = Path(spec)
    if not path.is_file():
        raise ProfileError(
            f"profile {spec}: not a file or a shipped profile ({', '.join(shipped())})"
        )
    return parse(path.read_text(), str(path))
