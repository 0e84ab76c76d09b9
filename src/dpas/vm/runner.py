"""dpas vm bench: the real-run sweep, executed in a throw-away QEMU guest (``VmBackend``)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from dpas.bench.backend import Interrupted, Measuring, Outcome, Sweep
from dpas.errors import DpasError
from dpas.real.decisions import summary as decision_summary
from dpas.real.stop import stopped, stopping
from dpas.results import RunResult
from dpas.vm import initramfs
from dpas.vm.fixes import unfixed
from dpas.vm.guest import (
    GuestEnded,
    GuestResult,
    GuestRun,
    GuestTimeout,
    Machine,
    boot,
    ended_early,
    kernel_trouble,
    kvm_usable,
    plan_script,
    read_results,
)
from dpas.vm.kernel import GuestKernel, VmError
from dpas.vm.kernels import parse_kernel, resolve_kernel
from dpas.vm.python import GuestPython, guest_python

BOOT_S = 60  # booting under TCG, with margin...
BOOT_S_PER_MB = 1.0  # ...plus unpacking the initramfs (90 MB, 235 MB with the guest's Python)
PER_RUN_S = 20  # fio's start and end in a TCG guest, beyond its runtime
DUMP_BEFORE_S = 6  # a run that has not ended this long before its deadline dumps blocked tasks
DOCTOR_S = 120  # the doctor's timer table and 2 s interrupt probe, under TCG


def default_cache() -> Path:
    return Path.home() / ".cache" / "dpas" / "vm"


@dataclass(frozen=True, slots=True)
class VmConfig:
    run: GuestRun
    kernel: str | Path | None = "debian"  # a --kernel spec (dpas.vm.kernels); None: debian
    modules: Path | None = None
    cache: Path = field(default_factory=default_cache)
    drive_gib: int = 1
    patches: tuple[Path, ...] = ()  # --patch, for a build:VERSION kernel
    fixes: tuple[str, ...] = ()  # --fix, for a build:DIR of the artifact (dpas.vm.fixes)
    progress: Callable[[str], None] | None = field(default=None, compare=False)
    #: who completes the I/Os in the guest: "fio", or "dpas" (the engine)
    engine: str = "fio"
    #: the engine's per-I/O logs, brought back from the guest (None: none kept)
    log_dir: Path | None = None
    #: after a crash or a hang, a fresh guest goes on with the runs left
    keep_going: bool = False
    #: the DPAS series' kernel: PAS and DPAS runs traced and replayed (dpas.real.decisions)
    replay: bool = True

    @property
    def spec(self) -> str:
        """The --kernel spec (dpas.vm.kernels)."""
        return "debian" if self.kernel is None else str(self.kernel)


@dataclass(slots=True)
class VmBench(Measuring):
    """What the guest's sweep measured, and what the guest was."""

    accelerator: str = ""
    why_not_kvm: str = ""
    seconds: float = 0.0
    hybrid_iopoll: str = ""
    #: --keep-going: each crash or hang a fresh guest went on after (ended_early's line)
    crashed: list[str] = field(default_factory=list)
    #: the drive's DPAS knobs before and after the (last guest's) sweep: the same, or a bug
    knobs: dict[str, dict[str, str]] = field(default_factory=dict)


def _guest_kernel(config: VmConfig) -> GuestKernel:
    kernel = resolve_kernel(
        config.spec,
        config.modules,
        config.patches,
        config.cache / "kernels",
        config.progress,
        config.fixes,
    )
    for line in dpas_kernel_warnings(config, kernel.release):
        if config.progress is not None:
            config.progress(line)
    return kernel


def dpas_kernel_warnings(config: VmConfig, release: str) -> list[str]:
    """What dpas can tell, before booting, of a DPAS kernel that will crash: the bugs a
    build:DIR holds that --fix does not fix, or the lab's own 5.18 DPAS kernel (built from
    the same code) in a guest smaller than the 8 vCPUs it survives."""
    parsed = parse_kernel(config.spec, config.modules, config.patches, config.fixes)
    small = config.run.cpus < DPAS_518_SAFE_CPUS
    if parsed.kind == "build" and parsed.path is not None:
        return [
            f"warning: {parsed.path} holds a DPAS bug --fix {fix.name} fixes: it {fix.symptom} "
            "(docs/vm.md; --fix all fixes every one)"
            for fix in unfixed(parsed.path.expanduser())
            if fix.name not in config.fixes and (fix.name != "alloc" or small)
        ]
    if small and parsed.kind in ("deb", "image") and re.match(r"5\.18\..*dpas", release):
        return [
            f"warning: {release} looks like the lab's DPAS kernel, built from the artifact's "
            f"code, whose per-CPU allocation panics guests of fewer than {DPAS_518_SAFE_CPUS} "
            f"vCPUs (docs/vm.md): --cpus {DPAS_518_SAFE_CPUS}, or build its tree with "
            "--kernel build:DIR --fix all"
        ]
    return []


#: vCPUs with which the artifact's unfixed DPAS 5.18 kernel was seen to boot (2 and 4 panic)
DPAS_518_SAFE_CPUS = 8


def _machine(
    config: VmConfig,
    kernel: GuestKernel,
    name: str,
    plan: str | None,
    python: GuestPython | None = None,
) -> tuple[Path, Machine]:
    """A fresh work folder with the guest's initramfs and its sparse NVMe drive."""
    work = config.cache / name
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    drive = work / "nvm.img"
    with drive.open("wb") as f:
        f.truncate(config.drive_gib << 30)  # sparse: reads return zeros, nothing is stored
    initrd = initramfs.build(kernel, work / "initrd.cpio", plan, python=python)
    return work, Machine(kernel.image, initrd, drive, config.run.cpus, config.run.memory)


def _run_guest(
    config: VmConfig,
    kernel: GuestKernel,
    name: str,
    script: str,
    python: GuestPython | None,
    work_s: float,
    per_run_s: float | None = None,
) -> tuple[str, str, str]:
    """Boot with ``script`` as the plan; (what it printed, accelerator, why not KVM). A run
    of the plan longer than ``per_run_s`` stops the guest there (GuestTimeout)."""
    work, machine = _machine(config, kernel, name, script, python)
    initrd_mb = machine.initrd.stat().st_size / 1e6
    deadline = BOOT_S + BOOT_S_PER_MB * initrd_mb + work_s
    accel, why, text = boot(machine, work, deadline, per_run_s, config.progress)
    no_nvme = re.search(r"^@@NO_NVME (\w+)", text, re.M)  # init's marker: no drive in 20 s
    if no_nvme and no_nvme[1] == "missing":
        raise VmError(
            f"the guest kernel {kernel.release} has no NVMe driver (no nvme module and "
            f"/sys/block/nvme0n1 never appeared); console log at {work / 'console.log'}"
        )
    if no_nvme:
        raise VmError(
            f"the guest's nvme driver is there but /sys/block/nvme0n1 never appeared; "
            f"console log at {work / 'console.log'}"
        )
    return text, accel, why


def vm_bench(config: VmConfig, sweep: Sweep) -> VmBench:
    """Boot, run the sweep in the guest (by fio or the engine, ``config.engine``), power off;
    a stopping signal ends QEMU and this raises Stopped. A guest that ends before its plan
    does raises GuestEnded with what it finished (a VmBench)."""
    with stopping():
        try:
            return _vm_bench(config, sweep)
        except DpasError as err:
            raise stopped() or err from None


#: the in-guest runner's start (Python under TCG) and its d_init probe
GUEST_START_S = 60
#: settling a DPAS CPU (dpas.real.settle) before a polled run: allowed per run, on average
SETTLE_S = 30


def guest_spec(config: VmConfig, sweep: Sweep) -> dict[str, Any]:
    """What dpas.vm.inguest bench runs: the sweep, who completes the I/Os, the seams."""
    run = config.run
    return {
        "sweep": sweep.record(),
        "engine": config.engine,
        "ioengine": run.ioengine,
        "log": config.log_dir is not None,
        "replay": config.replay,
        "crash_after": run.crash_after,
        "hang_after": run.hang_after,
        # the blocked tasks dumped a little before the host's own deadline for the run
        "dump_after_s": sweep.runtime_s + PER_RUN_S - DUMP_BEFORE_S,
    }


def _vm_bench(config: VmConfig, sweep: Sweep) -> VmBench:
    start = time.monotonic()
    kernel = _guest_kernel(config)
    python = guest_python()
    out = VmBench()
    skip: set[tuple[str, int, int]] = set()  # runs finished, or crashed in, by earlier guests
    while True:
        result, accel, why, timed_out = _guest_sweep(config, kernel, python, sweep, skip)
        _take(out, result, accel, why, config, after=out.crashed[-1:])
        out.seconds = time.monotonic() - start
        if result.error:
            raise GuestEnded(f"the sweep in the guest stopped: {result.error}", out)
        if result.complete:
            break
        console = config.cache / "run" / "console.log"
        if config.keep_going:  # the next guest overwrites it
            console = console.replace(
                console.with_name(f"console.crash-{len(out.crashed) + 1}.log")
            )
        ended = ended_early(result, console, timed_out, kernel.system_map)
        progress = bool(result.records) or result.running_run is not None
        skip |= {(r["mode"], r["jobs"], r["repeat"]) for r in result.records}
        if result.running_run is not None:
            skip.add(result.running_run)
        left = [r for r in sweep.runs() if (r[0].value, r[1], r[2]) not in skip
                and r[0].value not in out.refused]  # fmt: skip
        if not config.keep_going or not progress:
            raise GuestEnded(ended, out)
        out.crashed.append(ended)
        if config.progress is not None:
            config.progress(f"{ended}; --keep-going: a fresh guest for the {len(left)} run(s) left")
        if not left:
            break
        if sweep.d_init_ns is None and out.d_init_ns:  # the same d_init in every guest
            sweep = replace(sweep, d_init_ns=out.d_init_ns)
    if not out.records and not out.refused:
        raise VmError("the guest ran no mode")
    return out


def _guest_sweep(
    config: VmConfig,
    kernel: GuestKernel,
    python: GuestPython,
    sweep: Sweep,
    skip: set[tuple[str, int, int]],
) -> tuple[GuestResult, str, str, float | None]:
    """One guest's go at the sweep, leaving out ``skip``: (what it streamed back, accelerator,
    why not KVM, the seconds after which it was stopped, or None)."""
    spec = {**guest_spec(config, sweep), "skip": sorted(skip)}
    per_run = sweep.runtime_s + PER_RUN_S
    engines = len(config.engine.split(","))
    work_s = GUEST_START_S + engines * len(sweep.runs()) * (per_run + SETTLE_S)
    try:
        text, accel, why = _run_guest(
            config, kernel, "run", plan_script(spec, python), python, work_s, per_run
        )
        timed_out = None
    except GuestTimeout as late:  # what the guest finished before it stopped answering
        text, accel, why, timed_out = late.text, late.accel, "", late.seconds
        if "@@UNAME" not in text:
            raise
    return read_results(text), accel, why, timed_out


def _take(
    out: VmBench, result: GuestResult, accel: str, why: str, config: VmConfig, after: list[str]
) -> None:
    """One guest's runs into ``out``; ``after``: the crash the guest came after, noted in its
    first record."""
    out.refused.update(result.refused)
    out.kernel = out.kernel or result.kernel
    out.accelerator, out.why_not_kvm = accel, why
    out.d_init_ns = out.d_init_ns or result.d_init_ns
    out.hybrid_iopoll = result.hybrid_iopoll
    out.knobs = result.knobs or out.knobs
    logs = _save_logs(result.logs, config.log_dir)
    for i, raw in enumerate(result.records):
        record = _host_record(raw, accel, result.hybrid_iopoll, logs)
        if i == 0 and after:
            note = f"in a fresh guest after: {after[0].split('; console log')[0]}"
            record = replace(record, note=f"{record.note}; {note}")
        out.records.append(record)
    out.records = [r for r in out.records if r.mode not in out.refused]
    out.fio_version = out.fio_version or next(
        (r.fio_version for r in out.records if r.fio_version), ""
    )


def knobs_line(knobs: dict[str, dict[str, str]]) -> str | None:
    """Whether the guest's sweep left the drive's DPAS knobs as it found them."""
    before, after = knobs.get("before"), knobs.get("after") or {}
    if not before:
        return None
    if before == after:
        return f"the drive's {len(before)} DPAS knobs: as found after the sweep"
    changed = [f"{k} {v} -> {after.get(k)}" for k, v in before.items() if after.get(k) != v]
    return f"the drive's DPAS knobs were NOT restored: {', '.join(changed)}"


def _host_record(raw: dict[str, Any], accel: str, hybrid: str, logs: dict[str, str]) -> RunResult:
    """A record the guest made, as the host keeps it: fio's runs are the qemu backend's,
    the accelerator in the note, the log where the host saved it."""
    raw = dict(raw)
    raw["timeline"] = [tuple(t) for t in raw["timeline"]] if raw.get("timeline") else None
    if raw.get("backend") == "fio":
        raw["backend"] = "qemu"
    raw["note"] = "; ".join(filter(None, (raw.get("note"), f"guest under {accel}")))
    raw["hybrid_iopoll"] = hybrid
    raw["log"] = logs.get(Path(raw["log"]).name) if raw.get("log") else None
    return RunResult(**raw)


def _save_logs(logs: dict[str, bytes], folder: Path | None) -> dict[str, str]:
    """The guest's per-I/O logs written under ``folder``: name -> host path."""
    saved = {}
    for name, data in logs.items():
        if folder is None or not re.fullmatch(r"[A-Z]+-x\d+-r\d+\.npy", name):
            continue
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
        saved[name] = str(folder / name)
    return saved


@dataclass(frozen=True, slots=True)
class VmBackend:
    """``dpas vm bench``: the sweep in a throw-away QEMU guest on its polled NVMe drive.
    ``config`` is the guest (kernel, modules, patches, cache; ``config.run``: vCPUs, memory);
    the sweep's ``cpus`` is the jobs' pinning in the guest."""

    config: VmConfig
    name = "qemu"

    def run(self, sweep: Sweep, done: Callable[[str], None]) -> Outcome:
        """The guest runs the whole sweep in one boot: ``done`` is called for each record
        after. What it finished before a crash or a hang is kept (Interrupted)."""
        try:
            bench = vm_bench(self.config, sweep)
        except GuestEnded as ended:  # keep what the guest finished, then say why
            if not isinstance(ended.partial, VmBench) or not ended.partial.records:
                raise
            raise Interrupted(ended, self._outcome(sweep, ended.partial)) from None
        return self._outcome(sweep, bench, done)

    def _outcome(
        self, sweep: Sweep, bench: VmBench, done: Callable[[str], None] = lambda _: None
    ) -> Outcome:
        """The backend's Outcome of what the guest reported."""
        shape = self.config.run
        for r in bench.records:
            done(f"{r.mode} x{r.jobs}")
        accel = bench.accelerator.upper() + (f" ({bench.why_not_kvm})" if bench.why_not_kvm else "")
        notes = sorted({r.note.split(";")[0] for r in bench.records if r.note})
        header = [
            f"guest kernel {bench.kernel} (io_uring HYBRID_IOPOLL {bench.hybrid_iopoll}) under "
            f"{accel}, {shape.cpus} vCPUs, {shape.memory}, NVMe with poll_queues=2; "
            f"{sweep.runtime_s:g} s per run; finished in {bench.seconds:.0f} s",
            *notes,
            *(f"--keep-going, a fresh guest after: {line}" for line in bench.crashed),
            *filter(None, (decision_summary(bench.records), knobs_line(bench.knobs))),
            "irqs: the guest's NVMe interrupts during the run, on the I/O queues of the run's "
            "CPUs (0 = every completion was polled)",
        ]
        return bench.outcome(
            context={
                "kernel": bench.kernel,
                "accelerator": bench.accelerator,
                "why_not_kvm": bench.why_not_kvm,
                "hybrid_iopoll": bench.hybrid_iopoll,
                "fio_version": bench.fio_version,
                "crashed": bench.crashed,
                "knobs": bench.knobs,
            },
            header=header,
            config={
                "kernel": self.config.spec,
                "vcpus": shape.cpus,
                "memory": shape.memory,
                "ioengine": shape.ioengine,
                "keep_going": self.config.keep_going,
            },
        )


def shell(config: VmConfig) -> int:
    """Boot the guest with a shell on this terminal; poweroff -f in it ends QEMU."""
    _, machine = _machine(config, _guest_kernel(config), "shell", None)
    for accel in (["kvm"] if kvm_usable() else []) + ["tcg"]:
        start = time.monotonic()
        code = subprocess.call(machine.argv(accel, ["mon:stdio"]))
        if accel == "kvm" and code != 0 and time.monotonic() - start < 10:
            print("dpas: KVM failed at once; booting under TCG")
            continue
        return code
    return 1


def _in_guest(
    config: VmConfig,
    name: str,
    line: Callable[[GuestPython], str],
    work_s: float,
    timeout_ok: bool = False,
) -> tuple[str, str, str, GuestKernel]:
    """The plan's ``line`` (made for the guest's Python) in a guest of its own: (what the
    guest printed, accelerator, why not KVM, the kernel). With ``timeout_ok`` a guest that
    does not finish gives what it printed. A stopping signal ends QEMU and raises Stopped."""
    with stopping():
        try:
            kernel = _guest_kernel(config)
            python = guest_python()
            script = f'echo "@@UNAME $(uname -r)"\n{line(python)}\necho "@@DONE"\n'
            try:
                text, accel, why = _run_guest(config, kernel, name, script, python, work_s)
            except GuestTimeout as late:
                if not timeout_ok:
                    raise
                text, accel, why = late.text, late.accel, ""
        except DpasError as err:
            raise stopped() or err from None
    return text, accel, why, kernel


def vm_stress(config: VmConfig, seconds: float, seed: int) -> dict[str, Any]:
    """dpas.vm.stress in the guest: its DPAS knobs written at random for ``seconds`` while fio
    polls. Returns what the guest did, the kernel's trouble from the console ("" if none) and
    the last knob writes before the end (the ones to suspect when there is trouble)."""

    def line(python: GuestPython) -> str:  # it prints its @@KNOB lines and @@STRESS itself
        return python.command("stress", f"{seconds:g}", str(seed))

    text, accel, _, kernel = _in_guest(config, "stress", line, seconds + 60, timeout_ok=True)
    console = config.cache / "stress" / "console.log"
    found = re.search(r"^@@STRESS (.*)$", text, re.M)
    uname = re.search(r"^@@UNAME (\S+)", text, re.M)
    return {
        "kernel": uname[1] if uname else kernel.release,
        "accelerator": accel,
        "stress": json.loads(found[1]) if found else None,
        "trouble": kernel_trouble(console.read_text(errors="replace"), kernel.system_map),
        "last_writes": re.findall(r"^@@KNOB (.*)$", text, re.M)[-10:],
        "console": str(console),
    }


def _marked_json(text: str, tag: str, missing: str, config: VmConfig) -> dict[str, Any]:
    """The JSON object the guest printed after ``@@TAG``; without one, a VmError pointing at
    the console log (the guest's run folder is the tag in lower case)."""
    found = re.search(rf"^@@{tag} (.*)$", text, re.M)
    try:
        answer = json.loads(found[1]) if found else None
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        raise VmError(f"{missing}; console log at {config.cache / tag.lower()}")
    return answer


def vm_doctor(config: VmConfig, devices: tuple[str, ...]) -> dict[str, Any]:
    """``dpas doctor`` inside the guest, against its NVMe drive by default: its records, with
    the guest's kernel and accelerator. A stopping signal ends QEMU and raises Stopped."""

    def line(python: GuestPython) -> str:
        return f'echo "@@DOCTOR $({python.command("doctor", *(devices or ("nvme0n1",)))})"'

    text, accel, why, kernel = _in_guest(config, "doctor", line, DOCTOR_S)
    record = _marked_json(text, "DOCTOR", "the guest's doctor printed no record", config)
    uname = re.search(r"^@@UNAME (\S+)", text, re.M)
    record["guest"] = {
        "kernel": uname[1] if uname else kernel.release,
        "accelerator": accel,
        "why_not_kvm": why,
    }
    return record
