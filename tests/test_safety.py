"""The promises about data and knobs, tried as a user meets them: real processes, real
signals, a sysfs root and a stand-in fio made here, real fio on real files, loop devices."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import need, run_dpas

from dpas.bench.backend import Sweep
from dpas.errors import DpasError
from dpas.machine.fio import FioError
from dpas.policy import Method, Op
from dpas.real import fio_runs as runner_module
from dpas.real.executor import LocalExecutor
from dpas.real.guard import find_holes
from dpas.real.lock import DeviceLock
from dpas.real.modes import Refused
from dpas.real.runner import Runner
from dpas.real.site import RealConfig, Site

DPAS_KNOBS = {
    "io_poll": "1",
    "io_poll_delay": "-1",
    "nomerges": "0",
    "pas_enabled": "0",
    "pas_adaptive_enabled": "0",
    "pas_d_init": "100",
    "switch_enabled": "0",
    "ehp_enabled": "0",
    **{f"switch_param{i}": "0" for i in range(1, 8)},
}

#: what the stand-in fio prints: the keys of fio's JSON that dpas reads
_SIDE = {
    "total_ios": 1000,
    "runtime": 1000,
    "iops": 1000.0,
    "lat_ns": {"mean": 50000.0},
    "clat_ns": {"percentile": {"50.000000": 40000, "99.000000": 90000}},
}
FIO_JSON = {
    "jobs": [
        {
            "error": 0,
            "job_runtime": 1000,
            "usr_cpu": 1.0,
            "sys_cpu": 2.0,
            "ctx": 100,
            "read": _SIDE,
            "write": _SIDE,
        }
    ]
}

FAKE_FIO = f"""#!{sys.executable}
# fio's stand-in: --version, then per FAKE_FIO: ok (JSON), sleep (hangs with a job process), fail
import json, os, sys, time
if "--version" in sys.argv:
    print("fio-3.33")
    sys.exit(0)
log = os.environ["FAKE_FIO_LOG"]
with open(log, "a") as f:
    f.write(f"fio {{os.getpid()}}\\n")
mode = os.environ.get("FAKE_FIO", "ok")
if mode == "sleep":
    child = os.fork()
    if child == 0:
        time.sleep(300)
        os._exit(0)
    with open(log, "a") as f:
        f.write(f"job {{child}}\\n")
    time.sleep(300)
if mode == "fail":
    print("fio: pretend failure: No such device", file=sys.stderr)
    sys.exit(1)
print(json.dumps({json.dumps(FIO_JSON)}))
"""


class Rig:
    """A DPAS kernel's queue on a sysfs root made here, a data file on its disk, a fake fio."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.root = tmp / "sys"
        self.queue = self.root / "block" / "nvme0n1" / "queue"
        self.queue.mkdir(parents=True)
        for name, value in DPAS_KNOBS.items():
            (self.queue / name).write_text(f"{value}\n")
        (self.queue / "switch_stat").write_text("")
        st = tmp.stat()
        links = self.root / "dev" / "block"
        links.mkdir(parents=True)
        (links / f"{os.major(st.st_dev)}:{os.minor(st.st_dev)}").symlink_to("../../block/nvme0n1")
        self.data = tmp / "data"
        self.data.write_bytes(os.urandom(1 << 20))
        self.fio = tmp / "fio"
        self.fio.write_text(FAKE_FIO)
        self.fio.chmod(0o755)
        self.log = tmp / "fio.log"
        self.journal = tmp / "journal.json"
        self.original = self.values()

    def values(self) -> dict[str, str]:
        """Every knob (switch_stat is the kernel's report, not a knob)."""
        return {
            f.name: f.read_text().strip()
            for f in sorted(self.queue.iterdir())
            if f.name != "switch_stat"
        }

    def args(self, *modes: str, journal: Path | None = None) -> list[str]:
        return [
            *modes,
            "--device",
            str(self.data),
            "--sysfs-root",
            str(self.root),
            "--fio",
            str(self.fio),
            "--journal",
            str(journal or self.journal),
            "--d-init",
            "5000",
            "--jobs",
            "1",
            "--runtime",
            "1",
            "--size",
            "1m",
            "--out",
            str(self.tmp / "out"),
        ]

    def env(self, fio: str) -> dict[str, str]:
        return {**os.environ, "FAKE_FIO": fio, "FAKE_FIO_LOG": str(self.log)}

    def bench(self, args: list[str], fio: str = "ok") -> subprocess.CompletedProcess[str]:
        """dpas bench with these arguments, to its end, with the stand-in fio in mode ``fio``."""
        return subprocess.run(
            [sys.executable, "-m", "dpas", "bench", *args],
            env=self.env(fio),
            capture_output=True,
            text=True,
            timeout=60,
        )

    def start(self, *modes: str, fio: str = "sleep", **kw: object) -> subprocess.Popen[str]:
        """dpas bench in the background; returns once fio is running with the knobs set."""
        proc = subprocess.Popen(
            [sys.executable, "-m", "dpas", "bench", *self.args(*modes, **kw)],  # type: ignore[arg-type]
            env=self.env(fio),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.wait_for_fio(proc)
        return proc

    def wait_for_fio(self, proc: subprocess.Popen[str]) -> None:
        """Until the stand-in fio's job process runs (the knobs are set by then)."""
        deadline = time.monotonic() + 60
        while "job " not in (self.log.read_text() if self.log.exists() else ""):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "fio never started"
            time.sleep(0.05)

    def fio_pids(self) -> list[int]:
        return [int(line.split()[1]) for line in self.log.read_text().splitlines()]


def alive(pid: int) -> bool:
    """Running, not a zombie waiting for a reaper."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def gone(pids: list[int], within_s: float = 10) -> bool:
    deadline = time.monotonic() + within_s
    while any(alive(p) for p in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    rig = Rig(tmp_path)
    yield rig
    for pid in rig.fio_pids() if rig.log.exists() else []:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


# -- knobs: every signal, a second signal, two runs, a crash -----------------------------------
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGINT])
def test_a_signal_ends_fio_and_restores_every_knob(rig: Rig, sig: signal.Signals) -> None:
    proc = rig.start("DPAS")
    assert rig.values()["switch_enabled"] == "1" and rig.journal.exists()
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig, err
    assert err.strip().splitlines()[-1] == (
        f"dpas: error: stopped by {sig.name}: fio ended, every knob restored as found"
    )
    assert "Traceback" not in err
    assert rig.values() == rig.original and not rig.journal.exists()
    assert gone(rig.fio_pids()), "fio or its job process outlived the run"


def test_a_storm_of_signals_cannot_cut_the_restore_short(rig: Rig) -> None:
    proc = rig.start("DPAS")
    proc.send_signal(signal.SIGINT)
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            try:
                proc.send_signal(sig)
            except ProcessLookupError:
                break
        time.sleep(0.001)
    _, err = proc.communicate(timeout=60)
    # signals that wait together are handled lowest number first: SIGHUP may be "first"
    named = err.strip().splitlines()[-1].split("stopped by ")[1].split(":")[0]
    assert proc.returncode == 128 + signal.Signals[named], err
    assert rig.values() == rig.original and not rig.journal.exists()


def test_one_run_per_device_and_restore_waits_for_the_live_run(rig: Rig) -> None:
    first = rig.start("DPAS")
    second = run_dpas("bench", *rig.args("DPAS", journal=rig.tmp / "other.json"))
    assert second.returncode == 2
    assert f"in use by another dpas run (pid {first.pid})" in second.stderr
    assert len(second.stderr.strip().splitlines()) == 1
    assert not (rig.tmp / "other.json").exists()
    restore = run_dpas("restore", "--journal", str(rig.journal))
    assert restore.returncode == 2 and f"a live dpas run (pid {first.pid})" in restore.stderr
    assert rig.values()["switch_enabled"] == "1"  # the live run's settings stand
    first.send_signal(signal.SIGTERM)
    first.communicate(timeout=60)
    assert rig.values() == rig.original and not rig.journal.exists()


def test_a_killed_run_with_a_relative_sysfs_root_is_restored_from_anywhere(rig: Rig) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "dpas", "bench", *rig.args("PAS")[:-2], "--out", "out"]
        + ["--sysfs-root", "sys"],
        cwd=rig.tmp,
        env=rig.env("sleep"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    rig.wait_for_fio(proc)
    proc.kill()
    proc.wait()
    assert rig.values()["pas_enabled"] == "1"
    assert Path(json.loads(rig.journal.read_text())["queue_dir"]).is_absolute()
    assert gone(rig.fio_pids()[:1]), "fio outlived a SIGKILLed dpas"
    out = subprocess.run(
        [sys.executable, "-m", "dpas", "restore", "--journal", str(rig.journal)],
        cwd="/",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert rig.values() == rig.original and not rig.journal.exists()


def test_the_lock_is_dropped_when_its_holder_dies(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from dpas.real.lock import DeviceLock\n"
            f"with DeviceLock('k', 'dev', __import__('pathlib').Path({str(tmp_path)!r})):\n"
            "    print('held', flush=True); time.sleep(300)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    lock = DeviceLock("k", "dev", tmp_path)
    assert lock.holder() == holder.pid
    holder.kill()
    holder.wait()
    assert lock.holder() is None
    with lock:
        assert DeviceLock("other", "dev", tmp_path).holder() is None


# -- real-run errors ------------------------------------------------------------------------
def test_a_failing_fio_is_an_error_with_its_message_and_writes_no_zeros(rig: Rig) -> None:
    out = rig.bench(rig.args("DPAS"), "fail")
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1].endswith("fio: pretend failure: No such device")
    assert not (rig.tmp / "out" / "results.json").exists()
    assert rig.values() == rig.original and not rig.journal.exists()


def test_fio_past_its_timeout_is_stopped_and_named(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_FIO", "sleep")
    monkeypatch.setenv("FAKE_FIO_LOG", str(rig.log))
    monkeypatch.setattr(runner_module, "fio_timeout", lambda runtime_s: 2.0)
    config = RealConfig(str(rig.data), fio=str(rig.fio), journal=rig.journal, size=1 << 20)
    sweep = Sweep((Method.PAS,), jobs=(1,), runtime_s=1, d_init_ns=5000)
    runner = Runner(config, LocalExecutor(rig.root, release="5.18.0-dpas"))
    with pytest.raises(FioError, match=r"fio did not finish a 1 s run within 2 s"):
        runner.run(sweep)
    assert rig.values() == rig.original and gone(rig.fio_pids())


@pytest.mark.parametrize("what", ["folder", "not executable", "not fio"])
def test_a_bad_fio_is_one_line(rig: Rig, what: str) -> None:
    bad = rig.tmp / "badfio"
    if what == "folder":
        bad.mkdir()
    else:
        bad.write_text("#!/bin/sh\necho hello\n")
        bad.chmod(0o644 if what == "not executable" else 0o755)
    args = rig.args("DPAS")
    args[args.index("--fio") + 1] = str(bad)
    out = run_dpas("bench", *args)
    assert out.returncode == 2 and out.stderr.startswith(f"dpas: error: --fio {bad}")
    assert len(out.stderr.strip().splitlines()) == 1 and rig.values() == rig.original


def test_an_unwritable_journal_is_one_line_before_any_knob_changes(rig: Rig) -> None:
    args = rig.args("DPAS", journal=Path("/proc/dpas-nowhere/journal.json"))
    out = rig.bench(args, "ok")
    assert out.returncode == 2 and "cannot write the journal" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert rig.values() == rig.original and not rig.log.exists()


SWITCH_LINE = (
    "CPU[ 0] MODE[{mode}] QD[ 0] param1: 0 param2: 10 param3: 10 polled io: {cp}, pas io: 5, "
    "ol io: 0, int io: 0\n"
)


@pytest.mark.parametrize("case", ["folder", "mode 4", "mode 7", "backwards"])
def test_odd_switch_stat_never_gives_a_traceback(rig: Rig, case: str) -> None:
    stat = rig.queue / "switch_stat"
    if case == "folder":
        stat.unlink()
        stat.mkdir()
    elif case == "backwards":  # the stand-in fio resets the counters while it runs
        stat.write_text(SWITCH_LINE.format(mode=2, cp=900000))
        rig.fio.write_text(
            rig.fio.read_text().replace(
                'if mode == "fail"',
                f"open({str(stat)!r}, 'w').write({SWITCH_LINE.format(mode=2, cp=10)!r})\n"
                'if mode == "fail"',
            )
        )
    else:
        stat.write_text(SWITCH_LINE.format(mode=case.split()[1], cp=10))
    out = rig.bench(rig.args("DPAS"), "ok")
    assert "Traceback" not in out.stderr, out.stderr
    assert rig.values() == rig.original
    if case == "folder":
        assert out.returncode == 2 and "switch_stat" in out.stderr
        assert len(out.stderr.strip().splitlines()) == 1
        return
    assert out.returncode == 0, out.stderr
    record = json.loads((rig.tmp / "out" / "results.json").read_text())["records"][0]
    if case == "backwards":
        assert record["breakdown"] is None and "went backwards" in record["note"]
    elif case == "mode 4":
        assert record["breakdown"] == {"cp": 0, "pas": 0, "ol": 0, "int": 0}
    else:
        assert record["breakdown"] is None and "switch_stat" in record["note"]


# -- data: reads never write, writes need --destroy-data -------------------------------------
def digest(path: Path) -> tuple[int, str]:
    return path.stat().st_size, hashlib.sha256(path.read_bytes()).hexdigest()


def bench(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dpas", "bench", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


def real_args(tmp: Path, device: Path, *more: str) -> list[str]:
    return [
        "INT", "--device", str(device), "--jobs", "1", "--runtime", "1", "--d-init", "5000",
        "--out", str(tmp / "out"), "--journal", str(tmp / "j.json"), *more,
    ]  # fmt: skip


def test_a_read_never_touches_a_small_existing_file(tmp_path: Path, fio: str) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("two\nlines\n")
    before = digest(notes)
    out = bench(*real_args(tmp_path, notes))
    assert out.returncode == 2
    assert "holds 10 bytes: a read run of 1 jobs of 4k needs at least 4096 bytes" in out.stderr
    assert digest(notes) == before


def test_a_read_of_a_filesystem_image_leaves_it_byte_for_byte(tmp_path: Path, fio: str) -> None:
    need_mkfs_ext4()
    image = tmp_path / "fs.img"
    image.write_bytes(b"\xa5" * (64 << 20))  # allocated: no holes to refuse
    subprocess.run(["mkfs.ext4", "-q", "-F", "-E", "nodiscard", str(image)], check=True)
    before = digest(image)
    out = bench(*real_args(tmp_path, image))  # --size defaults to 256m: more than it holds
    assert out.returncode == 0, out.stderr
    assert digest(image) == before
    record = json.loads((tmp_path / "out" / "results.json").read_text())["records"][0]
    assert record["ios"] > 0


def test_a_sparse_file_is_refused_for_reads_naming_its_holes(tmp_path: Path, fio: str) -> None:
    sparse = tmp_path / "sparse"
    with sparse.open("wb") as f:
        f.truncate(256 << 20)
        f.seek(8 << 20)
        f.write(os.urandom(4096))
    before = digest(sparse)
    assert find_holes(sparse, 256 << 20)[0] == (0, 8 << 20)
    out = bench(*real_args(tmp_path, sparse))
    assert out.returncode == 2 and "has holes in the range read (bytes 0-8388608, " in out.stderr
    assert digest(sparse) == before


def test_a_file_dpas_creates_is_filled_before_it_is_read(tmp_path: Path, fio: str) -> None:
    new = tmp_path / "new"
    out = bench(*real_args(tmp_path, new, "--size", "8m"))
    assert out.returncode == 0, out.stderr
    assert new.stat().st_size == 8 << 20 and find_holes(new, 8 << 20) == []
    assert new.read_bytes()[:4096].count(0) < 100  # data, not zeros
    again = bench(*real_args(tmp_path, new, "--size", "8m"))  # now an existing file: reused
    assert again.returncode == 0 and digest(new)[0] == 8 << 20


def test_a_bare_device_name_that_is_not_here_creates_nothing(tmp_path: Path) -> None:
    out = bench(*real_args(tmp_path, Path("nvme7n7")), cwd=tmp_path)
    assert out.returncode == 2 and "no block device of that name" in out.stderr
    assert not (tmp_path / "nvme7n7").exists()


def _mbr(size: int) -> bytes:
    """A DOS partition table with one Linux partition, as fdisk writes it."""
    sector = bytearray(512)
    entry = bytes([0, 0, 0, 0, 0x83, 0, 0, 0]) + (2048).to_bytes(4, "little")
    sector[446:462] = entry + (size // 512 - 2048).to_bytes(4, "little")
    sector[510:512] = b"\x55\xaa"
    return bytes(sector) + bytes(size - 512)


CONTENTS = {
    "ext4": (lambda: bytes(8 << 20), "a ext4 filesystem"),
    "dos": (lambda: _mbr(8 << 20), "a dos partition table"),
    "raw": (lambda: os.urandom(8 << 20), "non-zero data in its first MiB"),
    "zeros": (lambda: bytes(8 << 20), "dpas found nothing on it it recognises"),
}


@pytest.mark.parametrize("holds", list(CONTENTS))
def test_a_write_to_an_existing_file_needs_destroy_data(
    tmp_path: Path, fio: str, holds: str
) -> None:
    content, expected = CONTENTS[holds]
    image = tmp_path / "image"
    image.write_bytes(content())
    if holds == "ext4":
        need_mkfs_ext4()
        subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True)
    before = digest(image)
    out = bench(*real_args(tmp_path, image, "--size", "8m"), "W")
    assert out.returncode == 2 and expected in out.stderr, out.stderr
    assert "add --destroy-data" in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert digest(image) == before
    allowed = bench(*real_args(tmp_path, image, "--size", "8m"), "W", "--destroy-data")
    assert allowed.returncode == 0, allowed.stderr


def test_without_blkid_the_refusal_says_what_it_cannot_tell(tmp_path: Path, fio: str) -> None:
    image = tmp_path / "image"
    image.write_bytes(_mbr(8 << 20))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "fio").symlink_to(fio)
    out = subprocess.run(
        [sys.executable, "-m", "dpas", "bench", *real_args(tmp_path, image), "W"],
        env={**os.environ, "PATH": str(bin_dir)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert "a partition table (MBR boot signature or GPT header)" in out.stderr
    assert "dpas cannot tell filesystem, RAID or LVM signatures: blkid is not installed" in (
        out.stderr
    )


def need_mkfs_ext4() -> None:
    need(shutil.which("mkfs.ext4"), "mkfs.ext4 is not installed: apt-get install e2fsprogs")


def _loop_device(image: Path, size: int = 32 << 20) -> str:
    """A loop device on ``image`` (root, util-linux's losetup and the kernel's loop driver;
    CI, as root, has them: without them it fails there, and skips elsewhere)."""
    need(os.geteuid() == 0, "loop devices need root")
    need(shutil.which("losetup"), "losetup is not installed: apt-get install util-linux")
    need_mkfs_ext4()
    image.write_bytes(bytes(size))
    made = subprocess.run(
        ["losetup", "-f", "--show", "-P", str(image)], capture_output=True, text=True
    )
    need(made.returncode == 0, f"no loop device here (losetup -f): {made.stderr.strip()}")
    return made.stdout.strip()


def test_the_write_guard_on_a_loop_device(tmp_path: Path, fio: str) -> None:
    image = tmp_path / "img"
    loop = _loop_device(image)
    try:
        config = RealConfig(loop, journal=tmp_path / "j.json")
        writes = Sweep((Method.INT,), rw=Op.WRITE)
        with pytest.raises(Refused, match="a block device: dpas found nothing on it"):
            Site(config, LocalExecutor()).check_data(writes)  # empty, yet a block device
        out = bench(*real_args(tmp_path, image), "W")
        assert out.returncode == 2 and f"loop device {loop} attached to it" in out.stderr
        subprocess.run(["mkfs.ext4", "-q", loop], check=True, capture_output=True)
        with pytest.raises(Refused, match="it holds a ext4 filesystem, non-zero data"):
            Site(config, LocalExecutor()).check_data(writes)
        mnt = tmp_path / "mnt"
        mnt.mkdir()
        if subprocess.run(["mount", loop, str(mnt)], capture_output=True).returncode == 0:
            try:
                with pytest.raises(Refused, match=f"a filesystem mounted on {mnt}"):
                    Site(config, LocalExecutor()).check_data(writes)
            finally:
                subprocess.run(["umount", str(mnt)], check=False)
        reads = Sweep((Method.INT,), rw=Op.READ)
        Site(config, LocalExecutor()).check_data(reads)  # reads never destroy
        out = bench(*real_args(tmp_path, Path(loop)), "W")
        assert out.returncode == 2 and "add --destroy-data" in out.stderr
    finally:
        subprocess.run(["losetup", "-d", loop], check=False)


def test_a_partition_table_on_a_loop_device_names_its_partitions(tmp_path: Path) -> None:
    image = tmp_path / "img"
    loop = _loop_device(image)
    try:
        with Path(loop).open("r+b") as dev:
            dev.write(_mbr(1 << 20)[:512])
        subprocess.run(["blockdev", "--rereadpt", loop], capture_output=True)
        config = RealConfig(loop, journal=tmp_path / "j.json")
        writes = Sweep((Method.INT,), rw=Op.WRITE)
        with pytest.raises(Refused, match="a dos partition table") as refusal:
            Site(config, LocalExecutor()).check_data(writes)
        name = Path(loop).name
        if Path(f"/sys/block/{name}/{name}p1").exists():
            assert f"partitions {name}p1" in str(refusal.value)
    finally:
        subprocess.run(["losetup", "-d", loop], check=False)


# -- the simulator's workers ----------------------------------------------------------------
def pool_workers(proc: subprocess.Popen[str] | subprocess.Popen[bytes]) -> list[int]:
    """The pids of a dpas bench's two pool workers, once both have started."""
    deadline = time.monotonic() + 60
    workers: list[int] = []
    while len(workers) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
        workers = [int(p) for p in children.read_text().split()] if children.exists() else []
    return workers


def test_pool_workers_end_with_a_killed_dpas_bench(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "dpas", "bench", "ALL", "--runtime", "20", "--out", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    workers = pool_workers(proc)
    assert workers, "dpas bench started no worker"
    proc.kill()
    proc.wait()
    assert gone(workers), "pool workers outlived a SIGKILLed dpas bench"


def test_plain_restore_puts_back_every_journal_left_behind(rig: Rig) -> None:
    state = rig.tmp / "state"
    env = {**rig.env("sleep"), "XDG_STATE_HOME": str(state)}
    args = rig.args("PAS")
    del args[args.index("--journal") : args.index("--journal") + 2]  # the default journal
    proc = subprocess.Popen(
        [sys.executable, "-m", "dpas", "bench", *args], env=env, stderr=subprocess.DEVNULL
    )
    rig.wait_for_fio(proc)
    proc.kill()
    proc.wait()
    (journal,) = (state / "dpas" / "journals").glob("nvme0n1-*.json")
    assert rig.values()["pas_enabled"] == "1"
    out = subprocess.run(
        [sys.executable, "-m", "dpas", "restore"], env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert f"removed {journal}" in out.stdout and rig.values() == rig.original
    again = subprocess.run(
        [sys.executable, "-m", "dpas", "restore"], env=env, capture_output=True, text=True
    )
    assert again.returncode == 0 and "nothing to restore" in again.stdout


def test_a_stop_after_some_runs_keeps_what_was_measured(rig: Rig) -> None:
    """The first job count finishes, the second hangs and is stopped: results.json holds the
    first and says why the sweep ended; the command ends with the stop's line and status."""
    rig.fio.write_text(
        rig.fio.read_text().replace(
            'mode = os.environ.get("FAKE_FIO", "ok")',
            'mode = "sleep" if "--numjobs=2" in sys.argv else "ok"',
        )
    )
    args = rig.args("DPAS")
    args[args.index("--jobs") + 1] = "1,2"
    proc = subprocess.Popen(
        [sys.executable, "-m", "dpas", "bench", *args],
        env=rig.env("ok"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    rig.wait_for_fio(proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM
    assert err.strip().splitlines()[-1].startswith("dpas: error: stopped by SIGTERM")
    saved = json.loads((rig.tmp / "out" / "results.json").read_text())
    assert [(r["mode"], r["jobs"]) for r in saved["records"]] == [("DPAS", 1)]
    assert "stopped by SIGTERM" in saved["ended_early"]
    assert rig.values() == rig.original


def test_ctrl_c_ends_a_simulated_sweep_at_once(tmp_path: Path) -> None:
    """Not after the queued runs: the pool is terminated, its workers with it."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "dpas", "bench", "ALL", "--runtime", "30", "--out", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    workers = pool_workers(proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)  # a run alone takes minutes at --runtime 30
    assert proc.returncode == 130 and err.strip() == "dpas: aborted"
    assert gone(workers)


def test_without_file_locking_the_lock_is_an_exclusive_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A kernel built without file locking (the minimal guest kernel) answers flock with
    ENOSYS: one run per device still holds, through a file made with O_EXCL."""
    import errno
    import fcntl

    def no_flock(fd: int, op: int) -> None:
        raise OSError(errno.ENOSYS, "Function not implemented")

    monkeypatch.setattr(fcntl, "flock", no_flock)
    first = DeviceLock("q", "nvme0n1", tmp_path)
    with first:
        assert first.held_path.exists() and first.holder() == os.getpid()
        with pytest.raises(DpasError, match=rf"in use by another dpas run \(pid {os.getpid()}\)"):
            with DeviceLock("q", "nvme0n1", tmp_path):
                pass
    assert not first.held_path.exists() and first.holder() is None
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()  # fmt: skip
    first.held_path.write_text(f"{dead}\n")  # a run that died holding it
    with DeviceLock("q", "nvme0n1", tmp_path) as taken:
        assert taken.holder() == os.getpid()
