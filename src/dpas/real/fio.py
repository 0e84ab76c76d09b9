"""fio as a real process: the command line of a run, its failure in one line, its record
(its JSON output is read by dpas.machine.fio)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dpas.machine.fio import FioError
from dpas.policy import Op
from dpas.results import Measured, RunResult

if TYPE_CHECKING:
    from dpas.real.modes import ModePlan


@dataclass(frozen=True, slots=True)
class FioJob:
    """One fio run: bench.sh's job, numjobs threads at iodepth 1."""

    filename: Path
    rw: Op
    bs: int
    jobs: int
    runtime_s: float
    ioengine: str
    hipri: bool
    cpus: str  # "0", "split" or a cpus_allowed list
    size: int | None = None  # for a file: how many bytes of it to use
    #: fio's write_iolog of each job, one file a job (none: no iolog)
    iologs: tuple[Path, ...] = ()

    def argv(self, fio: str, online_cpus: int) -> list[str]:
        args = [
            fio,
            "--output-format=json",
            "--name=dpas",
            f"--filename={self.filename}",
            f"--rw={'randread' if self.rw is Op.READ else 'randwrite'}",
            f"--bs={self.bs}",
            "--direct=1",
            f"--ioengine={self.ioengine}",
            "--iodepth=1",
            f"--numjobs={self.jobs}",
            "--group_reporting",
            "--time_based",
            f"--runtime={round(self.runtime_s * 1000)}ms",  # fio reads "1.5s" as 1 s
            "--randrepeat=0",
            "--norandommap",
        ]
        if self.hipri:
            args.append("--hipri=1")
        if self.cpus == "0":
            args += ["--cpus_allowed=0", "--cpus_allowed_policy=shared"]
        elif self.cpus == "split":
            args += [f"--cpus_allowed=0-{online_cpus - 1}", "--cpus_allowed_policy=split"]
        else:
            args += [f"--cpus_allowed={self.cpus}", "--cpus_allowed_policy=split"]
        if self.size is not None:
            args.append(f"--size={self.size}")
        if self.rw is Op.READ:
            args.append("--readonly")  # fio's own guard: it refuses to write, lay out or trim
        if self.iologs:
            return self._logged(args)
        return args

    def _logged(self, args: list[str]) -> list[str]:
        """``args`` with each job's write_iolog. fio gives every clone of numjobs the one
        file, where their lines overwrite each other; so the job's options become global (before
        any --name) and each job is a section of its own with its own iolog: the same threads,
        numbered alike (cpus_allowed_policy=split counts them), reported as one group."""
        if len(self.iologs) != self.jobs:
            raise ValueError(f"{len(self.iologs)} iologs for {self.jobs} jobs")
        common = [a for a in args[1:] if a not in ("--name=dpas", f"--numjobs={self.jobs}")]
        sections = [f"--{o}" for path in self.iologs for o in ("name=dpas", f"write_iolog={path}")]
        return [args[0], *common, *sections]


def failure(target: object, stderr: str, err: FioError | None, exit_code: int = 0) -> str:
    """The one line a failed fio run gives, wherever it ran (here or in the guest): fio's own
    last words (its last stderr line), else what the parser found."""
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    said = lines[-1].strip()[:300] if lines else str(err) if err is not None else "no message"
    return f"fio failed on {target}{f' (exit {exit_code})' if exit_code else ''}: {said}"


def record(plan: ModePlan, result: Measured, d_init_ns: int, **where: Any) -> RunResult:
    """The RunResult of one fio run, with what ran where (backend, kernel, device, ...)."""
    return RunResult.from_measured(
        result,
        d_init_ns=d_init_ns,
        knobs=dict(plan.knobs),
        engine=f"{plan.ioengine}{' hipri' if plan.hipri else ''}",
        **where,
    )
