"""The spread of repeated runs: each cell's mean with its 95% confidence interval, and
Welch's t-test between two cells. The one home of these rules: bench's tables and
``dpas compare`` both read them.

The interval is Student's t: mean ± t(0.975, n-1) x s / sqrt(n), s the sample standard
deviation. scipy is not a dependency, so the t quantiles are a table (``T975``: df 1..30,
two-sided 95%, as printed in the NIST/SEMATECH e-Handbook of Statistical Methods, section
1.3.6.7.2, to four decimals), and beyond 30 degrees of freedom the normal's 1.96 (at most 4%
narrower than t's there). tests/test_compare.py checks the table by integrating t's density.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import fmean, stdev

#: t(0.975, df) for df = 1..30: the half-width of a 95% interval in standard errors
T975 = (
    12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281,
    2.2010, 2.1788, 2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860,
    2.0796, 2.0739, 2.0687, 2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423,
)  # fmt: skip
#: the normal's 97.5% quantile, used past the table
Z975 = 1.9600
#: fewer values than this on a side and ``dpas compare`` does not judge (pyperf judges one)
MIN_TO_TELL = 3


def t975(df: float) -> float:
    """t's two-sided 95% quantile for ``df`` degrees of freedom (at least 1). A fractional df
    (Welch's) is rounded down: the wider interval, never a bolder verdict."""
    whole = max(1, math.floor(df))
    return T975[whole - 1] if whole <= len(T975) else Z975


@dataclass(frozen=True, slots=True)
class Summary:
    """One cell over its repeats: how many, their mean and sample standard deviation (0 for
    one value), and the 95% interval's half-width (None with fewer than two values: one run
    says nothing of its spread)."""

    n: int
    mean: float
    sd: float
    half_width: float | None

    @classmethod
    def of(cls, values: Sequence[float]) -> Summary:
        if not values:
            raise ValueError("a summary needs at least one value")
        n = len(values)
        if n < 2:
            return cls(n, fmean(values), 0.0, None)
        sd = stdev(values)
        return cls(n, fmean(values), sd, t975(n - 1) * sd / math.sqrt(n))

    def shown(self, fmt: str) -> str:
        """The mean in ``fmt``, and ``±half-width`` where there is one."""
        mean = format(self.mean, fmt)
        return mean if self.half_width is None else f"{mean} ±{format(self.half_width, fmt)}"

    def record(self) -> dict[str, float | int | None]:
        return {"n": self.n, "mean": self.mean, "sd": self.sd, "half_width": self.half_width}


@dataclass(frozen=True, slots=True)
class Welch:
    """Welch's t-test of two cells' means (unequal variances): t, its degrees of freedom, and
    whether the means differ at 95% (|t| beyond t975(df))."""

    t: float
    df: float
    significant: bool

    @classmethod
    def of(cls, a: Summary, b: Summary) -> Welch:
        """Both sides need two values or more. With no spread on either side the means
        differ exactly when they are unequal (t infinite)."""
        if a.n < 2 or b.n < 2:
            raise ValueError("Welch's test needs two values or more a side")
        va, vb = a.sd**2 / a.n, b.sd**2 / b.n
        diff = b.mean - a.mean
        if va + vb == 0:
            df = float(a.n + b.n - 2)
            return cls(math.copysign(math.inf, diff) if diff else 0.0, df, diff != 0)
        t = diff / math.sqrt(va + vb)
        df = (va + vb) ** 2 / (va**2 / (a.n - 1) + vb**2 / (b.n - 1))
        return cls(t, df, abs(t) > t975(df))
