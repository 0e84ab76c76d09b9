"""Latency percentiles from the engine's histogram, computed as fio computes its own.

The hot loop cannot keep every latency of a long run (16 jobs at 500k IOPS for 10 s would be
80 million values), so, like fio, it counts them in a log-linear histogram: 64 buckets per
power of two, so a percentile is within about 1.6% of the exact value.
"""

from __future__ import annotations

import numpy as np

#: fio's FIO_IO_U_PLAT_BITS and FIO_IO_U_PLAT_VAL
BITS = 6
VAL = 1 << BITS


def bucket_value(index: int) -> int:
    """The value a bucket stands for: exact below 2 * VAL, else the middle of its range,
    truncated to whole ns as fio's unsigned result is."""
    if index < (VAL << 1):
        return index
    error_bits = (index >> BITS) - 1
    base = 1 << (error_bits + BITS)
    return int(base + (index % VAL + 0.5) * (1 << error_bits))


def percentiles(hist: np.ndarray, wanted: tuple[float, ...]) -> list[int]:
    """fio's rule: the first bucket where the running count reaches p% of all samples."""
    total = int(hist.sum())
    if total == 0:
        return [0 for _ in wanted]
    cumulative = np.cumsum(hist)
    out = []
    for p in wanted:
        index = int(np.searchsorted(cumulative, p / 100.0 * total, side="left"))
        out.append(bucket_value(min(index, len(hist) - 1)))
    return out
