"""The userspace completion engine: every completion method completing real I/Os on a stock
kernel with io_uring (5.6+), its hot loop compiled (``_engine.c``) and its decisions those of
dpas.policy, bit for bit (``policy_core.c`` is the compiled copy; a differential test and a
replay of every logged run prove it).

    from dpas.engine import EngineRun, run
    result = run(EngineRun(Path("/dev/nvme0n1"), "PAS", region_bytes=1 << 30, cpus=(0,)))
    print(result.iops, result.cpu_pct, result.lat_percentiles_us())

A workload (dpas.workload) runs as ``EngineRun(...).with_workload(workload, online)``: each
job its group's I/O, CPUs, offsets and pattern in time (``JobSpec``); dpas.engine.record's
``workload_record`` makes its record.
"""

from dpas.engine.run import (
    KERNEL_WAITS,
    MODES,
    CpuState,
    EngineError,
    EngineRefused,
    EngineResult,
    EngineRun,
    JobResult,
    JobSpec,
    run,
)

__all__ = [
    "KERNEL_WAITS",
    "MODES",
    "CpuState",
    "EngineError",
    "EngineRefused",
    "EngineResult",
    "EngineRun",
    "JobResult",
    "JobSpec",
    "run",
]
