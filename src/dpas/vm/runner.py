"""dpas vm bench: the real-run sweep, executed in a throw-away QEMU guest (``VmBackend``)."""

from __future__ import annotations

import base64
import json
import re
import shlex
import shutil
import subprocess
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from dpas.bench.backend import Interrupted, Outcome, Sweep
from dpas.errors import DpasError
from dpas.policy import SLEEPERS, Method
from dpas.real.fio import record
from dpas.real.stop import stopped, stopping
from dpas.results import RunResult
from dpas.vm import initramfs
from dpas.vm.guest import (
    GuestEnded,
    GuestResult,
    GuestRun,
    GuestTimeout,
    Machine,
    boot,
    ended_early,
    hybrid_answer,
    kvm_usable,
    plan_script,
    read_results,
)
from dpas.vm.kernel import GuestKernel, VmError
from dpas.vm.kernels import resolve_kernel
from dpas.vm.python import GuestPython, guest_python

BOOT_S = 60  # booting under TCG, with margin...
BOOT_S_PER_MB = 1.0  # ...plus unpacking the initramfs (90 MB, 235 MB with the guest's Python)
PER_RUN_S = 20  # fio's start and end in a TCG guest, beyond its runtime
DOCTOR_S = 120  # the doctor's timer table and 2 s interrupt probe, under TCG


def default_cache() -> Path:
    return Path.home() / ".cache" / "dpas" / "vm"


@dataclass(frozen=True, slots=True)
class VmConfig:
    run: GuestRun
    kernel: str | Path | None = "debian"  # a --kernel spec (dpas.vm.kernels); None: debian
    modules: Path | None = None
    cache: Path = field(default_factory=default_cache)
    d_init_auto: bool = True
    drive_gib: int = 1
    patches: tuple[Path, ...] = ()  # --patch, for a build:VERSION kernel
    progress: Callable[[str], None] | None = field(default=None, compare=False)
    #: who completes the I/Os in the guest: "fio", or "dpas" (the engine)
    engine: str = "fio"
    #: the engine's per-I/O logs, brought back from the guest (None: none kept)
    log_dir: Path | None = None

    @property
    def spec(self) -> str:
        """The --kernel spec (dpas.vm.kernels)."""
        return "debian" if self.kernel is None else str(self.kernel)


@dataclass(slots=True)
class VmBench:
    records: list[RunResult] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)
    kernel: str = ""
    accelerator: str = ""
    why_not_kvm: str = ""
    d_init_ns: int = 0
    fio_version: str = ""
    seconds: float = 0.0
    hybrid_iopoll: str = ""


def _guest_kernel(config: VmConfig) -> GuestKernel:
    return resolve_kernel(
        config.spec, config.modules, config.patches, config.cache / "kernels", config.progress
    )


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


def _boot(
    config: VmConfig,
    kernel: GuestKernel,
    run: GuestRun,
    name: str,
    python: GuestPython | None = None,
) -> tuple[str, str, GuestResult]:
    script, plans = plan_script(run, kernel.release, python)
    runs = len(run.modes) * len(run.jobs) * run.repeats
    try:
        per_run = run.runtime_s + PER_RUN_S
        text, accel, why = _run_guest(config, kernel, name, script, python, runs * per_run, per_run)
        timed_out = None
    except GuestTimeout as late:  # what the guest finished before it stopped answering
        text, accel, why, timed_out = late.text, late.accel, "", late.seconds
        if "@@UNAME" not in text:
            raise
    result = read_results(text, plans, run)
    if not result.complete:
        result.ended = ended_early(result, config.cache / name / "console.log", timed_out)
    return accel, why, result


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
    accel, why, text = boot(machine, work, deadline, per_run_s)
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


def vm_bench(config: VmConfig) -> VmBench:
    """Boot, run, power off; a stopping signal ends QEMU and this raises Stopped."""
    with stopping():
        try:
            return _vm_bench(config)
        except DpasError as err:
            raise stopped() or err from None


#: the engine's guest: a home and a state folder for the lock and the knob journal
ENGINE_ENV = "HOME=/tmp XDG_STATE_HOME=/tmp/state"
#: the engine's d_init probe and Python's start in a TCG guest
ENGINE_START_S = 60


def vm_engine_bench(config: VmConfig, sweep: Sweep) -> VmBench:
    """The sweep by the engine in the guest (dpas.vm.inguest bench): one boot, the guest's own
    d_init probe, its records and logs read back. A stopping signal ends QEMU."""
    with stopping():
        try:
            return _vm_engine_bench(config, sweep)
        except DpasError as err:
            raise stopped() or err from None


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


def _vm_engine_bench(config: VmConfig, sweep: Sweep) -> VmBench:
    start = time.monotonic()
    kernel = _guest_kernel(config)
    python = guest_python()
    spec = json.dumps({"sweep": sweep.record(), "log": config.log_dir is not None})
    script = (
        'echo "@@UNAME $(uname -r)"\n'
        f'echo "@@HYBRID $({python.command("hybrid")})"\n'
        'echo -n "@@ENGINE "\n'
        f"{ENGINE_ENV} {python.command('bench', shlex.quote(spec))}\n"
        'echo ""\necho "@@DONE"\n'
    )
    runs = len(sweep.runs())
    work_s = ENGINE_START_S + runs * (sweep.runtime_s + PER_RUN_S)
    text, accel, why = _run_guest(config, kernel, "engine", script, python, work_s)
    answer = _marked_json(text, "ENGINE", "the engine in the guest printed no result", config)
    if "error" in answer:
        raise VmError(f"the engine in the guest: {answer['error']}")
    uname = re.search(r"^@@UNAME (\S+)", text, re.M)
    hybrid = re.search(r"^@@HYBRID (.+)$", text, re.M)
    out = VmBench(
        refused=answer["refused"],
        kernel=uname[1] if uname else kernel.release,
        accelerator=accel,
        why_not_kvm=why,
        d_init_ns=answer["d_init_ns"],
        fio_version="",
        hybrid_iopoll=hybrid_answer(hybrid[1] if hybrid else ""),
    )
    logs = _save_logs(answer["logs"], config.log_dir)
    for raw in answer["records"]:
        raw["timeline"] = [tuple(t) for t in raw["timeline"]] if raw["timeline"] else None
        raw["note"] = f"{raw['note']}; guest under {accel}"
        raw["hybrid_iopoll"] = out.hybrid_iopoll
        raw["log"] = logs.get(Path(raw["log"]).name) if raw["log"] else None
        out.records.append(RunResult(**raw))
    out.seconds = time.monotonic() - start
    return out


def _save_logs(logs: dict[str, str], folder: Path | None) -> dict[str, str]:
    """The guest's per-I/O logs written under ``folder``: name -> host path."""
    saved = {}
    for name, packed in logs.items():
        if folder is None or not re.fullmatch(r"[A-Z]+-x\d+-r\d+\.npy", name):
            continue
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(zlib.decompress(base64.b64decode(packed)))
        saved[name] = str(folder / name)
    return saved


def _vm_bench(config: VmConfig) -> VmBench:
    start = time.monotonic()
    kernel = _guest_kernel(config)
    run = config.run
    out = VmBench()
    if config.d_init_auto and any(m in SLEEPERS for m in run.modes):
        probe = replace(run, modes=(Method.INT,), jobs=(1,), repeats=1, runtime_s=1.0)
        _, _, first = _boot(config, kernel, probe, "probe")
        if not first.runs:
            raise GuestEnded(f"the d_init probe (INT x1) never finished: {first.ended}")
        run = replace(run, d_init_ns=max(round(first.runs[0][3].lat_mean_us * 100), 1))
    out.d_init_ns = run.d_init_ns
    accel, why, result = _boot(config, kernel, run, "run", guest_python())
    out.kernel, out.accelerator, out.why_not_kvm = result.kernel, accel, why
    out.hybrid_iopoll = result.hybrid_iopoll
    out.refused = result.refused
    try:
        version = subprocess.run(["fio", "--version"], capture_output=True, text=True).stdout
    except FileNotFoundError:
        version = ""
    out.fio_version = version.strip()
    for plan, jobs, repeat, fio, fired in result.runs:
        out.records.append(
            record(
                plan,
                jobs,
                repeat,
                run.rw,
                fio,
                run.d_init_ns,
                backend="qemu",
                kernel=result.kernel,
                device="QEMU NVMe (sparse file)",
                fio_version=out.fio_version,
                note=f"{plan.note}; guest under {accel}",
                interrupts=fired,
                hybrid_iopoll=result.hybrid_iopoll,
            )
        )
    out.seconds = time.monotonic() - start
    if result.ended:
        raise GuestEnded(result.ended, out)
    if not out.records and not out.refused:
        raise VmError("the guest ran no mode")
    return out


@dataclass(frozen=True, slots=True)
class VmBackend:
    """``dpas vm bench``: the sweep in a throw-away QEMU guest on its polled NVMe drive.
    ``config`` is the guest (kernel, modules, patches, cache; ``config.run``: vCPUs, memory);
    the sweep's ``cpus`` is fio's pinning in the guest."""

    config: VmConfig
    name = "qemu"

    def run(self, sweep: Sweep, done: Callable[[str], None]) -> Outcome:
        """The guest runs the whole plan at once: ``done`` is called for each record after."""
        shape = self.config.run
        run = replace(
            shape,
            modes=sweep.modes,
            rw=sweep.rw,
            repeats=sweep.repeats,
            jobs=sweep.jobs,
            pin=sweep.cpus,
            runtime_s=sweep.runtime_s,
            bs=sweep.bs,
            d_init_ns=sweep.d_init_ns or shape.d_init_ns,
            switch=sweep.switch,
        )
        if self.config.engine == "dpas":
            bench = vm_engine_bench(self.config, sweep)
        else:
            try:
                bench = vm_bench(replace(self.config, run=run, d_init_auto=sweep.d_init_ns is None))
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
            "irqs: the guest's NVMe interrupts during the run, on the I/O queues of the run's "
            "CPUs (0 = every completion was polled)",
        ]
        return Outcome(
            records=bench.records,
            refused=bench.refused,
            d_init_ns=bench.d_init_ns,
            context={
                "kernel": bench.kernel,
                "accelerator": bench.accelerator,
                "why_not_kvm": bench.why_not_kvm,
                "hybrid_iopoll": bench.hybrid_iopoll,
                "fio_version": bench.fio_version,
            },
            header=header,
            config={
                "kernel": self.config.spec,
                "vcpus": shape.cpus,
                "memory": shape.memory,
                "ioengine": shape.ioengine,
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


def vm_doctor(config: VmConfig, devices: tuple[str, ...]) -> dict[str, Any]:
    """``dpas doctor`` inside the guest, against its NVMe drive by default: its records, with
    the guest's kernel and accelerator. A stopping signal ends QEMU and raises Stopped."""
    with stopping():
        try:
            kernel = _guest_kernel(config)
            python = guest_python()
            script = (
                'echo "@@UNAME $(uname -r)"\n'
                f'echo "@@DOCTOR $({python.command("doctor", *(devices or ("nvme0n1",)))})"\n'
                'echo "@@DONE"\n'
            )
            text, accel, why = _run_guest(config, kernel, "doctor", script, python, DOCTOR_S)
        except DpasError as err:
            raise stopped() or err from None
    record = _marked_json(text, "DOCTOR", "the guest's doctor printed no record", config)
    uname = re.search(r"^@@UNAME (\S+)", text, re.M)
    record["guest"] = {
        "kernel": uname[1] if uname else kernel.release,
        "accelerator": accel,
        "why_not_kvm": why,
    }
    return record
