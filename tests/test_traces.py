"""Trace readers on real files made here (fio writes its own lat log) and checked-in samples."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from dpas.emulate.traces import (
    DEFAULT_IOS,
    MIN_IO_US,
    TraceError,
    builtin,
    load,
    pattern,
    read_file,
    read_text,
)
from dpas.errors import DpasError
from dpas.limits import MAX_IO_US

DATA = Path(__file__).parent / "data"


def test_lines_skip_blank_and_non_numeric_lines(tmp_path: Path) -> None:
    f = tmp_path / "trace.txt"
    f.write_text("latency_us\n10.5\n\n  12\nnote: warm\n9e0\n")
    assert read_file(f).device_us.tolist() == [10.5, 12.0, 9.0]


def test_lines_refuse_a_negative_latency_naming_the_line(tmp_path: Path) -> None:
    f = tmp_path / "trace.txt"
    f.write_text("10\n11\n-3\n")
    with pytest.raises(TraceError, match=r"trace.txt line 3: -3 µs is not a device time"):
        read_file(f)


def test_csv_named_column(tmp_path: Path) -> None:
    f = tmp_path / "t.csv"
    f.write_text("io,device_us,op\n0,31.5,R\n1,29.25,R\n")
    assert read_file(f, column="device_us").device_us.tolist() == [31.5, 29.25]
    with pytest.raises(TraceError, match=r"no column 'lat' \(columns: io, device_us, op\)"):
        read_file(f, column="lat")


def test_csv_bad_cell_names_the_line(tmp_path: Path) -> None:
    f = tmp_path / "t.csv"
    f.write_text("device_us\n31.5\nfast\n")
    with pytest.raises(TraceError, match=r"t.csv line 3: 'fast' is not a number"):
        read_file(f, "csv")


@pytest.fixture(scope="module")
def fio_log(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    fio = shutil.which("fio")
    if fio is None:
        pytest.fail("fio is not installed: apt-get install -y fio (the README's test command does)")
    work = tmp_path_factory.mktemp("fio")
    out = subprocess.run(
        [
            fio,
            "--name=lat",
            f"--filename={work / 'data'}",
            "--size=2m",
            "--rw=randread",
            "--bs=4k",
            "--ioengine=psync",
            "--number_ios=64",
            "--write_lat_log=trace",
            "--output-format=json",
        ],
        cwd=work,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return work / "trace_clat.1.log", json.loads(out.stdout)


def test_fio_lat_log_written_by_real_fio(fio_log: tuple[Path, dict]) -> None:
    path, report = fio_log
    trace = read_file(path)
    assert "(fio)" in trace.source
    clat = report["jobs"][0]["read"]["clat_ns"]
    assert len(trace) == clat["N"] == 64
    # fio logs nanoseconds; the trace is in µs, and its mean is fio's own mean
    assert trace.device_us.mean() == pytest.approx(clat["mean"] / 1000, rel=1e-6)
    assert trace.device_us.min() == pytest.approx(clat["min"] / 1000)


def test_fio_log_malformed_line(tmp_path: Path) -> None:
    f = tmp_path / "x_clat.1.log"
    f.write_text("0, 30517, 0, 4096, 0\n1, 30211\n")
    with pytest.raises(TraceError, match=r"line 2: expected 'time, latency_ns"):
        read_file(f, "fio")


def test_blkparse_sample_gives_d_to_c_times() -> None:
    trace = read_file(DATA / "blkparse_sample.txt")
    assert "(blkparse)" in trace.source
    # matched by device and sector, in completion order; the orphan C and the flush are skipped
    assert np.allclose(trace.device_us, [12.686, 31.008, 19.0, 30.0, 5.0])


def test_blkparse_without_events_is_an_error(tmp_path: Path) -> None:
    f = tmp_path / "empty.txt"
    f.write_text("Total (259,0):\n Reads Queued: 0\n")
    with pytest.raises(TraceError, match="no device times found"):
        read_file(f, "blkparse")


def test_missing_file_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match="no such file, built-in"):
        load(str(tmp_path / "nope.txt"))
    with pytest.raises(TraceError, match="Is a directory"):
        read_file(tmp_path)


def test_zssd_is_shipped() -> None:
    trace = builtin("zssd")
    assert len(trace) == 1000 and trace.device_us[0] == 31.201
    assert len(load("zssd")) == DEFAULT_IOS  # cycled so that LHP windows close
    assert len(load("zssd", ios=1500)) == 1500 and load("zssd", ios=1500).device_us[1000] == 31.201


def test_patterns_are_exact_where_they_are_not_random() -> None:
    assert pattern("constant:20", 3, 1).device_us.tolist() == [20, 20, 20]
    assert pattern("ramp:10:30", 3, 1).device_us.tolist() == [10, 20, 30]
    assert pattern("step:50:10:2", 4, 1).device_us.tolist() == [50, 50, 10, 10]


@pytest.mark.parametrize("spec", ["noisy:30:5", "gaussian:30:4", "bimodal:20:80:0.3"])
def test_random_patterns_follow_the_seed(spec: str) -> None:
    a, b, c = pattern(spec, 2000, 7), pattern(spec, 2000, 7), pattern(spec, 2000, 8)
    assert np.array_equal(a.device_us, b.device_us)
    assert not np.array_equal(a.device_us, c.device_us)
    assert a.device_us.min() > 0


def test_random_patterns_have_their_shape() -> None:
    noisy = pattern("noisy:30:5", 20_000, 1).device_us
    assert noisy.min() >= 25 and noisy.max() <= 35 and abs(noisy.mean() - 30) < 0.2
    gauss = pattern("gaussian:30:4", 20_000, 1).device_us
    assert abs(gauss.std() - 4) < 0.2
    bimodal = pattern("bimodal:20:80:0.3", 20_000, 1).device_us
    assert set(np.unique(bimodal)) == {20, 80} and abs((bimodal == 80).mean() - 0.3) < 0.02


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("constant", "expected constant:US"),
        ("step:50:10", "expected step:A:B:AT"),
        ("step:50:10:2.5", "AT 2.5: expected a whole number from 0 to 1000000000"),
        ("step:50:10:inf", "AT inf: expected a whole number"),
        ("step:50:10:1e99", "AT 1e.99: expected a whole number"),
        ("bimodal:1:2:1.5", "P 1.5: expected a number from 0 to 1"),
        ("bimodal:1:2:nan", "P nan: expected a number from 0 to 1"),
        ("ramp:a:b", "expected numbers"),
        ("ramp:1_0:20", "expected numbers"),  # float() takes underscores; a trace does not
        ("constant:٣٠", "expected numbers"),  # nor other scripts' digits
        ("gaussian:30:-1", "SD -1: expected a number from 0 to 10000000"),
        ("noisy:30:nan", "SD nan: expected a number from 0"),
        ("noisy:30:inf", "SD inf: expected a number from 0"),
    ],
)
def test_bad_patterns(spec: str, message: str) -> None:
    with pytest.raises(TraceError, match=message):
        load(spec)


NOT_DEVICE_TIMES = ["0", "-0", "-5", "1e-300", "0.0009", "10000000.5", "1e14", "1e18", "nan", "inf"]


def _file(tmp_path: Path, fmt: str, value: str) -> Path:
    """A trace file of ``fmt`` whose third I/O has device time ``value`` µs (line 3 or 4)."""
    f = tmp_path / f"t.{fmt}"
    if fmt == "lines":
        f.write_text(f"10\n11\n{value}\n")
    elif fmt == "csv":
        f.write_text(f"io,device_us\n0,10\n1,{value}\n")
    else:  # fio logs ns
        ns = value if value in ("nan", "inf") else repr(float(value) * 1000)
        f.write_text(f"0, 10000, 0, 4096, 0\n1, 11000, 0, 4096, 0\n2, {ns}, 0, 4096, 0\n")
    return f


@pytest.mark.parametrize("value", NOT_DEVICE_TIMES)
@pytest.mark.parametrize(("fmt", "line"), [("lines", 3), ("csv", 3), ("fio", 3)])
def test_every_reader_refuses_what_is_no_device_time(
    tmp_path: Path, fmt: str, line: int, value: str
) -> None:
    """No time (0: a run of no time divides by zero), below 1 ns (rounds to 0 in the kernel
    model), above 10 s (1e14 µs hung the page model, 1e18 overflowed int64), not finite."""
    path = _file(tmp_path, fmt, value)
    with pytest.raises(TraceError, match=rf"t.{fmt} line {line}: .* is not a device time"):
        read_file(path, fmt, "device_us" if fmt == "csv" else None)


@pytest.mark.parametrize("value", ["0.001", "1e-3", "30", "1e7", "10000000"])
def test_device_times_from_1_ns_to_10_s_are_read(tmp_path: Path, value: str) -> None:
    assert read_file(_file(tmp_path, "lines", value)).device_us[2] == float(value)


def test_blkparse_completion_at_its_issue_time_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "blk.txt"
    f.write_text(
        "259,0 1 1 0.000010000 697 D R 100 + 8 [fio]\n259,0 1 2 0.000010000 697 C R 100 + 8 [0]\n"
    )
    with pytest.raises(TraceError, match=r"blk.txt line 2: D \(line 1\) to C = 0 µs is not"):
        read_file(f)
    f.write_text(
        "259,0 1 1 0.000010000 697 D R 100 + 8 [fio]\n259,0 1 2 0.000009000 697 C R 100 + 8 [0]\n"
    )
    with pytest.raises(TraceError, match=r"line 2: D \(line 1\) to C = -1 µs is not"):
        read_file(f)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("constant:-5", "constant:-5: US = -5 µs is not a device time"),
        ("constant:0", "US = 0 µs is not a device time"),
        ("constant:1e-300", "US = 1e-300 µs is not a device time"),
        ("constant:1e18", "US = 1e.18 µs is not a device time"),
        ("constant:nan", "US = nan µs is not a device time"),
        ("ramp:-100:-50", "ramp:-100:-50: FROM = -100 µs is not a device time"),
        ("ramp:10:1e14", "TO = 1e.14 µs is not a device time"),
        ("step:0:10:5", "A = 0 µs is not a device time"),
        ("bimodal:20:-80:0.5", "B = -80 µs is not a device time"),
        ("noisy:3:5", "noisy:3:5: US - SD = -2 µs is not a device time"),
        ("noisy:9999999:5", "US . SD = 10000004 µs is not a device time"),
        ("gaussian:inf:1", "MU = inf µs is not a device time"),
        ("gaussian:5:10", r"gaussian:5:10 \(seed 1\): I/O \d+ = -[0-9.]+ µs is not a device time"),
    ],
)
def test_patterns_refuse_what_files_refuse(spec: str, message: str) -> None:
    """They used to clamp to 0.1 µs what a file with the same value is refused for."""
    with pytest.raises(TraceError, match=message):
        pattern(spec, 1000, 1)


def test_a_pattern_and_a_file_say_the_same_of_the_same_value(tmp_path: Path) -> None:
    f = tmp_path / "t.txt"
    f.write_text("-5\n")
    with pytest.raises(TraceError) as from_file:
        read_file(f)
    with pytest.raises(TraceError) as from_pattern:
        pattern("constant:-5", 10, 1)
    tail = "-5 µs is not a device time: expected 0.001 to 10000000 µs (1 ns to 10 s)"
    assert str(from_file.value).endswith(tail) and str(from_pattern.value).endswith(tail)


def test_patterns_at_the_limits_are_made() -> None:
    assert pattern(f"constant:{MIN_IO_US}", 2, 1).device_us.tolist() == [MIN_IO_US] * 2
    assert pattern(f"ramp:{MIN_IO_US}:{MAX_IO_US}", 2, 1).device_us.tolist() == [
        MIN_IO_US,
        MAX_IO_US,
    ]
    assert pattern("noisy:10:9.99", 2000, 1).device_us.min() >= 0.001
    with pytest.raises(TraceError, match=r"US - SD = 0.00099999\d+ µs is not"):
        pattern("noisy:10:9.999", 2000, 1)  # 10 - 9.999 is below 0.001 in floating point
    assert pattern("bimodal:1:2:1", 5, 1).device_us.tolist() == [2.0] * 5


@pytest.mark.parametrize(("ios", "seed"), [(0, 1), (-3, 1), (10**10, 1), (5, -1), (5, 2**64)])
def test_run_size_and_seed_are_ranged(ios: int, seed: int) -> None:
    """A negative seed was numpy's ValueError; either is now a DpasError naming the option."""
    with pytest.raises(DpasError, match="--ios|--seed"):
        load("constant:30", ios, seed)


def test_numbers_in_other_scripts_are_not_device_times(tmp_path: Path) -> None:
    f = tmp_path / "t.txt"
    f.write_text("١٢\n1_000\n12\n")  # Arabic-Indic digits and an underscore are skipped
    assert read_file(f).device_us.tolist() == [12.0]
    with pytest.raises(TraceError, match=r"line 2: '1_000' is not a number"):
        read_text("us\n1_000\n", "t.csv", "csv")


def test_csv_parser_errors_are_trace_errors() -> None:
    with pytest.raises(TraceError, match=r"t.csv line 2: not CSV"):
        read_text("us\n" + '"' + "9" * 200_000 + '"\n', "t.csv", "csv")


def test_column_is_for_csv_only() -> None:
    with pytest.raises(TraceError, match="--column us: applies to CSV traces, not --format fio"):
        read_text("0, 1000, 0, 4096, 0\n", "t.log", "fio", "us")


@pytest.mark.parametrize("spec", ["a\x00b", "x" * 5000, "constant:\x00"])
def test_names_no_file_can_have_are_no_such_file(spec: str) -> None:
    with pytest.raises(TraceError, match="no such file|expected numbers"):
        load(spec)
