"""Fuzzing what a real run reads back: fio's JSON output and the knob journal.

Only DpasError subclasses may escape (the command line prints those as one line); whatever is
accepted must be what the rest of dpas relies on.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import run_dpas
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dpas.errors import DpasError
from dpas.machine.fio import parse
from dpas.policy import Op
from dpas.real.knobs import JOURNAL_SCHEMA, KnobError, read_journal
from dpas.results import Measured, RunKey

FUZZ = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
OPS = st.sampled_from([Op.READ, Op.WRITE])
MISSING = object()  # a key left out of the record

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(-(2**80), 2**80),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=30,
)
#: what a fuzzed field holds instead of a good value: wrong types, NaN, inf, negatives
weird = st.one_of(
    st.sampled_from(
        [math.nan, math.inf, -math.inf, -1, -0.5, 0, 0.0, "", "12", "1e3", "nan", None, True]
    ),
    st.sampled_from([[], [1], {}, {"mean": 1}, 10**30, 2**63, -(2**63), 1e308, 5e-324]),
    json_values,
)


def mostly(good: Any, bad: st.SearchStrategy[Any], bad_in_20: int = 2) -> st.SearchStrategy[Any]:
    """The good value, but ``bad_in_20`` times in 20 a bad one (st.one_of would pick the bad
    ones so often that no fuzzed record got through)."""
    return st.integers(0, 19).flatmap(lambda i: bad if i < bad_in_20 else st.just(good))


def maybe(
    good: Any, bad: st.SearchStrategy[Any] = weird, bad_in_20: int = 3
) -> st.SearchStrategy[Any]:
    """Mostly the good value; otherwise a bad one or the key left out."""
    return mostly(good, bad | st.just(MISSING), bad_in_20)


def pruned(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if v is not MISSING}


def fio_side(ios: int) -> st.SearchStrategy[Any]:
    percentile = st.builds(
        pruned,
        st.fixed_dictionaries(
            {
                "1.000000": maybe(9000),
                "50.000000": maybe(10_000),
                "99.000000": maybe(20_000),
                "99.900000": maybe(40_000),
            }
        ),
    )
    good_percentile = {"50.000000": 10_000, "99.000000": 20_000, "99.900000": 40_000}
    clat = st.builds(
        pruned,
        st.fixed_dictionaries(
            {
                "min": maybe(5000),
                "mean": maybe(11_000.5),
                "percentile": maybe(good_percentile, percentile | weird),
            }
        ),
    )
    lat = st.builds(pruned, st.fixed_dictionaries({"mean": maybe(12_000.25), "max": maybe(9e5)}))
    side = st.builds(
        pruned,
        st.fixed_dictionaries(
            {
                "io_bytes": maybe(ios * 4096),
                "total_ios": maybe(ios),
                "iops": maybe(ios / 1.0),
                "runtime": maybe(1000),
                "lat_ns": maybe({"mean": 12_000.25}, lat | weird),
                "clat_ns": maybe({"percentile": {"50.000000": 10_000}}, clat | weird),
            }
        ),
    )
    return maybe({"total_ios": ios, "iops": 1.0, "runtime": 1000, "lat_ns": {"mean": 1}}, side)


near_fio = st.builds(
    lambda job, prefix: prefix + json.dumps({"fio version": "fio-3.36", "jobs": [pruned(job)]}),
    st.fixed_dictionaries(
        {
            "jobname": st.just("x"),
            "error": maybe(0),
            "job_runtime": maybe(1000),
            "usr_cpu": maybe(3.5),
            "sys_cpu": maybe(20.25),
            "ctx": maybe(12345),
            "read": fio_side(50_000),
            "write": fio_side(0),
        }
    ),
    mostly("", st.sampled_from(["fio: note: something\n", "{", "note {\n"]), 3),
)


def check_fio(text: str, rw: Op) -> None:
    try:
        result = parse(text, RunKey.of("CP", 1, rw, 1))
    except DpasError:
        return
    assert isinstance(result, Measured)
    assert isinstance(result.ios, int) and result.ios > 0
    assert isinstance(result.ctx, int) and result.ctx >= 0
    for name in ("runtime_s", "iops", "lat_mean_us", "lat_p50_us", "lat_p99_us", "lat_p999_us"):
        value = getattr(result, name)
        assert isinstance(value, float) and math.isfinite(value) and value >= 0, (name, value)
    assert math.isfinite(result.cpu_pct) and result.cpu_pct >= 0


@FUZZ
@given(text=st.text(), rw=OPS)
def test_fio_parse_arbitrary_text(text: str, rw: Op) -> None:
    check_fio(text, rw)


@FUZZ
@given(value=json_values, rw=OPS, prefix=st.sampled_from(["", "noise\n"]))
def test_fio_parse_arbitrary_json(value: Any, rw: Op, prefix: str) -> None:
    check_fio(prefix + json.dumps(value), rw)
    check_fio(json.dumps({"jobs": [value]}), rw)
    check_fio(json.dumps({"jobs": value}), rw)


@FUZZ
@given(text=near_fio, rw=OPS)
def test_fio_parse_near_valid_json(text: str, rw: Op) -> None:
    check_fio(text, rw)


@pytest.mark.parametrize(
    "text",
    [
        "{" + "1" * 5000 + "}",  # not JSON: a syntax error, never a ValueError of int()
        '{"jobs": [{"read": ' + "9" * 5000 + "}]}",  # an int beyond Python's digit limit
        '{"jobs": [{"read": 5}]}',  # a side that is not an object
        '{"jobs": [{"read": {"total_ios": 1, "clat_ns": []}}]}',
        '{"jobs": [{"read": {"total_ios": 1, "iops": 1, "runtime": 1, "lat_ns": {"mean": 1}, '
        '"clat_ns": {"percentile": [1]}}, "usr_cpu": 1, "sys_cpu": 1, "ctx": 1}]}',
        '{"jobs": [{"read": {"total_ios": 1, "iops": 1, "runtime": 1, "lat_ns": {"mean": 1}}, '
        '"usr_cpu": 1, "sys_cpu": 1, "ctx": -5}]}',
        "[" * 100_000 + "]" * 100_000,
        "{" * 100_000,
    ],
    ids=[
        "brace-digits",
        "huge-int",
        "side-int",
        "clat-list",
        "percentile-list",
        "ctx-negative",
        "deep-list",
        "deep-brace",
    ],
)
def test_fio_parse_known_bad_outputs(text: str) -> None:
    for rw in (Op.READ, Op.WRITE):
        check_fio(text, rw)


def test_real_fio_json_parses(tmp_path: Path, fio: str) -> None:
    data = tmp_path / "F"
    data.write_bytes(bytes(range(256)) * (4 << 20 >> 8))
    out = subprocess.run(
        [
            fio,
            "--output-format=json",
            "--name=x",
            f"--filename={data}",
            "--size=4m",
            "--rw=randread",
            "--bs=4k",
            "--direct=1",
            "--ioengine=psync",
            "--runtime=1",
            "--time_based",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    result = parse(out.stdout, RunKey.of("CP", 1, Op.READ, 1))
    assert result.ios > 0 and result.iops > 0 and result.lat_mean_us > 0
    assert 0.5 < result.runtime_s < 5
    assert 0 < result.lat_p50_us <= result.lat_p99_us <= result.lat_p999_us
    with pytest.raises(DpasError):  # nothing was written
        parse(out.stdout, RunKey.of("CP", 1, Op.WRITE, 1))


# -- the knob journal -----------------------------------------------------------------------

GOOD_JOURNAL: dict[str, Any] = {
    "schema": JOURNAL_SCHEMA,
    "queue_dir": "/sys/block/nvme0n1/queue",
    "knobs": {"pas_enabled": "0"},
    "pid": 1,
    "time": 0.0,
}
KNOB_NAME = re.compile(r"[A-Za-z0-9_]{1,64}")
DEEP = b"[" * 100_000 + b"]" * 100_000

bad_names = st.one_of(
    st.sampled_from(
        ["", "/", "a/b", "..", ".", "../pas_enabled", "x" * 65, "x" * 10_000, "pas_enabled\n"]
    ),
    st.sampled_from(["pas enabled", "pas-enabled", "\0", "ä", "٣", "/etc/passwd"]),
    st.text(max_size=80),
)
bad_values = st.one_of(
    st.sampled_from(["0\n", "\n", "1\n0", "x" * 5000, 0, 1.5, None, True, [], {}, ["0"]]),
    st.text(max_size=30),
    json_values,
)
knob_maps = st.one_of(
    st.dictionaries(bad_names, st.sampled_from(["0", "1", "-1"]), max_size=3),
    st.dictionaries(st.sampled_from(["pas_enabled", "io_poll_delay"]), bad_values, max_size=3),
    st.dictionaries(bad_names, bad_values, max_size=3),
    weird,
)
queue_dirs = st.one_of(
    st.sampled_from(["", "queue", "./queue", "sys/block/x/queue", "/a\0b", "~/q", "/", "/.."]),
    st.text(max_size=40),
    weird,
)
near_journal = st.builds(
    pruned,
    st.fixed_dictionaries(
        {
            "schema": maybe(JOURNAL_SCHEMA),
            "queue_dir": maybe(GOOD_JOURNAL["queue_dir"], queue_dirs, 4),
            "knobs": maybe(GOOD_JOURNAL["knobs"], knob_maps, 8),
            "pid": maybe(1),
            "time": maybe(0.0),
        }
    ),
)


def check_journal(path: Path) -> None:
    try:
        queue_dir, knobs = read_journal(path)
    except KnobError as err:
        message = str(err)
        assert any(s in message for s in ("is corrupt", "unreadable", "no such file")), message
        return
    assert isinstance(queue_dir, Path) and queue_dir.is_absolute()
    assert "\0" not in str(queue_dir)
    assert isinstance(knobs, dict) and knobs
    for name, value in knobs.items():
        assert isinstance(name, str) and KNOB_NAME.fullmatch(name), name
        assert isinstance(value, str) and "\n" not in value


@pytest.fixture(scope="module")
def journal_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("journals")


@FUZZ
@given(raw=st.binary(max_size=2000))
def test_read_journal_arbitrary_bytes(raw: bytes, journal_dir: Path) -> None:
    path = journal_dir / "bytes.json"
    path.write_bytes(raw)
    check_journal(path)


@FUZZ
@given(value=json_values)
def test_read_journal_arbitrary_json(value: Any, journal_dir: Path) -> None:
    path = journal_dir / "json.json"
    path.write_text(json.dumps(value))
    check_journal(path)


@FUZZ
@given(record=near_journal)
def test_read_journal_near_valid(record: dict[str, Any], journal_dir: Path) -> None:
    path = journal_dir / "near.json"
    path.write_text(json.dumps(record))
    check_journal(path)


@pytest.mark.parametrize(
    "raw",
    [
        DEEP,
        b'{"queue_dir": "/q", "knobs": ' + DEEP + b"}",
        b'{"queue_dir": "/q", "knobs": {"pas_enabled": ' + b"9" * 5000 + b"}}",
        b" " * ((1 << 20) + 10),
        b"\xff\xfe{}",
        b'{"queue_dir": "/q", "knobs": {"pas_enabled": "0"}}\x00',
    ],
    ids=["deep", "deep-knobs", "huge-int", "over-1MiB", "not-utf8", "trailing-nul"],
)
def test_read_journal_known_bad(raw: bytes, tmp_path: Path) -> None:
    path = tmp_path / "j.json"
    path.write_bytes(raw)
    with pytest.raises(KnobError, match="is corrupt"):
        read_journal(path)


def test_read_journal_accepts_a_good_one(tmp_path: Path) -> None:
    path = tmp_path / "j.json"
    path.write_text(json.dumps(GOOD_JOURNAL))
    assert read_journal(path) == (Path(GOOD_JOURNAL["queue_dir"]), {"pas_enabled": "0"})


def test_read_journal_missing_and_folder(tmp_path: Path) -> None:
    with pytest.raises(KnobError, match="no such file"):
        read_journal(tmp_path / "missing.json")
    with pytest.raises(KnobError, match="unreadable"):
        read_journal(tmp_path)


CORRUPT_JOURNALS = {
    "object": b"{}",
    "list": b"[]",
    "null": b"null",
    "binary": bytes(range(256)),
    "queue-dir-int": json.dumps({**GOOD_JOURNAL, "queue_dir": 5}).encode(),
    "queue-dir-relative": json.dumps({**GOOD_JOURNAL, "queue_dir": "sys/queue"}).encode(),
    "knobs-list": json.dumps({**GOOD_JOURNAL, "knobs": ["pas_enabled"]}).encode(),
    "knob-value-int": json.dumps({**GOOD_JOURNAL, "knobs": {"pas_enabled": 0}}).encode(),
    "knob-name-path": json.dumps({**GOOD_JOURNAL, "knobs": {"../../etc/x": "0"}}).encode(),
    "knob-value-newline": json.dumps({**GOOD_JOURNAL, "knobs": {"pas_enabled": "0\n1"}}).encode(),
    "deep": DEEP,
}


@pytest.mark.parametrize("raw", CORRUPT_JOURNALS.values(), ids=CORRUPT_JOURNALS.keys())
def test_restore_refuses_a_corrupt_journal_and_keeps_it(raw: bytes, tmp_path: Path) -> None:
    journal = tmp_path / "journal.json"
    journal.write_bytes(raw)
    out = run_dpas("restore", "--journal", str(journal), timeout=60)
    assert out.returncode == 2, out.stderr
    assert out.stderr.startswith("dpas: error: ")
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "Traceback" not in out.stderr and out.stdout == ""
    assert "is corrupt" in out.stderr and "inspect it, then delete it" in out.stderr
    assert str(journal) in out.stderr
    assert journal.read_bytes() == raw


@pytest.mark.parametrize(
    "queue_dir",
    ["/etc", "/sys/block/nvme0n1", "/sys/block/../../etc/queue", "/tmp/x/queue", "queue"],
)
def test_a_journal_may_only_name_a_queue_folder(tmp_path: Path, queue_dir: str) -> None:
    """restore writes every knob it names into queue_dir: /etc/passwd must be out of reach."""
    journal = tmp_path / "j.json"
    journal.write_text(json.dumps({"queue_dir": queue_dir, "knobs": {"passwd": "x"}}))
    with pytest.raises(KnobError, match="is corrupt: queue_dir is not an absolute path"):
        read_journal(journal)
