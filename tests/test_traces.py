"""Trace readers on real files made here (fio writes its own lat log) and checked-in samples."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from dpas.emulate.traces import DEFAULT_IOS, TraceError, builtin, load, pattern, read_file

DATA = Path(__file__).parent / "data"


def test_lines_skip_blank_and_non_numeric_lines(tmp_path: Path) -> None:
    f = tmp_path / "trace.txt"
    f.write_text("latency_us\n10.5\n\n  12\nnote: warm\n9e0\n")
    assert read_file(f).device_us.tolist() == [10.5, 12.0, 9.0]


def test_lines_refuse_a_negative_latency_naming_the_line(tmp_path: Path) -> None:
    f = tmp_path / "trace.txt"
    f.write_text("10\n11\n-3\n")
    with pytest.raises(TraceError, match=r"line 3: -3.0 is not a latency"):
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
        ("step:50:10:2.5", "AT must be a whole number"),
        ("bimodal:1:2:1.5", "P must be a probability"),
        ("ramp:a:b", "expected numbers"),
        ("gaussian:30:-1", "SD must be >= 0"),
    ],
)
def test_bad_patterns(spec: str, message: str) -> None:
    with pytest.raises(TraceError, match=message):
        load(spec)
