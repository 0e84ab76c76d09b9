"""Device-latency traces: one device time (µs) per I/O, from files or built-in patterns.

Readers: one number per line (the lab pages' format), CSV with a named column, fio
``--write_lat_log`` logs, ``blkparse`` default text (D-to-C times), the shipped ``zssd`` trace,
and seeded patterns ``constant:US``, ``noisy:US:SD``, ``ramp:FROM:TO``, ``step:A:B:AT``,
``bimodal:A:B:P``, ``gaussian:MU:SD``.

Every device time, read from a file or made by a pattern, passes the one rule of
``device_time``: finite, at least 1 ns (the kernel model counts whole ns: a shorter time rounds
to no time, and an I/O that takes no time is not an I/O) and at most MAX_IO_US (10 s).
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

from dpas.emulate.ranges import MIN_IO_US, check
from dpas.errors import DpasError, LimitError
from dpas.limits import MAX_IO_US, MAX_IOS, checked

DEVICE_TIMES = f"{MIN_IO_US:g} to {MAX_IO_US:.0f} µs (1 ns to 10 s)"
BUILTIN = {"zssd": "zssd.csv"}
FORMATS = ("auto", "lines", "csv", "fio", "blkparse")

#: A decimal number in ASCII (str.isdigit and float() also take other scripts' digits and
#: underscores), or the words float() reads as not-a-number and infinity, so that those are
#: refused as device times rather than skipped as text.
_NUMBER = re.compile(
    r"[+-]?(?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|nan|inf|infinity)",
    re.IGNORECASE,
)


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


def device_time(value: float, where: str) -> float:
    """``value`` (µs) if it is a device time; otherwise a TraceError that starts with
    ``where`` (the file and line, or the pattern and its argument) and says what is accepted.

    The one rule for every device time, from a file, a pattern argument or a random draw.
    """
    try:
        return float(checked("device time", value, MIN_IO_US, MAX_IO_US))
    except LimitError:
        raise TraceError(
            f"{where} {_shown(value)} µs is not a device time: expected {DEVICE_TIMES}"
        ) from None


def _shown(value: float) -> str:
    """12 digits (blkparse's seconds leave noise beyond them), or every digit where those
    would round a refused value onto the bound it missed (0.00099999999 is no 0.001)."""
    short = f"{value:.12g}"
    inside = MIN_IO_US <= float(short) <= MAX_IO_US
    return repr(float(value)) if inside and not MIN_IO_US <= value <= MAX_IO_US else short


def device_times(values: np.ndarray, where: str) -> np.ndarray:
    """``values`` if every one is a device time; otherwise ``device_time``'s error for the
    first that is not, naming its I/O. For whole arrays (random draws, traces built in code)."""
    ok = np.isfinite(values) & (values >= MIN_IO_US) & (values <= MAX_IO_US)
    if not ok.all():
        first = int(np.argmin(ok))
        device_time(float(values[first]), f"{where}: I/O {first} =")
    return values


def _number(text: str) -> float | None:
    """``text`` as a float if it is an ASCII decimal number (or nan/inf), else None."""
    text = text.strip()
    return float(text) if _NUMBER.fullmatch(text) else None


def _checked(values: list[float], name: str) -> np.ndarray:
    if not values:
        raise TraceError(f"trace {name}: no device times found")
    return np.asarray(values, dtype=float)


def _latency(text: str, name: str, lineno: int, unit: str = "µs") -> float:
    """A device time in µs from a field in ``unit`` (µs or ns); anything else is an error
    naming the file and line."""
    value = _number(text)
    if value is None:
        raise TraceError(f"trace {name} line {lineno}: {text.strip()[:40]!r} is not a number")
    if unit == "ns":
        where = f"trace {name} line {lineno}: {text.strip()[:40]} ns ="
        return device_time(value / 1000.0, where)
    return device_time(value, f"trace {name} line {lineno}:")


def read_lines(lines: Iterable[str], name: str) -> np.ndarray:
    """The pages' format: one µs value per line; blank and non-numeric lines are skipped."""
    values = []
    for lineno, line in enumerate(lines, 1):
        if _number(line) is not None:
            values.append(_latency(line, name, lineno))
    return _checked(values, name)


def read_csv(lines: Iterable[str], name: str, column: str | None) -> np.ndarray:
    """CSV, with or without a header; ``column`` names the µs column (default: the only, or
    first, one)."""
    reader = csv.reader(lines)
    try:
        return _csv_values(reader, name, column)
    except csv.Error as err:
        raise TraceError(f"trace {name} line {reader.line_num}: not CSV ({err})") from None


def _csv_values(reader: Iterable[list[str]], name: str, column: str | None) -> np.ndarray:
    rows = enumerate(reader, 1)
    header: list[str] = []
    first = 0
    for lineno, row in rows:  # leading blank lines are not the header
        header, first = [h.strip() for h in row], lineno
        if "".join(header):
            break
    if not "".join(header):
        raise TraceError(f"trace {name}: empty CSV")
    values = []
    if column is None:
        index = 0
        if _number(header[0]) is not None:  # no header: "12.5,3" is the first I/O's row
            values.append(_latency(header[0], name, first))
    elif column in header:
        index = header.index(column)
    else:
        shown = ", ".join(header)[:200]
        raise TraceError(f"trace {name}: no column {column!r} (columns: {shown})")
    for lineno, row in rows:
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
        values.append(_latency(fields[1], name, lineno, unit="ns"))
    return _checked(values, name)


# "259,0    1        6     0.000010164   697  D   R 223490 + 8 [fio]"
_BLK_EVENT = re.compile(
    r"^\s*(?P<dev>\d+,\d+)\s+\d+\s+\d+\s+(?P<time>\d+\.\d+)\s+\d+\s+(?P<action>[A-Z]{1,2})\s+"
    r"(?P<rwbs>\S+)\s+(?P<rest>.*)$",
    re.ASCII,
)
_BLK_SECTOR = re.compile(r"^(?P<sector>\d+)\s*\+\s*\d+", re.ASCII)


def read_blkparse(lines: Iterable[str], name: str) -> np.ndarray:
    """blkparse default text: each C (complete) event matched to the D (issue) event of the
    same device and sector; the D-to-C time is the device time. Other lines are skipped.

    A C at the D's own time (or before it) is refused like any other time that is no
    device time: it is a broken trace, not an I/O that took no time."""
    issued: dict[tuple[str, str], tuple[float, int]] = {}
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
            issued[key] = (when, lineno)
        elif key in issued:
            start, d_line = issued.pop(key)
            where = f"trace {name} line {lineno}: D (line {d_line}) to C ="
            values.append(device_time((when - start) * 1e6, where))
    return _checked(values, name)


def _sniff(first: str) -> str:
    if _BLK_EVENT.match(first):
        return "blkparse"
    fields = [f.strip() for f in first.split(",")]
    if len(fields) >= 5 and all(re.fullmatch(r"-?[0-9]+", f) for f in fields):
        return "fio"
    if len(fields) > 1:
        return "csv"
    return "lines"


def read_text(
    text: str, name: str, fmt: str = "auto", column: str | None = None
) -> tuple[str, np.ndarray]:
    """The format ``text`` (a file's content) is read as, and its device times; ``name``
    names the file in errors."""
    if fmt not in FORMATS:
        raise TraceError(f"trace format {fmt!r}: expected one of {', '.join(FORMATS)}")
    if column is not None and fmt not in ("auto", "csv"):
        raise TraceError(f"--column {column}: applies to CSV traces, not --format {fmt}")
    lines = text.splitlines()
    if fmt == "auto":
        first = next((line for line in lines if line.strip()), "")
        fmt = "csv" if column is not None else _sniff(first)
    readers: dict[str, Callable[[], np.ndarray]] = {
        "lines": lambda: read_lines(lines, name),
        "csv": lambda: read_csv(lines, name, column),
        "fio": lambda: read_fio_log(lines, name),
        "blkparse": lambda: read_blkparse(lines, name),
    }
    return fmt, readers[fmt]()


def read_file(path: Path, fmt: str = "auto", column: str | None = None) -> Trace:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise TraceError(f"trace {path}: {err.strerror or err}") from None
    except UnicodeDecodeError:
        raise TraceError(f"trace {path}: not a UTF-8 text file") from None
    fmt, values = read_text(text, str(path), fmt, column)
    return Trace(path.name, f"{path} ({fmt})", values)


def builtin(name: str) -> Trace:
    """A trace shipped with dpas (``zssd``: a real drive's 4 KiB read device times)."""
    resource = resources.files("dpas.emulate") / "data" / BUILTIN[name]
    with resources.as_file(resource) as path:
        trace = read_file(path, "csv")
    return Trace(name, f"built-in {name}", trace.device_us)


@dataclass(frozen=True, slots=True)
class Arg:
    """One argument of a pattern: its name in the usage line, and what it is."""

    name: str
    #: us: a device time; sd: a spread in µs; p: a probability; count: a number of I/Os
    kind: str


PATTERNS: dict[str, tuple[Arg, ...]] = {
    "constant": (Arg("US", "us"),),
    "noisy": (Arg("US", "us"), Arg("SD", "sd")),
    "ramp": (Arg("FROM", "us"), Arg("TO", "us")),
    "step": (Arg("A", "us"), Arg("B", "us"), Arg("AT", "count")),
    "bimodal": (Arg("A", "us"), Arg("B", "us"), Arg("P", "p")),
    "gaussian": (Arg("MU", "us"), Arg("SD", "sd")),
}

#: What each kind of pattern argument accepts besides device times: (low, high, whole number)
ARG_RANGES = {"sd": (0.0, MAX_IO_US, False), "p": (0.0, 1.0, False), "count": (0, MAX_IOS, True)}


def _argument(spec: str, arg: Arg, value: float) -> float:
    """One checked argument: device times by the device-time rule, the rest by ARG_RANGES."""
    if arg.kind == "us":
        return device_time(value, f"trace {spec}: {arg.name} =")
    low, high, integer = ARG_RANGES[arg.kind]
    try:
        return float(checked(arg.name, value, low, high, integer=integer))
    except LimitError as err:
        raise TraceError(f"trace {spec}: {err}") from None


def _arguments(spec: str, kind: str) -> list[float]:
    args = PATTERNS[kind]
    parts = spec.split(":")[1:]
    usage = ":".join([kind, *(a.name for a in args)])
    if len(parts) != len(args):
        raise TraceError(f"trace {spec}: expected {usage}")
    values = []
    for arg, part in zip(args, parts, strict=True):
        value = _number(part)
        if value is None:
            raise TraceError(f"trace {spec}: expected numbers in {usage}")
        values.append(_argument(spec, arg, value))
    return values


def check_run(ios: int | None, seed: int) -> None:
    """The I/O count and seed of a run: whole numbers in range (numpy refuses a negative
    seed with a message that names neither)."""
    if ios is not None:
        check("ios", ios)
    check("seed", seed)


def pattern(spec: str, ios: int, seed: int) -> Trace:
    """A generated trace of ``ios`` I/Os; random patterns draw from ``seed``.

    noisy:US:SD is US plus uniform noise in [-SD, SD]; gaussian:MU:SD is normal; step:A:B:AT
    is A for the first AT I/Os, then B; bimodal:A:B:P is B with probability P, else A.
    Patterns refuse what files refuse: every time they make is a device time (a gaussian
    draw that is not one is refused with its I/O, not clipped).
    """
    check_run(ios, seed)
    kind = spec.split(":", 1)[0]
    if kind not in PATTERNS:
        raise TraceError(f"trace {spec}: unknown pattern (patterns: {', '.join(PATTERNS)})")
    args = _arguments(spec, kind)
    rng = np.random.default_rng(seed)
    n = ios
    if kind == "constant":
        values = np.full(n, args[0])
    elif kind == "noisy":
        device_time(args[0] - args[1], f"trace {spec}: US - SD =")
        device_time(args[0] + args[1], f"trace {spec}: US + SD =")
        values = args[0] + rng.uniform(-args[1], args[1], n)
    elif kind == "ramp":
        values = np.linspace(args[0], args[1], n)
    elif kind == "step":
        values = np.where(np.arange(n) < args[2], args[0], args[1]).astype(float)
    elif kind == "bimodal":
        values = np.where(rng.random(n) < args[2], args[1], args[0]).astype(float)
    else:
        values = rng.normal(args[0], args[1], n)
    values = device_times(values, f"trace {spec} (seed {seed})")
    return Trace(spec, f"pattern {spec}, seed {seed}", values)


#: The kernel's LHP learns in 100 ms windows: at QD 1 and tens of µs per I/O, it takes
#: thousands of I/Os before it sleeps at all, so the kernel model cycles short traces to this
#: many by default (the pages never cycle a trace). Patterns make this many by default.
DEFAULT_IOS = 20_000


def _is_file(spec: str) -> bool:
    """Whether ``spec`` names an existing path (a name the OS cannot take names none)."""
    try:
        return Path(spec).exists()
    except (OSError, ValueError):
        return False


def load(
    spec: str,
    ios: int | None = None,
    seed: int = 1,
    fmt: str = "auto",
    column: str | None = None,
    cycle: bool = True,
) -> Trace:
    """A trace named by ``spec``: a built-in name, a pattern, or a file path.

    Patterns make ``ios`` I/Os (DEFAULT_IOS without it). Files and built-ins are cut or cycled
    to ``ios``; without it they are kept whole, except that where ``cycle`` (the kernel
    model's windows need the I/Os) one shorter than DEFAULT_IOS is cycled to DEFAULT_IOS.
    """
    check_run(ios, seed)
    if spec in BUILTIN:
        trace = builtin(spec)
    elif spec.split(":", 1)[0] in PATTERNS and not _is_file(spec):
        return pattern(spec, ios or DEFAULT_IOS, seed)
    elif not _is_file(spec):
        raise TraceError(
            f"trace {spec[:200]}: no such file, built-in ({', '.join(BUILTIN)}) or pattern "
            f"({', '.join(PATTERNS)})"
        )
    else:
        trace = read_file(Path(spec), fmt, column)
    if ios is None:
        ios = max(len(trace), DEFAULT_IOS) if cycle else len(trace)
    return trace.cycled(ios)
