"""Every parser of user input, fuzzed: only DpasError may escape, and what parses is sound.

A DpasError is what the command line prints as one line with exit code 2; any other exception
would be a traceback. Strategies make near-valid input (the right shape with numbers that are
NaN, infinite, huge, negative or zero, and other scripts' digits) as well as arbitrary text,
so that the range checks run, not only the syntax checks.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dpas.emulate.traces import (
    FORMATS,
    MIN_IO_US,
    PATTERNS,
    load,
    pattern,
    read_blkparse,
    read_csv,
    read_file,
    read_fio_log,
    read_lines,
    read_text,
)
from dpas.errors import DpasError
from dpas.limits import MAX_IO_US, MAX_IOS
from dpas.policy.switch_stat import parse as parse_switch_stat
from dpas.sim.profile import RANGES, SECTIONS
from dpas.sim.profile import parse as parse_profile

T = TypeVar("T")

FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])

LAB = (Path(__file__).parents[1] / "src/dpas/sim/profiles/qemu-lab.toml").read_text()


def only_dpas_errors(call: Callable[[], T]) -> T | None:
    """``call()``'s result, or None if it raised a DpasError; anything else propagates."""
    try:
        return call()
    except DpasError:
        return None


def assert_device_times(values: np.ndarray) -> None:
    """What a trace reader returns: at least one I/O, each a device time."""
    assert len(values) > 0
    assert np.all(np.isfinite(values))
    assert np.all((values >= MIN_IO_US) & (values <= MAX_IO_US))


# -- numbers as they appear in text --------------------------------------------------------

SPECIAL = [
    "nan",
    "NaN",
    "-nan",
    "inf",
    "-inf",
    "Infinity",
    "1e999",
    "-1e999",
    "1e-300",
    "5e-324",
    "0",
    "-0",
    "0.0",
    "0.0009",
    "0.001",
    "1e7",
    "10000000",
    "10000000.1",
    "1e14",
    "1e18",
    "9" * 400,
    "1_000",
    "١٢",
    "１２",
    "²",
    "0x10",
    "",
    " ",
    "-",
    ".",
    "e5",
    "+1",
    "1.",
    ".5",
]

numbers = st.one_of(
    st.sampled_from(SPECIAL),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.floats(min_value=-1e8, max_value=1e8).map(lambda x: f"{x:g}"),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.text(max_size=8),
)
noise = st.text(max_size=60)


def joined(lines: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """Lines joined by one of the line ends splitlines() knows (and a stray \\r or \\x0b)."""
    return st.tuples(
        st.lists(lines, max_size=12), st.sampled_from(["\n", "\r\n", "\r", "\x0b"])
    ).map(lambda parts: parts[1].join(parts[0]))


# -- trace readers ---------------------------------------------------------------------------

lines_files = joined(st.one_of(numbers, noise))


@FUZZ
@given(text=lines_files)
def test_lines_reader(text: str) -> None:
    values = only_dpas_errors(lambda: read_lines(text.splitlines(), "t.txt"))
    if values is not None:
        assert_device_times(values)


csv_cell = st.one_of(numbers, st.text(max_size=6), st.just('"a,b"'), st.just('"'))
csv_files = st.tuples(
    st.lists(st.sampled_from(["us", "device_us", "io", "", " ", "op"]), min_size=0, max_size=4),
    joined(st.lists(csv_cell, max_size=4).map(",".join)),
).map(lambda p: ",".join(p[0]) + "\n" + p[1])


@FUZZ
@given(text=st.one_of(csv_files, noise), column=st.sampled_from([None, "us", "device_us", "x"]))
def test_csv_reader(text: str, column: str | None) -> None:
    values = only_dpas_errors(lambda: read_csv(text.splitlines(), "t.csv", column))
    if values is not None:
        assert_device_times(values)


fio_lines = st.one_of(
    st.tuples(numbers, numbers, st.sampled_from(["0", "1", "x"]), numbers, numbers).map(", ".join),
    st.lists(numbers, max_size=7).map(",".join),
    noise,
)


@FUZZ
@given(text=joined(fio_lines))
def test_fio_log_reader(text: str) -> None:
    values = only_dpas_errors(lambda: read_fio_log(text.splitlines(), "t.log"))
    if values is not None:
        assert_device_times(values)


seconds = st.one_of(
    st.decimals(min_value=0, max_value=10**6, places=9).map(str),
    st.sampled_from(["0.000010000", "0.000010000", "9" * 400 + ".0", "1.5", "0.0"]),
    numbers,
)
blk_events = st.one_of(
    st.tuples(
        st.sampled_from(["259,0", "8,0", "x"]),
        seconds,
        st.sampled_from(["D", "C", "Q", "XX", "d"]),
        st.sampled_from(["100 + 8", "101 + 8", "1" * 50 + " + 8", "[fio]", ""]),
    ).map(lambda e: f"{e[0]}    1        6     {e[1]}   697  {e[2]}   R {e[3]} [fio]"),
    noise,
)


@FUZZ
@given(text=joined(blk_events))
def test_blkparse_reader(text: str) -> None:
    values = only_dpas_errors(lambda: read_blkparse(text.splitlines(), "t.blk"))
    if values is not None:
        assert_device_times(values)


any_trace_text = st.one_of(
    lines_files, csv_files, joined(fio_lines), joined(blk_events), st.text(max_size=200)
)


@FUZZ
@given(
    text=any_trace_text,
    fmt=st.sampled_from([*FORMATS, "xml"]),
    column=st.sampled_from([None, "us", "device_us"]),
)
def test_format_detection_and_every_format(text: str, fmt: str, column: str | None) -> None:
    read = only_dpas_errors(lambda: read_text(text, "t", fmt, column))
    if read is not None:
        found, values = read
        assert found in FORMATS[1:]
        assert_device_times(values)


@FUZZ
@given(data=st.one_of(st.binary(max_size=300), any_trace_text.map(str.encode)))
def test_trace_files_of_any_bytes(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "trace"
        path.write_bytes(data)
        trace = only_dpas_errors(lambda: read_file(path))
    if trace is not None:
        assert_device_times(trace.device_us)


# -- patterns ----------------------------------------------------------------------------------

specs = st.one_of(
    st.tuples(
        st.sampled_from([*PATTERNS, "wobble", ""]),
        st.lists(numbers.filter(lambda n: ":" not in n), max_size=4),
    ).map(lambda p: ":".join([p[0], *p[1]])),
    st.text(max_size=30),
)
run_sizes = st.one_of(st.integers(1, 2000), st.sampled_from([0, -1, MAX_IOS + 1, 10**30]))
seeds = st.one_of(st.integers(0, 2**64 - 1), st.sampled_from([-1, 2**64, 10**40]))


@FUZZ
@given(spec=specs, ios=run_sizes, seed=seeds)
def test_pattern_specs(spec: str, ios: int, seed: int) -> None:
    trace = only_dpas_errors(lambda: pattern(spec, ios, seed))
    if trace is not None:
        assert len(trace) == ios
        assert_device_times(trace.device_us)


def names_a_path(spec: str) -> bool:
    try:
        return Path(spec).exists()
    except (OSError, ValueError):  # too long for a file name, or a NUL in it
        return False


@FUZZ
@given(spec=specs, ios=st.one_of(st.none(), run_sizes), seed=seeds)
def test_trace_specs(spec: str, ios: int | None, seed: int) -> None:
    if names_a_path(spec):  # a real path (".", "/") is a file reader's case, above
        return
    trace = only_dpas_errors(lambda: load(spec, ios, seed))
    if trace is not None:
        assert_device_times(trace.device_us)


# -- switch_stat --------------------------------------------------------------------------------

counts = st.one_of(
    st.integers(-(2**70), 2**70).map(str), st.sampled_from(["9" * 5000, "", "x", "-0", "٣"])
)
switch_lines = st.one_of(
    st.builds(
        "{}CPU[{:>2}] MODE[{}] QD[{:>2}] param1: {} param2: {} param3: {} polled io: {}, "
        "pas io: {}, ol io: {}, int io: {}".format,
        st.sampled_from(["", "[  815.301377] ", "[ " + "9" * 400 + ".5] ", "noise "]),
        *([counts] * 10),
    ),
    noise,
)


@FUZZ
@given(text=st.one_of(joined(switch_lines), st.text(max_size=300)))
def test_switch_stat(text: str) -> None:
    records = only_dpas_errors(lambda: parse_switch_stat(text))
    for r in records or []:
        assert 0 <= r.cp_io < 2**64 and -(2**31) <= r.param1 < 2**31
        assert r.timestamp is None or math.isfinite(r.timestamp)


# -- profiles -----------------------------------------------------------------------------------

toml_values = st.one_of(
    st.integers(-(2**63), 2**63 - 1).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(
        lambda x: (
            "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf") if math.isinf(x) else repr(x)
        )
    ),
    st.sampled_from(["true", "false", "'x'", '"21200"', "[]", "[1, 2]", "{a = 1}", "0", "-1"]),
)
keys = st.sampled_from(
    [f"{s}.{k}" for s, k in RANGES] + [f"{s}.extra" for s in SECTIONS] + ["name", "top"]
)


def edited(text: str, key: str, value: str) -> str:
    """The lab profile with ``key`` (section.key, or a top-level key) set to ``value``."""
    section, _, name = key.rpartition(".")
    out, current = ([f"{name} = {value}"] if not section else []), ""
    for line in text.splitlines():
        if line.startswith("["):
            current = line.strip("[]")
        if current == section and line.startswith(f"{name} ="):
            continue  # the old value
        out.append(line)
        if line == f"[{section}]":
            out.append(f"{name} = {value}")
    return "\n".join(out)


@FUZZ
@given(
    text=st.one_of(
        st.builds(edited, st.just(LAB), keys, toml_values),
        st.text(max_size=200),
        st.builds(lambda n: "a = " + "[" * n + "]" * n, st.integers(0, 3000)),
    )
)
def test_profiles(text: str) -> None:
    profile = only_dpas_errors(lambda: parse_profile(text, "x.toml"))
    if profile is None:
        return
    for (section, key), r in RANGES.items():
        value = getattr(getattr(profile, section), key)
        assert math.isfinite(value) and r.low <= value <= r.high
