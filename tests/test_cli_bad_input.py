"""Bad input on the command line: exit code 2, one line naming the input, and nothing run.

Every case runs the real ``dpas`` process. A case that got past validation would start a
simulation, fio or QEMU; the tests check that nothing was written or created instead of
timing the run.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import run_dpas

#: 2^70: beyond every integer range dpas takes (and beyond int64)
HUGE = "1180591620717411303424"


def assert_refused(out: subprocess.CompletedProcess[str], *names: str) -> None:
    """The promise: exit 2, one line on stderr starting 'dpas: error: ' that names the input."""
    assert out.returncode == 2, (out.returncode, out.stderr[-2000:])
    assert out.stderr.startswith("dpas: error: "), out.stderr[-2000:]
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr[-2000:]
    assert "Traceback" not in out.stderr
    assert out.stdout == "", out.stdout[-2000:]
    for name in names:
        assert name in out.stderr, (name, out.stderr)


def assert_nothing_written(out_dir: Path) -> None:
    for name in ("results.json", "results.csv", "bench.png"):
        assert not (out_dir / name).is_file(), name


# -- dpas bench on the simulator ------------------------------------------------------------

SIM_CASES = {
    # words: modes, R or W, and a repeat count in ASCII digits
    "superscript-two": (["²"], ["'²'", "repeat count"]),
    "arabic-indic-three": (["٣"], ["'٣'", "repeat count"]),
    "repeat-word-1e20": (["100000000000000000000"], ["repeat count", "1000"]),
    "repeat-word-1001": (["1001"], ["repeat count 1001", "1000"]),
    "repeat-word-0": (["0"], ["repeat count 0"]),
    "seed-negative": (["--seed", "-1"], ["--seed", "-1", "18446744073709551615"]),
    "seed-nan": (["--seed", "nan"], ["--seed", "nan"]),
    "seed-fraction": (["--seed", "1.5"], ["--seed", "1.5"]),
    "runtime-nan": (["--runtime", "nan"], ["--runtime", "nan"]),
    "runtime-inf": (["--runtime", "inf"], ["--runtime", "inf"]),
    "runtime-negative": (["--runtime", "-1"], ["--runtime", "-1"]),
    "runtime-zero": (["--runtime", "0"], ["--runtime", "0"]),
    "runtime-over-sim-limit": (["--runtime", "7200"], ["--runtime", "7200", "3600"]),
    "ios-zero": (["--ios", "0"], ["--ios", "0"]),
    "ios-2e9": (["--ios", "2000000000"], ["--ios", "2000000000", "1000000000"]),
    "d-init-2^70": (["--d-init", HUGE], ["--d-init", HUGE, "4294967295"]),
    "d-init-zero": (["--d-init", "0"], ["--d-init", "0"]),
    "d-init-negative": (["--d-init", "-5"], ["--d-init", "-5"]),
    "d-init-u32-plus-1": (["--d-init", "4294967296"], ["--d-init", "4294967296", "4294967295"]),
    "d-init-superscript": (["--d-init", "²"], ["--d-init", "²"]),
    "param5-2^70": (["--param5", HUGE], ["--param5", HUGE, "2147483647"]),
    "param1-minus-2": (["--param1", "-2"], ["--param1", "-2"]),
    "param3-nan": (["--param3", "nan"], ["--param3", "nan"]),
    "repeat-1e20": (["--repeat", "1e20"], ["--repeat", "1e20", "1000"]),
    "repeat-1001": (["--repeat", "1001"], ["--repeat", "1001", "1000"]),
    "repeat-superscript": (["--repeat", "²"], ["--repeat", "²"]),
    "jobs-1e10": (["--jobs", "10000000000"], ["--jobs", "10000000000", "4096"]),
    "jobs-zero": (["--jobs", "0"], ["--jobs", "0"]),
    "jobs-4097": (["--jobs", "4097"], ["--jobs", "4097", "4096"]),
    "jobs-65-counts": (["--jobs", ",".join(["1"] * 65)], ["--jobs", "65", "64"]),
    "jobs-range": (["--jobs", "1..20000"], ["--jobs", "1..20000"]),
    "jobs-empty": (["--jobs", ""], ["--jobs"]),
    "jobs-arabic-indic": (["--jobs", "1,٣"], ["--jobs"]),
}


@pytest.mark.parametrize("args, names", SIM_CASES.values(), ids=SIM_CASES.keys())
def test_bench_refuses_bad_numbers(args: list[str], names: list[str], tmp_path: Path) -> None:
    out_dir = tmp_path / "out"
    out = run_dpas("bench", *args, "--out", str(out_dir))
    assert_refused(out, *names)
    assert_nothing_written(out_dir)


def _results_json_is_a_folder(tmp_path: Path) -> Path:
    (tmp_path / "out" / "results.json").mkdir(parents=True)
    return tmp_path / "out"


def _under_a_regular_file(tmp_path: Path) -> Path:
    (tmp_path / "file").write_text("not a folder")
    return tmp_path / "file" / "out"


OUT_CASES = {
    "results-json-is-a-folder": _results_json_is_a_folder,
    "proc-sys": lambda tmp_path: Path("/proc/sys"),
    "sys-kernel": lambda tmp_path: Path("/sys/kernel"),
    "under-a-regular-file": _under_a_regular_file,
}


@pytest.mark.parametrize("where", OUT_CASES.values(), ids=OUT_CASES.keys())
def test_bench_refuses_an_unwritable_out_before_any_run(
    where: Callable[[Path], Path], tmp_path: Path
) -> None:
    out_dir = where(tmp_path)
    out = run_dpas("bench", "--out", str(out_dir))
    assert_refused(out, "--out", str(out_dir))
    assert_nothing_written(out_dir)
    folder = tmp_path / "out" / "results.json"
    assert not folder.exists() or (folder.is_dir() and list(folder.iterdir()) == [])
    file = tmp_path / "file"
    assert not file.exists() or file.read_text() == "not a folder"


# -- options the chosen backend would ignore --------------------------------------------------

SIM_ONLY = {
    "ios": ["--ios", "5"],
    "profile": ["--profile", "qemu-lab"],
    "seed": ["--seed", "3"],
    "order": ["--order", "guide"],
}


@pytest.mark.parametrize("args", SIM_ONLY.values(), ids=SIM_ONLY.keys())
def test_bench_refuses_simulator_options_with_device(args: list[str], tmp_path: Path) -> None:
    device = tmp_path / "device.img"
    out_dir = tmp_path / "out"
    out = run_dpas("bench", "--device", str(device), *args, "--out", str(out_dir))
    assert_refused(out, args[0], "--device")
    assert not device.exists()
    assert_nothing_written(out_dir)


REAL_ONLY = {
    "size": ["--size", "1g"],
    "destroy-data": ["--destroy-data"],
    "fio": ["--fio", "/bin/true"],
    "journal": ["--journal", "X"],
    "sysfs-root": ["--sysfs-root", "X"],
    "ioengine": ["--ioengine", "sync"],
}


@pytest.mark.parametrize("args", REAL_ONLY.values(), ids=REAL_ONLY.keys())
def test_bench_refuses_real_run_options_without_device(
    args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # --journal X and --sysfs-root X are relative: nothing made
    out_dir = tmp_path / "out"
    out = run_dpas("bench", *args, "--out", str(out_dir))
    assert_refused(out, args[0], "--device")
    assert_nothing_written(out_dir)
    assert not (tmp_path / "X").exists()


# -- dpas bench --device: what it names and how much of it ----------------------------------


def test_bench_refuses_an_empty_device(tmp_path: Path) -> None:
    out = run_dpas("bench", "--device", "", "--out", str(tmp_path / "out"))
    assert_refused(out, "--device")


def test_bench_refuses_a_folder_as_device(tmp_path: Path) -> None:
    folder = tmp_path / "folder"
    folder.mkdir()
    out = run_dpas("bench", "--device", str(folder), "--out", str(tmp_path / "out"))
    assert_refused(out, "--device", str(folder))
    assert list(folder.iterdir()) == []


def test_bench_never_creates_a_bare_device_name_in_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    out = run_dpas("bench", "--device", "nvme9n9", "--out", str(tmp_path / "out"))
    assert_refused(out, "--device", "nvme9n9")
    assert list(cwd.iterdir()) == []


SIZE_CASES = {"zero": "0", "2t": "2t", "lots": "lots"}


@pytest.mark.parametrize("size", SIZE_CASES.values(), ids=SIZE_CASES.keys())
def test_bench_refuses_a_bad_size(size: str, tmp_path: Path) -> None:
    device = tmp_path / "device.img"
    out = run_dpas("bench", "--device", str(device), "--size", size, "--out", str(tmp_path / "out"))
    assert_refused(out, "--size", size)
    assert not device.exists()


def test_bench_refuses_a_block_size_of_partial_sectors(tmp_path: Path) -> None:
    """fio's direct I/O takes whole 512-byte sectors: 1000 must be refused as parsed, not
    after dpas has created and filled the file and fio has failed on it."""
    device = tmp_path / "device.img"
    out_dir = tmp_path / "out"
    out = run_dpas(
        "bench",
        "INT",
        "--jobs",
        "1",
        "--runtime",
        "1",
        "--device",
        str(device),
        "--bs",
        "1000",
        "--size",
        "1m",
        "--sysfs-root",
        str(tmp_path / "sys"),  # no real queue knob is ever touched
        "--journal",
        str(tmp_path / "journal.json"),
        "--out",
        str(out_dir),
    )
    assert not device.exists(), "created and filled before --bs was checked"
    assert_refused(out, "--bs", "1000", "512")
    assert_nothing_written(out_dir)


# -- dpas vm bench: refused before anything is fetched or booted ----------------------------

VM_CASES = {
    "cpus-1e8": (["--cpus", "100000000"], ["--cpus", "100000000", "64"]),
    "cpus-zero": (["--cpus", "0"], ["--cpus", "0"]),
    "memory-1T": (["--memory", "1T"], ["--memory", "1T", "64G"]),
    "memory-lots": (["--memory", "lots"], ["--memory", "lots"]),
    "runtime-nan": (["--runtime", "nan"], ["--runtime", "nan"]),
    "repeat-zero": (["--repeat", "0"], ["--repeat", "0"]),
    "jobs-5000": (["--jobs", "5000"], ["--jobs", "5000", "4096"]),
    "out-proc-sys": (["--out", "/proc/sys"], ["--out", "/proc/sys"]),
}


@pytest.mark.parametrize("args, names", VM_CASES.values(), ids=VM_CASES.keys())
def test_vm_bench_refuses_bad_input_before_booting(
    args: list[str], names: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a qemu that leaves a mark: the real one must not even be looked for
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    booted = tmp_path / "qemu-started"
    qemu = bin_dir / "qemu-system-x86_64"
    qemu.write_text(f"#!/bin/sh\ntouch '{booted}'\nexit 1\n")
    qemu.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    cache = tmp_path / "cache"
    out_dir = tmp_path / "out"
    out = run_dpas("vm", "bench", "--cache", str(cache), "--out", str(out_dir), *args)
    assert_refused(out, *names)
    assert not booted.exists()
    assert not cache.exists()  # no kernel fetched, no initramfs or drive built
    assert_nothing_written(out_dir)


# -- dpas restore ---------------------------------------------------------------------------


def test_restore_refuses_a_folder_as_journal(tmp_path: Path) -> None:
    folder = tmp_path / "journal"
    folder.mkdir()
    out = run_dpas("restore", "--journal", str(folder))
    assert_refused(out, str(folder))
    assert folder.is_dir() and list(folder.iterdir()) == []


def test_restore_of_a_missing_journal_has_nothing_to_restore(tmp_path: Path) -> None:
    journal = tmp_path / "missing.json"
    out = run_dpas("restore", "--journal", str(journal))
    assert_refused(out, str(journal), "nothing to restore")
    assert not journal.exists()


def test_restore_of_a_fifo_journal_does_not_hang(tmp_path: Path) -> None:
    fifo = tmp_path / "journal.json"
    os.mkfifo(fifo)
    out = run_dpas("restore", "--journal", str(fifo), timeout=30)
    assert_refused(out, str(fifo))
