"""``dpas waf``: WAF_IU by hand and by brute force, its properties, the readers against the
counts fio and blkparse printed for the very traces in tests/data/waf, and every bad input
as one line and exit code 2."""

from __future__ import annotations

import csv
import json
import re
import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from conftest import run_dpas
from hypothesis import given, settings
from hypothesis import strategies as st

from dpas.cli import main
from dpas.reports.waf import WORST_LENGTHS, TraceReport, WorstReport, ratio_text
from dpas.reports.waf_figure import plot_trace, plot_worst
from dpas.waf import amplification, by_size, media_bytes, worst_media, worst_waf
from dpas.waf.writes import (
    read_blkparse,
    read_csv,
    read_fio_iolog,
    read_writes,
)

DATA = Path(__file__).parent / "data" / "waf"
FIO_LOG, FIO_JSON = DATA / "fio-write.iolog", DATA / "fio-write.json"
BLKPARSE = DATA / "guest.blkparse.txt"
K = 1024


def tally(offsets: list[int], lengths: list[int], iu: int) -> Fraction:
    return amplification(np.array(offsets), np.array(lengths), iu).waf


# -- the arithmetic -----------------------------------------------------------------------


def test_a_20k_write_at_12k_costs_two_16k_units() -> None:
    """[12k, 32k) touches the units [0, 16k) and [16k, 32k): 32k for 20k, 1.6; its start is
    off a boundary, its end on one."""
    result = amplification(np.array([12 * K]), np.array([20 * K]), 16 * K)
    assert result.waf == Fraction(8, 5) and result.media == 32 * K
    assert (result.start_only, result.end_only, result.both, result.aligned) == (1, 0, 0, 0)


def test_aligned_writes_cost_exactly_what_they_write() -> None:
    offsets, lengths = [0, 16 * K, 64 * K, 1 << 30], [16 * K, 48 * K, 16 * K, 1 << 20]
    result = amplification(np.array(offsets), np.array(lengths), 16 * K)
    assert result.waf == 1 and result.aligned == 4 and result.media == sum(lengths)


def test_a_4k_write_inside_a_64k_unit_costs_the_unit() -> None:
    assert tally([8 * K], [4 * K], 64 * K) == 16
    # and with a 4k unit, nothing extra
    assert tally([8 * K], [4 * K], 4 * K) == 1


def test_unaligned_ends_are_told_apart() -> None:
    result = amplification(
        np.array([0, 512, 512, 0]), np.array([4 * K, 4 * K - 512, 4 * K, 512]), 4 * K
    )
    assert (result.aligned, result.start_only, result.both, result.end_only) == (1, 1, 1, 1)


def test_by_size_sums_to_the_whole() -> None:
    offsets = np.array([0, 512, 4 * K, 12 * K, 100 * K])
    lengths = np.array([4 * K, 4 * K, 512, 20 * K, 512])
    sizes = by_size(offsets, lengths, 16 * K)
    assert [s.length for s in sizes] == [512, 4 * K, 20 * K]
    assert [s.writes for s in sizes] == [2, 2, 1]
    assert sum(s.media for s in sizes) == amplification(offsets, lengths, 16 * K).media
    assert sizes[0].media == 2 * 16 * K  # each 512 B write costs a whole unit


@pytest.mark.parametrize("iu", [512, 4 * K, 16 * K, 64 * K])
def test_worst_media_is_the_most_over_every_sector_offset(iu: int) -> None:
    """Every length from a sector to three units and a half, at every 512-aligned start in a
    unit (the pattern repeats past it): the most media bytes equals worst_media."""
    starts = np.arange(0, iu, 512, dtype=np.int64)
    for length in range(512, 3 * iu + iu // 2 + 1, 512):
        most = int(media_bytes(starts, np.full(starts.size, length), iu).max())
        assert worst_media(length, iu) == most, (iu, length)


def test_the_worst_formula_by_hand() -> None:
    """IU x ceil((L + IU - 512) / IU) / L: 4k in 16k: ceil(20k - 512 / 16k) = 2 units, 8.0;
    16k in 16k: 2 units, 2.0; 512 in 64k: one unit, 128."""
    assert worst_waf(4 * K, 16 * K) == 8
    assert worst_waf(16 * K, 16 * K) == 2
    assert worst_waf(512, 64 * K) == 128
    assert worst_waf(1 << 20, 4 * K) == Fraction((1 << 20) + 4 * K, 1 << 20)


def test_three_decimals_round_half_up_from_the_fraction() -> None:
    assert ratio_text(Fraction(17, 16)) == "1.063"  # 1.0625: a float's format gives 1.062
    assert ratio_text(Fraction(8, 5)) == "1.600" and ratio_text(Fraction(1)) == "1.000"
    assert ratio_text(Fraction(2, 3)) == "0.667" and ratio_text(Fraction(128)) == "128.000"


WRITES = st.lists(
    st.tuples(st.integers(0, 1 << 40), st.integers(1, 1 << 22)), min_size=1, max_size=40
)
POWERS = st.integers(9, 20).map(lambda k: 1 << k)


@settings(max_examples=200, deadline=None)
@given(WRITES, POWERS)
def test_waf_is_at_least_one_and_one_exactly_when_every_write_is_aligned(
    writes: list[tuple[int, int]], iu: int
) -> None:
    offsets, lengths = (list(x) for x in zip(*writes, strict=True))
    waf = tally(offsets, lengths, iu)
    aligned = all(o % iu == 0 and (o + n) % iu == 0 for o, n in writes)
    assert waf >= 1
    assert (waf == 1) == aligned


@settings(max_examples=200, deadline=None)
@given(WRITES, POWERS, POWERS)
def test_waf_never_falls_as_the_unit_grows(writes: list[tuple[int, int]], a: int, b: int) -> None:
    offsets, lengths = (list(x) for x in zip(*writes, strict=True))
    small, large = sorted((a, b))
    assert tally(offsets, lengths, small) <= tally(offsets, lengths, large)


@settings(max_examples=100, deadline=None)
@given(WRITES, POWERS, st.lists(st.integers(0, 5), min_size=40, max_size=40))
def test_counted_writes_tally_as_the_writes_repeated(
    writes: list[tuple[int, int]], iu: int, counts: list[int]
) -> None:
    offsets, lengths = (np.array(x, dtype=np.int64) for x in zip(*writes, strict=True))
    weight = np.array(counts[: offsets.size], dtype=np.int64)
    repeated = amplification(np.repeat(offsets, weight), np.repeat(lengths, weight), iu)
    assert amplification(offsets, lengths, iu, weight) == repeated


@given(st.lists(st.integers(0, 1 << 30).map(lambda n: n * 512), min_size=1, max_size=20))
def test_aligned_writes_of_whole_units_stay_at_one(units: list[int]) -> None:
    offsets = [u * 16 * K for u in units]
    assert tally(offsets, [16 * K] * len(units), 16 * K) == 1


# -- the readers against the tools' own counts -----------------------------------------------


def test_the_fio_iolog_holds_the_writes_fio_counted() -> None:
    """fio's --output-format=json of the very run that wrote the iolog: its write total_ios
    and io_bytes."""
    fio_write = json.loads(FIO_JSON.read_text())["jobs"][0]["write"]
    writes = read_fio_iolog(FIO_LOG)
    assert writes.format == "fio" and writes.skipped == 0
    assert len(writes) == fio_write["total_ios"] == 36
    assert int(writes.lengths.sum()) == fio_write["io_bytes"]
    # the run's job: 512 B to 64 KiB, at 512 B alignment, inside its 1 MiB file
    assert writes.lengths.min() >= 512 and writes.lengths.max() <= 64 * K
    assert not (writes.offsets % 512).any() and (writes.offsets + writes.lengths).max() <= 1 << 20
    assert read_writes(FIO_LOG).format == "fio"


def blkparse_total(name: str) -> tuple[int, int]:
    """The count and KiB blkparse's "Total" block gives for ``name`` ("Write Dispatches")."""
    total = BLKPARSE.read_text().split("Total (")[1]
    found = re.search(rf"{name}:\s+(\d+),\s+(\d+)KiB", total)
    assert found is not None
    return int(found[1]), int(found[2])


def events_without_range(action: str) -> int:
    """Write events of ``action`` blkparse printed with no "sector + n" (flushes): fields
    split on white space, the 7th the RWBS, the 9th a '+' where there is a range."""
    count = 0
    for line in BLKPARSE.read_text().splitlines():
        fields = line.split()
        if len(fields) > 6 and fields[5] == action and "W" in fields[6]:
            count += len(fields) < 9 or fields[8] != "+"
    return count


def test_blkparse_dispatched_writes_are_the_ones_blkparse_summed() -> None:
    dispatched, kib = blkparse_total("Write Dispatches")
    writes = read_blkparse(BLKPARSE)
    assert writes.format == "blkparse" and len(writes) == dispatched == 44
    assert int(writes.lengths.sum()) // K == kib
    assert events_without_range("D") == 0  # the flushes reach the driver as FN: no write


@pytest.mark.parametrize(("event", "name"), [("Q", "Writes Queued"), ("C", "Writes Completed")])
def test_blkparse_queued_and_completed_writes_leave_out_the_flushes(event: str, name: str) -> None:
    """blkparse's totals count the fsyncs' flushes (Q FWS, C WS 0 [0]) as writes; dpas waf
    counts the writes with a sector range."""
    total, _ = blkparse_total(name)
    flushes = events_without_range(event)
    assert flushes == 2
    assert len(read_blkparse(BLKPARSE, event=event)) == total - flushes == 44


def test_blkparse_writes_are_the_guests_three_jobs() -> None:
    """fio's sequential 3k writes from 16 MiB and dd's four 1536 B writes from sector 30003,
    as the trace's README says the guest ran them."""
    writes = read_writes(BLKPARSE)
    pairs = list(zip(writes.offsets.tolist(), writes.lengths.tolist(), strict=True))
    seq = sorted(o for o, n in pairs if n == 3 * K and o >= 16 << 20)
    assert seq == [(16 << 20) + i * 3 * K for i in range(16)]
    assert [o for o, n in pairs if n == 1536] == [(30003 + 3 * i) * 512 for i in range(4)]


# blkparse_fmt.c's process_default, format for format (the header, then each action's tail)
HEADER = "%3d,%-3d %2d %8d %5d.%09lu %5u %2s %3s "


#: handle_notify's message line (blkparse.c): sequence "0", a cgroup "ino,gen " maybe, m, N
MESSAGE = "%3d,%-3d %2d %8s %5d.%09lu %5u %s%2s %3s %s"


def event(action: str, rwbs: str, tail: str, seq: int = 1, pid: int = 124) -> str:
    return HEADER % (8, 0, 1, seq, 0, 1234, pid, action, rwbs) + tail


def message(text: str, cgroup: str = "") -> str:
    return MESSAGE % (8, 0, 1, "0", 0, 1, 124, cgroup, "m", "N", text)


SYNTHETIC = [
    event("Q", "WS", "2048 + 8 [fio]"),
    event("G", "WS", "2048 + 8 [fio]"),
    event("P", "N", "[fio]"),
    event("I", "WS", "2048 + 8 [fio]"),
    event("U", "N", "[fio] 1"),
    event("UT", "N", "[kworker/1:1H] 2"),
    event("D", "WS", "2048 + 8 [fio]"),
    event("D", "WS", "4096 + 24 (     123) [fio]"),  # -t: the time since its insert
    event("D", "FN", "[kworker/1:0H]"),  # a flush: no range
    event("D", "W", "4096 (12 00 00 ..) [sg_write]"),  # SCSI pass-through: bytes, no range
    event("D", "R", "64 + 8 [cat]"),
    event("D", "DS", "8192 + 8 [fstrim]"),  # a discard
    event("X", "WS", "2048 / 2056 [fio]"),
    event("A", "WS", "2048 + 8 <- (8,1) 0"),
    event("M", "WS", "2056 + 8 [fio]"),
    event("C", "WS", "2048 + 8 [0]"),
    event("C", "WS", "0 [0]"),
    event("C", "FWS", "0 (    87) [0]"),
    message("bfq124 x"),
    message("hi", cgroup="1a,2 "),
]  # fmt: skip


def test_blkparse_reads_every_action_blkparse_prints(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_text(
        "\n".join(["Input file t.blktrace.1 added", *SYNTHETIC, "CPU1 (8,0):", " Reads ...", ""])
    )
    writes = read_blkparse(path)
    assert writes.offsets.tolist() == [2048 * 512, 4096 * 512]
    assert writes.lengths.tolist() == [8 * 512, 24 * 512]
    assert read_blkparse(path, event="Q").offsets.tolist() == [2048 * 512]
    assert read_blkparse(path, event="C").lengths.tolist() == [8 * 512]


@pytest.mark.parametrize(
    "ending", ["Total (8,0):", "fio (124)", "fio (124, ...)", "Throughput (R/W): 0KiB/s / 965KiB/s"]
)
def test_blkparse_summaries_end_the_events(tmp_path: Path, ending: str) -> None:
    path = tmp_path / "t.txt"
    later = event("D", "WS", "0 + 8 [fio]")
    path.write_text("\n".join([SYNTHETIC[6], ending, " Reads Queued: 0, 0KiB", later]) + "\n")
    assert len(read_blkparse(path)) == 1


def test_fio_version_2_and_its_actions(tmp_path: Path) -> None:
    """read_iolog's v2 lines: file actions without numbers, wait's delay, sync and trim."""
    path = tmp_path / "v2.log"
    path.write_text(
        "fio version 2 iolog\n/dev/sdb add\n/dev/sdb open\n/dev/sdb write 4096 8192\n"
        "/dev/sdb wait 100 0\n/dev/sdb read 0 512\n/dev/sdb sync 0 0\n/dev/sdb trim 0 4096\n"
        "/dev/sdb datasync 0 0\n/dev/sdb write 12288 512\n/dev/sdb close\n"
    )
    writes = read_writes(path)
    assert writes.offsets.tolist() == [4096, 12288] and writes.lengths.tolist() == [8192, 512]


def test_csv_takes_a_header_comments_and_fio_sizes(tmp_path: Path) -> None:
    path = tmp_path / "w.csv"
    path.write_text("# from a tool\noffset,len\n0,4k\n 12k , 20k\n0x1000,512\n\n1m,1m\n")
    writes = read_csv(path)
    assert writes.offsets.tolist() == [0, 12 * K, 4096, 1 << 20]
    assert writes.lengths.tolist() == [4 * K, 20 * K, 512, 1 << 20]
    assert read_writes(path).format == "csv"
    path.write_text("\ufeff0,4k\n")  # a spreadsheet's byte-order mark
    assert read_writes(path).lengths.tolist() == [4 * K]


def test_a_blktrace_binary_is_named(tmp_path: Path) -> None:
    path = tmp_path / "sda.blktrace.0"
    path.write_bytes((0x65617407).to_bytes(4, "little") + b"\0" * 60)
    assert "blkparse -i" in fails("waf", str(path))


# -- the command ------------------------------------------------------------------------


def fails(*args: str) -> str:
    """Run dpas in this process; it must exit 2 with one line on stderr, which is returned."""
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err), pytest.raises(SystemExit) as stop:
        main(list(args))
    assert stop.value.code == 2
    lines = err.getvalue().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dpas: error: "), err.getvalue()
    return lines[0]


def test_the_report_in_json_is_exact(capsys: pytest.CaptureFixture[str]) -> None:
    main(["waf", str(BLKPARSE), "--iu", "64k,4k,16k", "--json"])
    doc = json.loads(capsys.readouterr().out)
    writes = read_writes(BLKPARSE)
    assert doc["schema"] == "dpas.waf/1" and doc["kind"] == "trace" and doc["event"] == "D"
    assert doc["writes"] == 44 and doc["logical_bytes"] == int(writes.lengths.sum())
    assert [u["iu"] for u in doc["ius"]] == [4 * K, 16 * K, 64 * K]
    for u in doc["ius"]:
        whole = amplification(writes.offsets, writes.lengths, u["iu"])
        assert u["media_bytes"] == whole.media and u["waf"] == float(ratio_text(whole.waf))
        assert sum(u["unaligned"].values()) == 44
        assert sum(s["media_bytes"] for s in u["sizes"]) == whole.media
        assert sum(s["writes"] for s in u["sizes"]) == 44


def test_the_tables_csv_and_figure(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    table, figure = tmp_path / "w.csv", tmp_path / "w.png"
    main(["waf", str(FIO_LOG), "--iu", "16k", "--csv", str(table), "--plot", str(figure)])
    out = capsys.readouterr().out
    whole = amplification(*(lambda w: (w.offsets, w.lengths))(read_writes(FIO_LOG)), 16 * K)
    assert f"WAF_IU {ratio_text(whole.waf)}" in out and "36 writes" in out
    rows = list(csv.DictReader(table.open()))
    assert sum(int(r["media_bytes"]) for r in rows) == whole.media
    assert {r["iu"] for r in rows} == {str(16 * K)}
    assert figure.read_bytes()[:4] == b"\x89PNG"


def test_the_trace_figure_draws_each_sizes_waf(tmp_path: Path) -> None:
    writes = read_writes(BLKPARSE)
    report = TraceReport.of(BLKPARSE, writes, "D", [4 * K, 64 * K])
    (ax,) = plot_trace(report, tmp_path / "t.svg").axes
    drawn = {ln.get_label(): ln for ln in ax.get_lines() if not ln.get_label().startswith("_")}
    assert set(drawn) == {"IU 4k (trace: 1.157)", "IU 64k (trace: 3.796)"}
    line = drawn["IU 64k (trace: 3.796)"]
    sizes = by_size(writes.offsets, writes.lengths, 64 * K)
    assert line.get_xdata().tolist() == [s.length for s in sizes]
    assert line.get_ydata().tolist() == pytest.approx([s.media / s.logical for s in sizes])
    assert (tmp_path / "t.svg").read_text().startswith("<?xml")


def test_the_worst_figure_and_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (ax,) = plot_worst(WorstReport([16 * K]), tmp_path / "w.png").axes
    (line,) = [ln for ln in ax.get_lines() if ln.get_label() == "IU 16k"]
    assert line.get_xdata().tolist() == list(WORST_LENGTHS) and len(WORST_LENGTHS) == 2048
    assert line.get_ydata()[7] == 16 * K * 2 / (4 * K)  # 4k: two units
    main(["waf", "--worst", "--iu", "16k"])
    out = capsys.readouterr().out
    assert re.search(r"│\s+4k │\s+8\.000 │", out) and re.search(r"│\s+1m │\s+1\.016 │", out)


def test_worst_json_and_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["waf", "--worst", "--iu", "4k,64k", "--json", "--csv", str(tmp_path / "w.csv")])
    doc = json.loads(capsys.readouterr().out)
    assert doc["kind"] == "worst" and doc["lengths"] == list(WORST_LENGTHS)
    assert doc["ius"][1]["media_bytes"][0] == 64 * K and doc["ius"][1]["waf"][0] == 128
    rows = list(csv.reader((tmp_path / "w.csv").open()))
    assert rows[0] == ["iu", "length", "worst_media_bytes", "worst_waf"]
    assert len(rows) == 1 + 2 * 2048 and rows[1] == ["4096", "512", "4096", "8.000"]


def test_skip_bad_counts_and_skips(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "t.txt"
    lines = BLKPARSE.read_text().splitlines()
    lines[5:5] = ["garbage", "259,0 1 2 x"]
    path.write_text("\n".join(lines))
    assert f"{path} line 6: not a blkparse event" in fails("waf", str(path))
    main(["waf", str(path), "--skip-bad", "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert doc["skipped_lines"] == 2 and doc["writes"] == 44
    main(["waf", str(path), "--skip-bad"])
    assert "2 malformed lines skipped" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("text", "args", "message"),
    [
        ("0,4k\n", ["--iu", "3k"], "--iu 3k: expected a power of two"),
        ("0,4k\n", ["--iu", "1000"], "--iu 1000: expected a power of two"),
        ("0,4k\n", ["--iu", "0"], "--iu 0: expected a size"),
        ("0,4k\n", ["--iu", "x"], "--iu x: expected a size"),
        ("0,4k\n", ["--iu", "4k,"], "expected sizes separated by commas"),
        ("", [], "empty; expected a fio iolog"),
        ("offset,len\n", [], "no writes: no 'offset,length' row"),
        ("fio version 3 iolog\n1 f add\n2 f read 0 512\n", [], "no writes: the iolog has no"),
        ("fio version 3 iolog\n1 f write 0 512\n2 f write 0\n", [], "line 3: fio iolog v3"),
        ("fio version 3 iolog\n1 f write -5 512\n", [], "line 2: offset '-5' is not"),
        ("fio version 3 iolog\n1 f write 0 0\n", [], "line 2: a write of no bytes"),
        ("fio version 1 iolog\n", [], "not a fio iolog"),
        ("0,4k\n5,x\n", [], "line 2: length 'x' is not"),
        ("0,4k\n4611686018427387904,1\n", [], "line 2: offset + length beyond 4 EiB"),
        ("0,4k\n1,2,3\n", [], "line 2: expected 'offset,length'"),
        ("hello\n", [], "not a fio iolog ('fio version 3 iolog' first), blkparse"),
        ("0,4k\n", ["--event", "Q"], "--event Q: only blkparse text has events"),
        ("0,4k\n", ["--event", "x"], "x: expected D, Q or C"),
        ("0,4k\n", ["--worst"], "--worst takes no TRACE"),
        ("0,4k\n", ["--plot", "w.pdf"], "--plot w.pdf: expected a file name ending in .png"),
        (None, [], "no such file"),
    ],
)
def test_bad_inputs_are_one_line_and_exit_2(
    tmp_path: Path, text: str | None, args: list[str], message: str
) -> None:
    path = tmp_path / "trace.txt"
    if text is not None:
        path.write_text(text)
    assert message in fails("waf", str(path), *args)


def test_blkparse_malformed_and_empty(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_text(f"{SYNTHETIC[0]}\n{SYNTHETIC[6][:30]}\n")
    assert "line 2: not a blkparse event" in fails("waf", str(path))
    path.write_text(f"{SYNTHETIC[0]}\n{SYNTHETIC[8]}\n")
    assert "no writes: no D event of a write" in fails("waf", str(path))


def test_worst_and_no_trace_refusals() -> None:
    assert "expected a TRACE" in fails("waf")
    assert "--event and --skip-bad do not apply" in fails("waf", "--worst", "--skip-bad")
    assert "no such file" in fails("waf", "/nonexistent/trace.txt")
    assert "--csv /nonexistent/x.csv" in fails("waf", "--worst", "--csv", "/nonexistent/x.csv")


def test_a_real_process_prints_one_line() -> None:
    out = run_dpas("waf", str(BLKPARSE), "--iu", "48k")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip() == (
        "dpas: error: --iu 48k: expected a power of two from 512 to 1g bytes (512, 4k, 16k, 64k...)"
    )


# -- fuzzed: only a DpasError may escape, and what is read is sound ---------------------------

WORDS = st.sampled_from(
    ["fio version 3 iolog", "fio version 2 iolog", "259,0", "1", "0.000000001", "124", "D",
     "Q", "C", "WS", "FWS", "N", "+", "[fio]", "write", "read", "add", "f", "0", "4k", "-1",
     "99999999999999999999", "٣", "1_0", "nan", ",", "CPU0 (8,0):", "\t", "0x10", "m"]
)  # fmt: skip
LINES = st.lists(st.lists(WORDS, max_size=12).map(" ".join), max_size=12).map("\n".join)


@settings(max_examples=300, deadline=None)
@given(st.one_of(LINES.map(str.encode), st.binary(max_size=300)))
def test_any_text_reads_or_is_refused(data: bytes) -> None:
    from dpas.errors import DpasError

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "trace"
        path.write_bytes(data)
        for skip_bad in (False, True):
            try:
                writes = read_writes(path, skip_bad=skip_bad)
            except DpasError:
                continue
            assert writes.offsets.dtype == writes.lengths.dtype == np.int64
            assert len(writes) > 0 and (writes.offsets >= 0).all() and (writes.lengths > 0).all()
            assert (writes.offsets + writes.lengths <= 1 << 62).all()
