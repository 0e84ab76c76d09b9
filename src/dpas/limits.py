"""What numbers dpas accepts, and the one check every parser applies where it reads them.

The ranges keep every run finite and every integer inside int64: a device time of more than
10 s per I/O, more than 4096 jobs or an hour of simulated time is a typing mistake, not an
experiment. The kernel's sysfs knobs take what ``kstrtoint``/``kstrtouint`` take.
"""

from __future__ import annotations

import math

from dpas.errors import LimitError

#: one I/O's device time, in µs (10 s)
MAX_IO_US = 10_000_000.0
#: fio numjobs and job-count lists
MAX_JOBS = 4096
#: a block size (fio's bs with direct I/O): whole sectors of this many bytes...
BS_SECTOR = 512
#: ...up to this many (64 MiB)
MAX_BS = 64 << 20
#: bench.sh's repeat count
MAX_REPEATS = 1000
#: I/Os in one run or trace
MAX_IOS = 1_000_000_000
#: simulated seconds in one run
MAX_SIM_RUNTIME_S = 3600.0
#: seconds of one real fio run
MAX_REAL_RUNTIME_S = 86_400.0
#: the shortest run each backend can time, in seconds. The simulator: room for one I/O at
#: least (a device time is µs to ms). fio: dpas hands it --runtime in whole ms, and fio reads
#: 0 as "no limit" (a time_based run that never ends). The engine: its series bins and pacing
#: are in ms. Below these a run reports 0 IOPS or runs unbounded, so they are refused.
MIN_RUNTIME_S = {"sim": 0.001, "fio": 0.001, "engine": 0.001}
#: the longest: an hour simulated, a day of a real run
MAX_RUNTIME_S = {"sim": MAX_SIM_RUNTIME_S, "fio": MAX_REAL_RUNTIME_S, "engine": MAX_REAL_RUNTIME_S}


def runtime_range(*backends: str) -> tuple[float, float]:
    """Seconds a run may last on every one of ``backends`` ("sim", "fio", "engine"; none: any
    of them, for a runtime read before its backend is known, as a workload file's)."""
    names = backends or tuple(MIN_RUNTIME_S)
    return max(MIN_RUNTIME_S[b] for b in names), min(MAX_RUNTIME_S[b] for b in names)


#: what the kernel's int knobs (pas_d_init, switch_param*) accept: kstrtoint
INT_MAX = 2**31 - 1
#: what the kernel's u32 knobs (pas_d_init) accept: kstrtouint
U32_MAX = 2**32 - 1
#: seeds: numpy's SeedSequence takes any non-negative integer; keep them in 64 bits
MAX_SEED = 2**64 - 1


def checked(what: str, value: float, low: float, high: float, *, integer: bool = False) -> float:
    """``value`` if it is finite and in [low, high] (a whole number where ``integer``);
    otherwise a LimitError naming ``what`` and the accepted range."""
    kind = "a whole number" if integer else "a number"
    accepted = f"{kind} from {_show(low)} to {_show(high)}"
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise LimitError(f"{what} {value!r}: expected {accepted}") from None
    if not math.isfinite(number) or not low <= number <= high:
        raise LimitError(f"{what} {_show(value)}: expected {accepted}")
    if integer and (isinstance(value, float) and not value.is_integer()):
        raise LimitError(f"{what} {_show(value)}: expected {accepted}")
    return value


def _show(x: float) -> str:
    if isinstance(x, float) and x.is_integer() and abs(x) < 1e15:
        return str(int(x))
    return f"{x:g}" if isinstance(x, float) else str(x)
