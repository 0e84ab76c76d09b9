"""Device-latency traces: one device time (µs) per I/O, from files or built-in patterns.

Readers: one number per line (the lab pages' format), CSV with a named column, fio
``--write_lat_log`` logs, ``blkparse`` default text (D-to-C times), the shipped ``zssd`` trace,
and seeded patterns ``constant:US``, ``noisy:US:SD``, ``ramp:FROM:TO``, ``step:A:B:AT``,
``bimodal:A:B:P``, ``gaussian:MU:SD``.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

#: Generated device times never go below this (µs): a device cannot answer in no time.
from dpas.errors import DpasError

MIN_DEVICE_US = 0.1
BUILTIN = {"zssd": "zssd.csv"}
FORMATS = ("auto", "lines", "csv", "fio", "blkparse")


class TraceError(DpasError, ValueError):
    """A trace that cannot be read; the message names the input and the line."""


@dataclass(frozen=True, slots=True)
class Trace:
    """Device times of consecutive I/Os, in µs."""

    name: str
    source: str
    device_us: np.ndarray

    def __len__(self) -> int:
        return len(self.device_us)

    def cycled(self, ios: int) -> Trace:
        """The first ``ios`` I/Os, repeating the trace from its start when it is shorter."""
        if ios == len(self):
            return self
        reps = math.ceil(ios / len(self))
        values = np.tile(self.device_us, reps)[:ios]
        return Trace(self.name, f"{self.source}, cycled to {ios} I/Os", values)


def _checked(values: list[float], name: str) -> np.ndarray:
    if not values:
        raise TraceError(f"trace {name}: no device times found")
    return np.asarray(values, dtype=float)


def _latency(text: str, name: str, lineno: int) -> float:
    """A device time in µs; anything else is an error naming the line."""
    try:
        value = float(text)
    except ValueError:
        raise TraceError(f"trace {name} line {lineno}: {text.strip()!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise TraceError(f"trace {name} line {lineno}: {value} is not a latency (expected >= 0 µs)")
    return value


def read_lines(lines: Iterable[str], name: str) -> np.ndarray:
    """The pages' format: one µs value per line; blank and non-numeric lines are skipped."""
    values = []
    for lineno, line in enumerate(lines, 1):
        text = line.strip()
        try:
            float(text)
        except ValueError:
            continue
        values.append(_latency(text, name, lineno))
    return _checked(values, name)


def read_csv(lines: Iterable[str], name: str, column: str | None) -> np.ndarray:
    """CSV with a header; ``column`` names the µs column (default: the only, or first, one)."""
    reader = csv.reader(lines)
    header = [h.strip() for h in next(reader, [])]
    if not header:
        raise TraceError(f"trace {name}: empty CSV")
    if column is None:
        index = 0
    elif column in header:
        index = header.index(column)
    else:
        raise TraceError(f"trace {name}: no column {column!r} (columns: {', '.join(header)})")
    values = []
    for lineno, row in enumerate(reader, 2):
        if not row or not "".join(row).strip():
            continue
        if index >= len(row):
            raise TraceError(f"trace {name} line {lineno}: no {header[index]!r} field")
        values.append(_latency(row[index], name, lineno))
    return _checked(values, name)


def read_fio_log(lines: Iterable[str], name: str) -> np.ndarray:
    """fio latency log: ``time_ms, value_ns, ddir, bs, offset[, prio]`` per line."""
    values = []
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        fields = [f.strip() for f in line.split(",")]
        if len(fields) < 5:
            raise TraceError(
                f"trace {name} line {lineno}: expected 'time, latency_ns, ddir, bs, offset'"
            )
        values.append(_latency(fields[1], name, lineno) / 1000.0)
    return _checked(values, name)


# "259,0    1        6     0.000010164   697  D   R 223490 + 8 [fio]"
_BLK_EVENT = re.compile(
    r"^\s*(?P<dev>\d+,\d+)\s+\d+\s+\d+\s+(?P<time>\d+\.\d+)\s+\d+\s+(?P<action>[A-Z]{1,2})\s+"
    r"(?P<rwbs>\S+)\s+(?P<rest>.*)$"
)
_BLK_SECTOR = re.compile(r"^(?P<sector>\d+)\s*\+\s*\d+")


def read_blkparse(lines: Iterable[str], name: str) -> np.ndarray:
    """blkparse default text: each C (complete) event matched to the D (issue) event of the
    same device and sector; the D-to-C time is the device time. Other lines are skipped."""
    issued: dict[tuple[str, str], float] = {}
    values = []
    for lineno, line in enumerate(lines, 1):
        m = _BLK_EVENT.match(line)
        if m is None or m["action"] not in ("D", "C"):
            continue
        sector = _BLK_SECTOR.match(m["rest"])
        if sector is None:
            continue  # e.g. a flush without a sector
        key = (m["dev"], sector["sector"])
        when = float(m["time"])
        if m["action"] == "D":
            issued[key] = when
        elif key in issued:
            start = issued.pop(key)
            if when < start:
                raise TraceError(f"trace {name} line {lineno}: completion before its issue")
            values.append((when - start) * 1e6)
    return _checked(values, name)


def _sniff(first: str) -> str:
    if _BLK_EVENT.match(first):
        return "blkparse"
    fields = [f.strip() for f in first.split(",")]
    if len(fields) >= 5 and all(re.fullmatch(r"-?\d+", f) for f in fields):
        return "fio"
    if len(fields) > 1:
        return "csv"
    return "lines"


def read_file(path: Path, fmt: str = "auto", column: str | None = None) -> Trace:
    try:
        text = path.read_text()
    except OSError as err:
        raise TraceError(f"trace {path}: {err.strerror or err}") from None
    except UnicodeDecodeError:
        raise TraceError(f"trace {path}: not a text file") from None
    lines = text.splitlines()
    if fmt == "auto":
        first = next((line for line in lines if line.strip()), "")
        fmt = "csv" if column is not None else _sniff(first)
    name = str(path)
    readers: dict[str, Callable[[], np.ndarray]] = {
        "lines": lambda: read_lines(lines, name),
        "csv": lambda: read_csv(lines, name, column),
        "fio": lambda: read_fio_log(lines, name),
        "blkparse": lambda: read_blkparse(lines, name),
    }
    if fmt not in readers:
        raise TraceError(f"trace format {fmt!r}: expected one of {', '.join(FORMATS)}")
    return Trace(path.name, f"{path} ({fmt})", readers[fmt]())


def builtin(name: str) -> Trace:
    """A trace shipped with dpas (``zssd``: a real drive's 4 KiB read device times)."""
    resource = resources.files("dpas.emulate") / "data" / BUILTIN[name]
    with resources.as_file(resource) as path:
        trace = read_file(path, "csv")
    return Trace(name, f"built-in {name}", trace.device_us)


def _numbers(spec: str, kind: str, names: tuple[str, ...]) -> list[float]:
    parts = spec.split(":")[1:]
    usage = f"{kind}:{':'.join(n.upper() for n in names)}"
    if len(parts) != len(names):
        raise TraceError(f"trace {spec!r}: expected {usage}")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise TraceError(f"trace {spec!r}: expected numbers in {usage}") from None
    if not all(math.isfinite(v) for v in values):
        raise TraceError(f"trace {spec!r}: expected finite numbers in {usage}")
    return values


PATTERNS = {
    "constant": ("us",),
    "noisy": ("us", "sd"),
    "ramp": ("from", "to"),
    "step": ("a", "b", "at"),
    "bimodal": ("a", "b", "p"),
    "gaussian": ("mu", "sd"),
}


def pattern(spec: str, ios: int, seed: int) -> Trace:
    """A generated trace of ``ios`` I/Os; random patterns draw from ``seed``.

    noisy:US:SD is US plus uniform noise in [-SD, SD]; gaussian:MU:SD is normal; step:A:B:AT
    is A for the first AT I/Os, then B; bimodal:A:B:P is B with probability P, else A.
    """
    kind = spec.split(":", 1)[0]
    if kind not in PATTERNS:
        raise TraceError(f"trace {spec!r}: unknown pattern (patterns: {', '.join(PATTERNS)})")
    args = _numbers(spec, kind, PATTERNS[kind])
    rng = np.random.default_rng(seed)
    n = ios
    if kind == "constant":
        values = np.full(n, args[0])
    elif kind == "noisy":
        values = args[0] + rng.uniform(-args[1], args[1], n)
    elif kind == "ramp":
        values = np.linspace(args[0], args[1], n)
    elif kind == "step":
        at = int(args[2])
        if at != args[2] or at < 0:
            raise TraceError(f"trace {spec!r}: AT must be a whole number of I/Os >= 0")
        values = np.where(np.arange(n) < at, args[0], args[1]).astype(float)
    elif kind == "bimodal":
        if not 0 <= args[2] <= 1:
            raise TraceError(f"trace {spec!r}: P must be a probability in [0, 1]")
        values = np.where(rng.random(n) < args[2], args[1], args[0]).astype(float)
    else:
        if args[1] < 0:
            raise TraceError(f"trace {spec!r}: SD must be >= 0")
        values = rng.normal(args[0], args[1], n)
    return Trace(spec, f"pattern {spec}, seed {seed}", np.maximum(values, MIN_DEVICE_US))


#: LHP learns in 100 ms windows: at QD 1 and tens of µs per I/O, it takes thousands of I/Os
#: before it sleeps at all, so short traces are cycled to this many by default.
DEFAULT_IOS = 20_000


def load(
    spec: str, ios: int | None = None, seed: int = 1, fmt: str = "auto", column: str | None = None
) -> Trace:
    """A trace named by ``spec``: a built-in name, a pattern, or a file path.

    Patterns make ``ios`` I/Os. Files and built-ins are cut or cycled to ``ios``; without it,
    one shorter than DEFAULT_IOS is cycled to DEFAULT_IOS, and a longer one is kept whole.
    """
    if ios is not None and ios <= 0:
        raise TraceError(f"--ios {ios}: expected a number of I/Os > 0")
    if spec in BUILTIN:
        trace = builtin(spec)
    elif spec.split(":", 1)[0] in PATTERNS and not Path(spec).exists():
        return pattern(spec, ios or DEFAULT_IOS, seed)
    elif not Path(spec).exists():
        raise TraceError(
            f"trace {spec}: no such file, built-in ({', '.join(BUILTIN)}) or pattern "
            f"({', '.join(PATTERNS)})"
        )
    else:
        trace = read_file(Path(spec), fmt, column)
    return trace.cycled(max(len(trace), DEFAULT_IOS) if ios is None else ios)
