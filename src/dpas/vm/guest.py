"""One guest run: the plan as a shell script, QEMU under KVM or TCG, the results read back.

The guest runs the sweep itself, with the same runner as ``dpas bench --device`` (dpas and
its Python are in the initramfs): it finds its own kernel's knobs, settles DPAS's CPUs and
reads switch_stat. Each run comes back on the second serial port, away from kernel messages,
as soon as it ends, so a kernel that crashes later costs none of it.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shlex
import subprocess
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dpas.real.stop import check, run_child
from dpas.vm.kernel import VmError
from dpas.vm.python import GuestPython

DRIVE = Path("/dev/nvme0n1")
#: the in-guest runner's home and state folder (its device lock and knob journal)
GUEST_ENV = "HOME=/tmp XDG_STATE_HOME=/tmp/state"


@dataclass(frozen=True, slots=True)
class GuestRun:
    """The guest's shape, fio's engine for the sweep, and two tests' seams."""

    cpus: int = 2
    memory: str = "1G"
    #: fio's engine for every mode instead of the kernel's (dpas bench --ioengine)
    ioengine: str | None = None
    #: a test's: the guest's kernel crashed (sysrq c) after this many runs (0: never)
    crash_after: int = 0
    #: a test's: the run after this many never ends (0: none does)
    hang_after: int = 0


@dataclass(slots=True)
class GuestResult:
    """What the guest streamed back, as far as it got."""

    kernel: str = ""
    #: the runs' records, as the in-guest runner made them (dpas.results.RunResult fields)
    records: list[dict[str, Any]] = field(default_factory=list)
    #: the engine's per-I/O logs: file name -> the .npy bytes
    logs: dict[str, bytes] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)
    d_init_ns: int = 0
    #: io_uring_setup(IOPOLL | HYBRID_IOPOLL) in the guest: "accepted" or why not
    hybrid_iopoll: str = "not probed"
    #: the error that ended the guest's sweep ("" if none did)
    error: str = ""
    #: the drive's DPAS knobs before and after the sweep ({"before": {...}, "after": {...}})
    knobs: dict[str, dict[str, str]] = field(default_factory=dict)
    #: the plan reached its end; if not, the run it was in ("PAS x2"), or None between runs
    complete: bool = True
    running: str | None = None
    running_run: tuple[str, int, int] | None = None  # the same as (mode, jobs, repeat)
    #: why it stopped before the end of its plan (ended_early), "" if it did not
    ended: str = ""


def plan_script(spec: dict[str, Any], python: GuestPython) -> str:
    """The guest's plan: its release, the hybrid-polling probe, then the sweep ``spec``
    (dpas.vm.inguest bench) streaming each run to the results port as it ends."""
    return (
        'echo "@@UNAME $(uname -r)"\n'
        f'echo "@@HYBRID $({python.command("hybrid")})"\n'
        f"{GUEST_ENV} {python.command('bench', shlex.quote(json.dumps(spec)))}\n"
        'echo "@@DONE"\n'
    )


class GuestEnded(VmError):
    """The guest's kernel crashed or hung before the end of its plan; ``partial`` holds what
    it finished (the caller saves it before saying why it ended)."""

    exit_code = 1

    def __init__(self, message: str, partial: object = None) -> None:
        super().__init__(message)
        self.partial = partial


class GuestTimeout(VmError):
    """QEMU was stopped after its deadline; ``text`` is what the guest had reported."""

    def __init__(self, message: str, text: str, seconds: float, accel: str) -> None:
        super().__init__(message)
        self.text, self.seconds, self.accel = text, seconds, accel


#: where a console log says the kernel went wrong: the first such line names it
OOPS = re.compile(
    r"(BUG: .*|Oops: .*|general protection fault.*|kernel BUG at .*|Kernel panic - .*|"
    r"Unable to handle .*|INFO: task .* blocked for more than .*|watchdog: BUG: .*)"
)


def kernel_trouble(console: str, system_map: Path | None = None) -> str:
    """What a console log says went wrong: the first oops, panic or hung-task line, with the
    faulting kernel instruction (RIP) where one was printed: symbol+offset as the kernel
    names it, or, from ``system_map``, for a kernel without its symbols (it prints the bare
    address); "" if none."""
    first = OOPS.search(console)
    if first is None:
        return ""
    rip = re.search(r"RIP: 0010:(\S+)", console[first.start() :])  # 0010: kernel code
    said = first[1].strip()
    if rip is None:
        return said
    where = rip[1]
    if re.fullmatch(r"0x[0-9a-f]+", where) and system_map is not None:
        where = f"{symbol(int(where, 16), system_map) or 'unknown'} ({where})"
    return f"{said}; RIP {where}"


def blocked_tasks(console: str) -> list[str] | None:
    """The tasks the kernel's blocked-task dump (sysrq w) lists, each as ``name (function)``
    with the first function of its stack that is not the scheduler's (schedule,
    io_schedule...); None if no dump."""
    start = console.rfind("Show Blocked State")
    if start < 0:
        return None
    tasks = []
    for block in re.split(r"^.*?task:", console[start:], flags=re.M)[1:]:
        name = block.split()[0]
        calls = [  # "? " marks a frame the unwinder only guessed
            call
            for line in block.splitlines()
            if "? " not in line
            for call in re.findall(r"(?<![\w.])([A-Za-z_][\w.]*)\+0x[0-9a-f]+/0x", line)
        ]
        inside = next((c for c in calls if "schedule" not in c), "")
        tasks.append(f"{name} ({inside})" if inside else name)
    return tasks


def symbol(address: int, system_map: Path) -> str:
    """``address`` as symbol+0xoffset from a System.map ("" if it is before every text
    symbol or the map cannot be read). Without KASLR (a tinyconfig build) the map's
    addresses are the running kernel's."""
    best: tuple[int, str] | None = None
    try:
        lines = system_map.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    for line in lines:
        parts = line.split()
        if len(parts) != 3 or parts[1] not in "tTwW":
            continue
        value = int(parts[0], 16)
        if value <= address and (best is None or value > best[0]):
            best = (value, parts[2])
    return f"{best[1]}+{address - best[0]:#x}" if best else ""


def hybrid_answer(line: str) -> str:
    """The in-guest probe's JSON as a phrase: accepted, or refused with the kernel's reason."""
    try:
        answer = json.loads(line)
        accepted, reason = answer["accepted"], str(answer["reason"])
    except (ValueError, KeyError, TypeError):
        return "not probed"
    if accepted is None:
        return reason
    return "accepted" if accepted else f"refused ({reason})"


def read_results(text: str) -> GuestResult:
    """The guest's transcript (dpas.vm.inguest bench's lines) as results, as far as it got.
    The records of a mode refused after some of its runs are dropped, as on the host."""
    result = GuestResult()
    m = re.search(r"^@@UNAME (\S+)", text, re.M)
    result.kernel = m[1] if m else ""
    m = re.search(r"^@@HYBRID (.+)$", text, re.M)
    result.hybrid_iopoll = hybrid_answer(m[1] if m else "")
    for tag, value in re.findall(r"^@@(RECORD|LOG|BENCH) (.*)$", text, re.M):
        if tag == "LOG":
            name, _, packed = value.partition(" ")
            result.logs[name] = zlib.decompress(base64.b64decode(packed))
            continue
        try:
            data = json.loads(value)
        except ValueError:
            raise VmError(f"the guest sent a {tag} line that is not JSON: {value[:80]}") from None
        if tag == "RECORD":
            result.records.append(data)
        else:
            result.refused = dict(data["refused"])
            result.d_init_ns = int(data["d_init_ns"])
            result.error = str(data["error"])
            result.knobs = dict(data.get("knobs", {}))
    result.records = [r for r in result.records if r["mode"] not in result.refused]
    result.complete = "@@DONE" in text
    begun = re.findall(r"^@@BEGIN (\S+)", text, re.M)
    if not result.complete and len(begun) > len(re.findall(r"^@@END$", text, re.M)):
        mode, jobs, repeat = begun[-1].split(":")
        result.running = f"{mode} x{jobs}"
        result.running_run = (mode, int(jobs), int(repeat))
    return result


def ended_early(
    result: GuestResult, console: Path, timed_out_s: float | None, system_map: Path | None = None
) -> str:
    """Why the guest stopped before the end of its plan, in one line: the run it was in, what
    the kernel said (an oops, a panic, a hung task), how many runs it finished, the log."""
    try:
        trouble = kernel_trouble(console.read_text(errors="replace"), system_map)
    except OSError:
        trouble = ""
    if result.running:
        where = f" during {result.running}"
    else:
        where = " between runs" if result.records else " before its first run"
    said = f" ({trouble})" if trouble else ""
    if timed_out_s is not None and result.running:
        try:
            blocked = blocked_tasks(console.read_text(errors="replace"))
        except OSError:
            blocked = None
        if blocked is not None and not trouble:
            said = f" ({'blocked: ' + ', '.join(blocked) if blocked else 'no task blocked'})"
        head = f"{result.running} did not finish in {timed_out_s:.0f} s{said}"
    elif timed_out_s is not None:
        head = f"the guest hung between runs: nothing more in {timed_out_s:.0f} s{said}"
    elif trouble:
        head = f"the guest kernel crashed{where}{said}"
    else:
        head = f"the guest stopped{where} before the end of its plan"
    runs = len(result.records)
    return f"{head}; {runs} run{'s' * (runs != 1)} finished and kept; console log: {console}"


@dataclass(frozen=True, slots=True)
class Machine:
    """How QEMU runs the guest."""

    kernel: Path
    initrd: Path
    drive: Path
    cpus: int
    memory: str
    poll_queues: int = 2

    def argv(self, accel: str, serials: list[str]) -> list[str]:
        # nvme.poll_queues on the command line always: a kernel with NVMe built in (a
        # build:VERSION kernel, a bzImage given alone) takes it from there and nowhere else
        # (writing the parameter after boot comes after the probe that sets the queues up);
        # with nvme as a module the kernel ignores it (only modprobe reads /proc/cmdline,
        # and the guest has none): init's insmod passes poll_queues itself. So one line fits
        # every kind of kernel, including a bzImage whose modules dpas cannot see.
        args = [
            "qemu-system-x86_64",
            "-machine",
            "q35",
            "-m",
            self.memory,
            "-smp",
            str(self.cpus),
            "-kernel",
            str(self.kernel),
            "-initrd",
            str(self.initrd),
            "-append",
            f"console=ttyS0 quiet loglevel=3 panic=-1 nvme.poll_queues={self.poll_queues}",
            "-drive",
            f"file={self.drive},if=none,id=nvm,format=raw",
            "-device",
            "nvme,serial=dpas0001,drive=nvm",
            "-no-reboot",
            "-display",
            "none",
        ]
        for serial in serials:
            args += ["-serial", serial]
        if accel == "kvm":
            args += ["-accel", "kvm", "-cpu", "host"]
        else:
            args += ["-accel", "tcg", "-cpu", "max"]
        return args


def kvm_unusable() -> str:
    """Why KVM cannot run the guest ("" if it may): /dev/kvm must open, and the CPU must show
    vmx or svm. Without them /dev/kvm is a software KVM (kvm_pvm on this project's machines)
    that either aborts at once or stops a 6.1 or 7.x guest on an "emulation failure" and
    leaves QEMU paused until the timeout, instead of exiting so TCG can take over."""
    try:
        fd = os.open("/dev/kvm", os.O_RDWR)
    except OSError:
        return "/dev/kvm cannot be opened"
    os.close(fd)
    try:
        flags = re.search(r"^flags\s*:(.*)$", Path("/proc/cpuinfo").read_text(), re.M)
    except OSError:
        flags = None
    if flags is not None and not {"vmx", "svm"} & set(flags[1].split()):
        return "/dev/kvm is there but the CPU shows neither vmx nor svm"
    return ""


def kvm_usable() -> bool:
    return not kvm_unusable()


class RunWatch:
    """The guest's runs as they begin and end in its results log, read while it runs:
    ``alive()`` is False once one run has gone on longer than ``per_run_s``."""

    def __init__(self, results: Path, per_run_s: float | None) -> None:
        self.results, self.per_run_s = results, per_run_s
        self.current: str | None = None
        self.since = time.monotonic()
        self.stuck_s: float | None = None

    def alive(self) -> bool:
        try:
            text = self.results.read_text(errors="replace")
        except OSError:
            return True
        begun = re.findall(r"^@@BEGIN (\S+)", text, re.M)
        open_run = len(begun) > len(re.findall(r"^@@END$", text, re.M))
        current = f"{len(begun)} {begun[-1]}" if open_run else None
        now = time.monotonic()
        if current != self.current:
            self.current, self.since = current, now
        limit = self.per_run_s
        if current is not None and limit is not None and now - self.since > limit:
            self.stuck_s = now - self.since
            return False
        return True


#: boots of one guest whose kernel may crash before the plan begins (see boot)
BOOTS = 2


def boot(
    machine: Machine,
    work: Path,
    timeout_s: float,
    per_run_s: float | None = None,
    say: Callable[[str], None] | None = None,
) -> tuple[str, str, str]:
    """Run the guest to its poweroff: (accelerator, why not KVM, results text). A run of the
    plan that goes on for longer than ``per_run_s`` stops it as the whole deadline does.

    A kernel that crashes before the plan begins is booted once more (``say`` tells why):
    under TCG, Debian's 7.2 sometimes dies of an unclaimed int3 in the static key patched
    when sched_clock is marked stable (about 1 boot in 8 on a busy host, never twice in a
    row here), which no run of the plan could have caused. A kernel that crashes on every
    boot still ends in the second crash, named by the caller."""
    console, results = work / "console.log", work / "results.log"
    why_not_kvm = kvm_unusable()
    accels = (["kvm"] if not why_not_kvm else []) + ["tcg"] * BOOTS
    for n, accel in enumerate(accels):
        for log in (console, results):
            log.write_text("")
        argv = machine.argv(accel, [f"file:{console}", f"file:{results}"])
        start = time.monotonic()
        watch = RunWatch(results, per_run_s)
        try:
            proc = run_child(argv, timeout_s, watch.alive if per_run_s else None)
        except FileNotFoundError:
            raise VmError("qemu-system-x86_64 not found: apt-get install qemu-system-x86") from None
        except subprocess.TimeoutExpired:
            waited = watch.stuck_s if watch.stuck_s is not None else timeout_s
            raise GuestTimeout(
                f"the guest ({accel}) did not finish in {waited:.0f} s; its "
                f"console log is kept at {console}",
                results.read_text(errors="replace"),
                waited,
                accel,
            ) from None
        check()  # a stopping signal ended QEMU: what it wrote means nothing
        err = proc.stderr
        text = results.read_text(errors="replace")
        if accel == "kvm" and "@@UNAME" not in text:
            first = (err.strip().splitlines() or [f"exit {proc.returncode}"])[0]
            why_not_kvm = f"KVM failed after {time.monotonic() - start:.1f} s ({first})"
            continue
        if proc.returncode != 0 and "@@DONE" not in text:
            first = (err.strip().splitlines() or [f"exit {proc.returncode}"])[0]
            raise VmError(f"qemu ({accel}) failed: {first}; console log at {console}")
        trouble = "" if "@@UNAME" in text else kernel_trouble(console.read_text(errors="replace"))
        if trouble and n + 1 < len(accels):
            kept = console.with_name("console.boot-crash.log")
            console.replace(kept)
            if say is not None:
                say(f"the guest kernel crashed before its plan began ({trouble}); booting it "
                    f"once more (that console log: {kept})")  # fmt: skip
            continue
        return accel, why_not_kvm, text
    raise VmError("unreachable")
