"""Profiles: every key typed and ranged, unknown keys and tables refused, the shipped one loads."""

from __future__ import annotations

import re
import subprocess
from dataclasses import fields
from pathlib import Path

import pytest
from conftest import run_dpas

from dpas.sim.profile import RANGES, SECTIONS, ProfileError, load, parse

LAB = Path(__file__).parents[1] / "src/dpas/sim/profiles/qemu-lab.toml"


def lab_text() -> str:
    return LAB.read_text()


def with_value(section: str, key: str, value: str) -> str:
    """The lab profile with ``key`` of ``[section]`` set to ``value`` (TOML text)."""
    text = lab_text()
    head, sep, body = text.partition(f"[{section}]\n")
    body, count = re.subn(rf"^{key} = .*$", f"{key} = {value}", body, count=1, flags=re.M)
    assert sep and count == 1, (section, key)
    return head + sep + body


def test_the_shipped_profile_loads_unchanged() -> None:
    lab = load("qemu-lab")
    assert lab.name == "qemu-lab" and lab.device.read_ns == 21200 and lab.pitfalls.poll_queues
    assert parse(lab_text(), "x.toml") == lab.__class__(**{**vars_of(lab), "name": "qemu-lab"})


def vars_of(profile: object) -> dict[str, object]:
    return {f.name: getattr(profile, f.name) for f in fields(profile)}  # type: ignore[arg-type]


def test_every_number_has_a_range() -> None:
    numbers = {
        (name, f.name) for name, cls in SECTIONS.items() for f in fields(cls) if f.type != "bool"
    }
    assert numbers == set(RANGES)


@pytest.mark.parametrize(
    ("section", "key", "value", "after"),
    [
        ("device", "serial_cv", "nan", "nan: expected float from 0 to 10"),
        ("device", "cv", "inf", "inf: expected float from 0 to 10"),
        ("device", "tail_p", "2.0", "2.0: expected float from 0 to 1 (a probability)"),
        ("device", "tail_p", "-0.1", "-0.1: expected float from 0 to 1"),
        ("device", "tail_x", "0.5", "0.5: expected float from 1 to 1_000"),
        ("device", "read_ns", str(2**63 - 1), "9223372036854775807: expected int from 1_000"),
        ("device", "read_ns", "0", "0: expected int from 1_000 to 10_000_000_000"),
        ("device", "write_ns", "21200.5", "21200.5: expected int"),
        ("device", "parallelism", "0", "0: expected int from 1 to 65_536"),
        ("device", "parallelism", "65537", "65537: expected int from 1 to 65_536"),
        ("device", "bandwidth_mb_s", "0.0", "0.0: expected float from 1 to 10_000_000"),
        ("device", "bandwidth_mb_s", "inf", "inf: expected float"),
        ("host", "cpus", "0", "0: expected int from 1 to 4_096"),
        ("host", "cpus", "4097", "4097: expected int from 1 to 4_096"),
        ("host", "cpus", "true", "true: expected int"),
        ("host", "submit_ns", "-1", "-1: expected int from 0 to 10_000_000_000"),
        ("host", "poll_ns", "10_000_000_001", "10000000001: expected int from 0"),
        ("host", "sched_latency_ns", "0", "0: expected int from 100_000 to 1_000_000_000"),
        ("host", "wakeup_preempt", "1", "1: expected bool"),
        ("timer", "arm_sd_ns", "nan", "nan: expected int"),
        ("timer", "isr_ns", "'fast'", "'fast': expected int"),
        ("pitfalls", "io_poll_delay", "-7", "-7: expected int from -1 to 2_147_483_647"),
        ("pitfalls", "io_poll_delay", str(2**31), "2147483648: expected int from -1"),
        ("pitfalls", "queue_stats", "'no'", "'no': expected bool"),
    ],
)
def test_every_key_is_typed_and_ranged(section: str, key: str, value: str, after: str) -> None:
    """serial_cv = nan, tail_p = 2.0, io_poll_delay = -7 and read_ns = 2**63-1 all loaded."""
    message = f"profile x.toml: [{section}] {key} = {after}"
    with pytest.raises(ProfileError, match="^" + re.escape(message)):
        parse(with_value(section, key, value), "x.toml")


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("device", "tail_p", "0.0"),
        ("device", "tail_p", "1"),  # a TOML int where a float is wanted
        ("device", "serial_cv", "0.0"),
        ("pitfalls", "io_poll_delay", "-1"),
        ("pitfalls", "io_poll_delay", "2147483647"),
        ("host", "poll_ns", "0"),
    ],
)
def test_values_at_the_limits_load(section: str, key: str, value: str) -> None:
    profile = parse(with_value(section, key, value), "x.toml")
    assert getattr(getattr(profile, section), key) == float(value)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t + "\n[extra]\nx = 1\n", r"unknown table \[extra\] \(known: name, descr"),
        (lambda t: "speed = 3\n" + t, r"unknown key 'speed'"),
        (lambda t: t.replace('name = "qemu-lab"', "name = 3"), r"name = 3: expected a string"),
        (lambda t: t.replace("[timer]", "[timer]\nfoo = 1"), r"\[timer\] has no key 'foo'"),
        (lambda t: t.replace("[pitfalls]", "[[pitfalls]]"), r"\[pitfalls\] is missing"),
        (lambda t: "a = " + "[" * 5000 + "]" * 5000 + "\n" + t, r"nested too deeply"),
        (lambda t: t.replace("cv = 0.05", "cv = 0.05.1"), r"profile x.toml: .*line"),
    ],
)
def test_unknown_and_malformed_tables_are_refused(edit, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ProfileError, match=message):
        parse(edit(lab_text()), "x.toml")


def test_an_unreadable_profile_file_is_a_profile_error(tmp_path: Path) -> None:
    binary = tmp_path / "b.toml"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ProfileError, match="not a UTF-8 text file"):
        load(str(binary))
    with pytest.raises(ProfileError, match="not a file or a shipped profile"):
        load("a\x00b")


def assert_one_line_error(out: subprocess.CompletedProcess[str], *words: str) -> None:
    assert out.returncode == 2, out.stderr
    assert out.stdout == "" and "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dpas: error: "), out.stderr
    for word in words:
        assert word in lines[0]


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("device", "serial_cv", "nan"),
        ("device", "tail_p", "2.0"),
        ("pitfalls", "io_poll_delay", "-7"),
        ("device", "read_ns", str(2**63 - 1)),
        ("host", "cpus", "0"),
    ],
)
def test_bench_refuses_a_bad_profile_before_running(
    tmp_path: Path, section: str, key: str, value: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(with_value(section, key, value))
    out = run_dpas("bench", "--profile", str(path), "--out", str(tmp_path / "out"), timeout=60)
    assert_one_line_error(out, f"profile {path}: [{section}] {key} = ", "expected")
    out_dir = tmp_path / "out"  # bench makes the folder first; nothing is run into it
    assert not out_dir.exists() or not any(out_dir.iterdir())


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\xff\xfe", "not a UTF-8 text file"),
        (b"[device\n", "profile"),
        (b"x = 1\n", "unknown key 'x'"),
    ],
)
def test_bench_refuses_an_unreadable_profile(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_bytes(content)
    out = run_dpas("bench", "--profile", str(path), "--out", str(tmp_path / "out"), timeout=60)
    assert_one_line_error(out, message)
