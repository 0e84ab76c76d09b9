"""Bad input on the command line: exit code 2, one line naming the input, and nothing run.

Every case runs the real ``dpas`` process. A case that got past validation would start a
simulation, fio or QEMU; the tests check that nothing was written or created instead of
timing the run.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import run_dpas

from dpas.sweep import dataset

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
    "runtime-1e-300": (["--runtime", "1e-300"], ["--runtime", "1e-300", "0.001"]),
    "runtime-below-one-io": (["--runtime", "0.0009"], ["--runtime", "0.0009", "0.001"]),
    "bs-fio-kib": (["--bs", "4KiB"], ["--bs", "4KiB", "4000 bytes", "512"]),
    "bs-fraction": (["--bs", "4.5k"], ["--bs", "4.5k", "4k"]),
    "bs-unknown-suffix": (["--bs", "8x"], ["--bs", "8x"]),
    "bs-128m": (["--bs", "128m"], ["--bs", "128m", "64m"]),
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
    "runtime-1e-300": (["--runtime", "1e-300"], ["--runtime", "1e-300", "0.001"]),
    "bs-8x": (["--bs", "8x"], ["--bs", "8x"]),
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


# -- a runtime below what its backend can time (issue 28) ------------------------------------


@pytest.mark.parametrize(
    "command",
    [["tune"], ["validate"], ["bench", "--device", "DEVICE"], ["bench", "--device", "DEVICE",
     "--engine", "dpas"]],
    ids=["tune", "validate", "bench-fio", "bench-engine"],
)  # fmt: skip
def test_a_runtime_below_the_backends_floor_is_refused(command: list[str], tmp_path: Path) -> None:
    device = tmp_path / "device.img"
    argv = [str(device) if a == "DEVICE" else a for a in command]
    out = run_dpas(*argv, "--runtime", "1e-300", "--out", str(tmp_path / "out"))
    assert_refused(out, "--runtime", "1e-300", "0.001")
    assert not device.exists()
    assert_nothing_written(tmp_path / "out")


def test_a_grid_runtime_below_the_floor_is_refused(tmp_path: Path) -> None:
    grid = tmp_path / "grid.toml"
    grid.write_text("runtime = 1e-300\n")
    out = run_dpas("sweep", str(grid), "--out", str(tmp_path / "out"))
    assert_refused(out, "runtime = 1e-300", "0.001")
    assert not (tmp_path / "out").exists()


# -- fio's size words ------------------------------------------------------------------------


def test_bench_takes_fio_size_words(tmp_path: Path) -> None:
    out_dir = tmp_path / "out"
    out = run_dpas(
        "bench", "INT", "--jobs", "1", "--runtime", "0.01", "--bs", "8k", "--out", str(out_dir)
    )
    assert out.returncode == 0, out.stderr
    document = json.loads((out_dir / "results.json").read_text())
    assert document["config"]["bs"] == 8192
    assert "bs 8k > 4k" in out.stdout  # printed as typed, not 8192


def test_a_bad_size_word_names_it(tmp_path: Path) -> None:
    device = tmp_path / "device.img"
    out = run_dpas(
        "bench", "--device", str(device), "--size", "1.5g", "--out", str(tmp_path / "out")
    )
    assert_refused(out, "--size", "1.5g", "1t")
    assert not device.exists()


# -- dpas sweep: schedulers, grids, figures, a full disk -------------------------------------

SMALL_GRID = 'mode = "INT"\nruntime = 0.01\n'


@pytest.mark.parametrize(
    "address",
    ["tcp://localhost:notaport", "tcp://[::1:5", "tcp://localhost", "tcp://:8786",
     "tcp://localhost:0", "tcp://localhost:8786/path"],
)  # fmt: skip
def test_a_malformed_scheduler_address_is_refused(address: str, tmp_path: Path) -> None:
    grid = tmp_path / "grid.toml"
    grid.write_text(SMALL_GRID)
    out = run_dpas("sweep", str(grid), "--out", str(tmp_path / "out"), "--scheduler", address)
    assert_refused(out, f"--scheduler {address}", "tcp://HOST:PORT")
    assert not (tmp_path / "out").exists()


@contextlib.contextmanager
def _not_dask(banner: bytes) -> Iterator[int]:
    """A TCP service that is not dask on a free port: it sends ``banner`` to whoever
    connects (an SSH server's greeting, or nothing) and keeps the connection open."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    stop = threading.Event()
    held: list[socket.socket] = []

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            conn.sendall(banner)
            held.append(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        server.close()


@pytest.mark.parametrize(
    "banner", [b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n", b""], ids=["ssh-banner", "silent"]
)
def test_a_scheduler_address_where_something_else_answers_is_refused(
    banner: bytes, tmp_path: Path
) -> None:
    grid = tmp_path / "grid.toml"
    grid.write_text(SMALL_GRID)
    with _not_dask(banner) as port:
        address = f"tcp://127.0.0.1:{port}"
        out = run_dpas(
            "sweep", str(grid), "--out", str(tmp_path / "out"), "--scheduler", address,
            timeout=60,
        )  # fmt: skip
    assert_refused(out, f"--scheduler {address}", "dask")
    assert "EiB" not in out.stderr
    assert not (tmp_path / "out" / "sweep.json").exists()


@pytest.mark.parametrize("depth", [5000, 300])
def test_a_grid_nested_thousands_deep_is_one_line(depth: int, tmp_path: Path) -> None:
    grid = tmp_path / "grid.toml"
    grid.write_text("jobs = " + "[" * depth + "1" + "]" * depth + "\n")
    out = run_dpas("sweep", str(grid), "--out", str(tmp_path / "out"))
    assert_refused(out, str(grid), "nested too deeply")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "figure", [["--heatmap", "jobs,param2"], ["--front"]], ids=["heatmap", "front"]
)
def test_a_figure_of_a_sweep_whose_points_were_all_refused(
    figure: list[str], tmp_path: Path
) -> None:
    """Every point refused (HYB is not simulated): the rows are saved, then one line says
    there is nothing to draw (exit 2), and no empty figure is written."""
    grid, out_dir = tmp_path / "grid.toml", tmp_path / "out"
    grid.write_text('mode = "HYB"\njobs = [1, 2]\nparam2 = [5, 10]\nruntime = 0.01\n')
    out = run_dpas("sweep", str(grid), "--out", str(out_dir), "--workers", "1", *figure)
    assert out.returncode == 2, out.stderr
    assert out.stderr.startswith(f"dpas: error: {figure[0]}: nothing to draw")
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr
    rows = dataset.read(out_dir / "points")
    assert len(rows) == 4 and all(r["refused"] for r in rows)
    assert not (out_dir / "heatmap.png").exists() and not (out_dir / "front.png").exists()


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 12 KiB tmpfs: room for a sweep's grid.toml and sweep.json, not for its first part."""
    where = tmp_path / "tiny"
    where.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=12k", "tmpfs", str(where)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=True)


def test_a_full_disk_during_a_sweep_is_one_line_and_leaves_no_part(tiny_disk: Path) -> None:
    grid = tiny_disk.parent / "grid.toml"
    grid.write_text('mode = ["INT", "CP", "DPAS", "PAS"]\njobs = [1, 2, 4, 8]\nruntime = 0.05\n')
    out_dir = tiny_disk / "out"
    out = run_dpas("sweep", str(grid), "--out", str(out_dir), "--workers", "1")
    assert out.returncode == 2, out.stderr
    assert out.stderr.startswith(f"dpas: error: {out_dir / 'points'}/part-00000.parquet")
    assert "No space left on device" in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    left = [p.name for d in ("points", "records") for p in (out_dir / d).iterdir()]
    assert left == []  # no .tmp part, and no records without their part


# -- dpas restore: a knob that is a FIFO ------------------------------------------------------


def test_restore_of_a_fifo_knob_does_not_hang(tmp_path: Path) -> None:
    queue = tmp_path / "sys" / "block" / "nvme9n1" / "queue"
    queue.mkdir(parents=True)
    os.mkfifo(queue / "scheduler")
    journal = tmp_path / "journal.json"
    record = {"schema": "dpas.knobs-journal/1", "queue_dir": str(queue), "knobs": {"scheduler": "none"}}  # fmt: skip
    journal.write_text(json.dumps(record))
    out = run_dpas("restore", "--journal", str(journal), timeout=30)
    assert_refused(out, "scheduler", "not a regular file", str(journal))
    assert journal.exists()  # kept: its values are not back


# -- dpas doctor: a device that names nothing -------------------------------------------------


@pytest.mark.parametrize("device", ["", " ", ".", ".."], ids=["empty", "blank", "dot", "dotdot"])
def test_doctor_refuses_a_device_that_names_nothing(device: str, tmp_path: Path) -> None:
    (tmp_path / "sys" / "block" / "nvme0n1").mkdir(parents=True)
    out = run_dpas("doctor", device, "--sysfs-root", str(tmp_path / "sys"))
    assert_refused(out, f"device {device!r}", "block device")
