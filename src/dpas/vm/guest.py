"""One guest run: the plan as a shell script, QEMU under KVM or TCG, the results read back.

The guest cannot be asked questions while it runs, so the host writes the whole plan up
front, for both kinds of kernel (with and without the DPAS knobs); the guest picks the one
its queue matches. Results come back on the second serial port, away from kernel messages.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from dpas.policy import Method, Op, SwitchParams
from dpas.real import interrupts
from dpas.real.fio import FioError, FioJob, FioResult, failure, parse, pinned
from dpas.real.kernel import Kernel
from dpas.real.knobs import DPAS_KNOBS
from dpas.real.modes import ModePlan, Refused, plan_mode
from dpas.real.stop import check, run_child
from dpas.vm.kernel import VmError
from dpas.vm.python import GuestPython

QUEUE = "/sys/block/nvme0n1/queue"
DRIVE = Path("/dev/nvme0n1")
#: the names of the drive's I/O queue lines in the guest's /proc/interrupts
QUEUES = interrupts.io_queues(DRIVE.name)
#: what the guest's queue shows with nvme poll_queues=2, without and with the DPAS patch
STOCK_QUEUE = {"io_poll": "1", "io_poll_delay": "-1", "nomerges": "0"}
DPAS_QUEUE = {**STOCK_QUEUE, **dict.fromkeys(DPAS_KNOBS, "0")}


class KnownQueue:
    """A queue known in advance (the plan is written before the guest boots)."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values

    def has(self, name: str) -> bool:
        return name in self.values

    def read(self, name: str) -> str:
        return self.values[name]


@dataclass(frozen=True, slots=True)
class GuestRun:
    """The plan's parameters (bench.sh's sweep) and the guest's shape."""

    modes: tuple[Method, ...]
    rw: Op = Op.READ
    repeats: int = 1
    jobs: tuple[int, ...] = (1, 2, 4, 8, 16)
    pin: str = "0"
    runtime_s: float = 10.0
    bs: int = 4096
    d_init_ns: int = 4000
    switch: SwitchParams = field(default_factory=SwitchParams)
    cpus: int = 2
    memory: str = "1G"
    #: fio's engine for every mode instead of the kernel's (dpas bench --ioengine)
    ioengine: str | None = None
    #: a test's: the plan crashes the guest's kernel (sysrq c) after this many runs (0: never)
    crash_after: int = 0
    #: a test's: the run after this many never ends (0: none does)
    hang_after: int = 0


@dataclass(slots=True)
class GuestResult:
    kernel: str = ""
    variant: str = ""
    #: (plan, jobs, repeat, fio's result, interrupts: dpas.real.interrupts, None: uncounted)
    runs: list[tuple[ModePlan, int, int, FioResult, int | None]] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)
    #: io_uring_setup(IOPOLL | HYBRID_IOPOLL) in the guest: "accepted" or why not
    hybrid_iopoll: str = "not probed"
    #: the plan reached its end; if not, the run it was in ("PAS x2"), or None between runs
    complete: bool = True
    running: str | None = None
    #: why it stopped before the end of its plan (ended_early), "" if it did not
    ended: str = ""


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


def kernel_trouble(console: str) -> str:
    """What a console log says went wrong: the first oops, panic or hung-task line, with the
    faulting kernel instruction (RIP, symbol+offset where the kernel has its symbols) where
    one was printed; "" if none."""
    first = OOPS.search(console)
    if first is None:
        return ""
    rip = re.search(r"RIP: 0010:(\S+)", console[first.start() :])  # 0010: kernel code
    said = first[1].strip()
    return f"{said}; RIP {rip[1]}" if rip else said


def _variant(run: GuestRun, release: str, queue: dict[str, str]) -> tuple[str, dict[str, ModePlan]]:
    kernel = Kernel.parse(release)
    lines, plans = [], {}
    for mode in run.modes:
        try:
            plan = plan_mode(
                mode, kernel, KnownQueue(queue), run.d_init_ns, run.switch, run.ioengine, "nvme0n1"
            )
        except Refused as why:
            lines.append(f"echo {shlex.quote('@@REFUSED ' + mode.value + ' ' + str(why))}")
            continue
        plans[mode.value] = plan
        lines += [f"echo {shlex.quote(v)} > {QUEUE}/{k}" for k, v in plan.knobs.items()]
        for jobs in run.jobs:
            for repeat in range(1, run.repeats + 1):
                job = FioJob(
                    DRIVE, run.rw, run.bs, jobs, run.runtime_s, plan.ioengine, plan.hipri, run.pin
                )
                argv = job.argv("/usr/bin/fio", run.cpus)
                done = sum(line.startswith(("run ", "hang ")) for line in lines)
                if run.hang_after and done == run.hang_after:
                    lines.append(f"hang {mode.value}:{jobs}:{repeat}")
                else:
                    lines.append(f"run {mode.value}:{jobs}:{repeat} " + shlex.join(argv[1:]))
                if run.crash_after and done + 1 == run.crash_after:
                    lines.append("echo c > /proc/sysrq-trigger")
    return "\n    ".join(lines) or ":", plans


PLAN = """run() {{
    echo "@@BEGIN $1"; shift
    echo "@@IRQ"; cat /proc/interrupts
    /usr/bin/fio "$@" > /tmp/fio.json 2> /tmp/fio.err
    echo "@@IRQ"; cat /proc/interrupts
    echo "@@FIO"; cat /tmp/fio.json
    echo "@@ERR"; cat /tmp/fio.err
    echo "@@END"
}}
hang() {{
    echo "@@BEGIN $1"; sleep 100000
}}
echo "@@UNAME $(uname -r)"
echo "@@AFFINITY"; {affinity}
echo "@@HYBRID $({hybrid})"
if [ -e {queue}/pas_enabled ]; then
    echo "@@VARIANT dpas"
    {dpas}
else
    echo "@@VARIANT stock"
    {stock}
fi
echo "@@DONE"
"""


def plan_script(
    run: GuestRun, release: str, python: GuestPython | None = None
) -> tuple[str, dict[str, dict[str, ModePlan]]]:
    """The guest's script; with ``python`` it also asks the kernel about hybrid polling."""
    stock, stock_plans = _variant(run, release, STOCK_QUEUE)
    dpas, dpas_plans = _variant(run, release, DPAS_QUEUE)
    hybrid = python.command("hybrid") if python is not None else "echo"
    return (
        PLAN.format(
            queue=QUEUE, dpas=dpas, stock=stock, hybrid=hybrid, affinity=interrupts.AFFINITY_DUMP
        ),
        {"stock": stock_plans, "dpas": dpas_plans},
    )


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


def read_results(text: str, plans: dict[str, dict[str, ModePlan]], run: GuestRun) -> GuestResult:
    """The guest's transcript as results; each run's interrupts by dpas.real.interrupts, on
    the drive's I/O queues that serve the CPUs its jobs were pinned to (the IRQs' affinity
    dumped once, at the start of the plan)."""
    result = GuestResult()
    m = re.search(r"^@@AFFINITY$(.*?)^@@", text, re.M | re.S)
    listing = interrupts.affinity_listing(m[1] if m else "")
    m = re.search(r"^@@UNAME (\S+)", text, re.M)
    result.kernel = m[1] if m else ""
    m = re.search(r"^@@VARIANT (\w+)", text, re.M)
    result.variant = m[1] if m else "stock"
    m = re.search(r"^@@HYBRID (.+)$", text, re.M)
    result.hybrid_iopoll = hybrid_answer(m[1] if m else "")
    for line in re.findall(r"^@@REFUSED (.*)$", text, re.M):
        mode, _, why = line.partition(" ")
        result.refused[mode] = why
    for block in re.findall(r"^@@BEGIN (.*?)^@@END$", text, re.M | re.S):
        header, _, body = block.partition("\n")
        mode, jobs, repeat = header.strip().split(":")
        parts = re.split(r"^@@(IRQ|FIO|ERR)$", body, flags=re.M)
        sections = dict(zip(parts[1::2], parts[2::2], strict=False))
        irqs = [p for tag, p in zip(parts[1::2], parts[2::2], strict=False) if tag == "IRQ"]
        plan = plans[result.variant][mode]
        try:
            fio = parse(sections.get("FIO", ""), run.rw)
        except FioError as err:
            raise VmError(failure(f"{DRIVE} in the guest", sections.get("ERR", ""), err)) from None
        cpus = pinned(run.pin, int(jobs), run.cpus)
        before, after = [interrupts.parse(t) for t in irqs] if len(irqs) == 2 else [{}, {}]
        counted = interrupts.fired(before, after, QUEUES, cpus, listing.get)
        result.runs.append((plan, int(jobs), int(repeat), fio, counted))
    result.complete = "@@DONE" in text
    if not result.complete:
        begun = re.findall(r"^@@BEGIN (\S+)", text, re.M)
        ended = len(re.findall(r"^@@END$", text, re.M))
        if len(begun) > ended:
            mode, jobs, _ = begun[-1].split(":")
            result.running = f"{mode} x{jobs}"
    return result


def ended_early(result: GuestResult, console: Path, timed_out_s: float | None) -> str:
    """Why the guest stopped before the end of its plan, in one line: the run it was in, what
    the kernel said (an oops, a panic, a hung task), how many runs it finished, the log."""
    try:
        trouble = kernel_trouble(console.read_text(errors="replace"))
    except OSError:
        trouble = ""
    where = f" during {result.running}" if result.running else " between runs"
    said = f" ({trouble})" if trouble else ""
    if timed_out_s is not None and result.running:
        head = f"{result.running} did not finish in {timed_out_s:.0f} s{said}"
    elif timed_out_s is not None:
        head = f"the guest hung between runs: nothing more in {timed_out_s:.0f} s{said}"
    elif trouble:
        head = f"the guest kernel crashed{where}{said}"
    else:
        head = f"the guest stopped{where} before the end of its plan"
    runs = len(result.runs)
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


def boot(
    machine: Machine, work: Path, timeout_s: float, per_run_s: float | None = None
) -> tuple[str, str, str]:
    """Run the guest to its poweroff: (accelerator, why not KVM, results text). A run of the
    plan that goes on for longer than ``per_run_s`` stops it as the whole deadline does."""
    console, results = work / "console.log", work / "results.log"
    why_not_kvm = kvm_unusable()
    for accel in (["kvm"] if not why_not_kvm else []) + ["tcg"]:
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
        return accel, why_not_kvm, text
    raise VmError("unreachable")
