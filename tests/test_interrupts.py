"""dpas.real.interrupts, the one interrupt counter: /proc/interrupts and /proc/irq trees made
in the test (the admin queue never counts, nor the queues of CPUs the run does not use; every
I/O queue counts where the affinity cannot be read), the guest's affinity dump run for real,
and the engine's and fio's runs counting through it."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from dpas.bench.backend import Sweep
from dpas.machine.interrupts import (
    AFFINITY_DUMP,
    Counter,
    Line,
    affinity,
    affinity_listing,
    fired,
    io_queues,
    parse,
)
from dpas.machine.where import Where
from dpas.policy import Method
from dpas.real import engine_runs
from dpas.real.executor import LocalExecutor
from dpas.real.runner import Runner
from dpas.real.site import RealBench, RealConfig
from dpas.results import Measured

#: two CPUs; nvme0q1 serves CPU 0, nvme0q2 CPU 1 (one managed queue a CPU, as in the guest)
BEFORE = """            CPU0       CPU1
   0:         52          0  IO-APIC                  2-edge      timer
  24:         16          0  PCI-MSIX-0000:00:03.0    0-edge      nvme0q0
  25:        100          0  PCI-MSIX-0000:00:03.0    1-edge      nvme0q1
  26:          1         50  PCI-MSIX-0000:00:03.0    2-edge      nvme0q2
  36:          0         70  PCI-MSIX-0000:00:02.0    1-edge      virtio1-req.0
 NMI:          0          0  Non-maskable interrupts
 LOC:       1949        825  Local timer interrupts
"""
#: 5 admin commands, 300 interrupts on CPU 0's queue, 40 on CPU 1's
AFTER = (
    BEFORE.replace("16          0", "21          0")
    .replace("100          0", "400          0")
    .replace("1         50", "1         90")
)


def proc(tmp_path: Path, interrupts: str, **affinities: str) -> Where:
    """A /proc with ``interrupts`` and, per IRQ ("i25_smp": "0"), its affinity files."""
    root = tmp_path / "proc"
    root.mkdir(parents=True, exist_ok=True)
    (root / "interrupts").write_text(interrupts)
    for key, cpus in affinities.items():
        irq, kind = key[1:].split("_")
        name = "smp_affinity_list" if kind == "smp" else "effective_affinity_list"
        (root / "irq" / irq).mkdir(parents=True, exist_ok=True)
        (root / "irq" / irq / name).write_text(f"{cpus}\n")
    return Where(tmp_path / "sys", root)


def count(where: Where, cpus: tuple[int, ...] | None, disk: str = "nvme0n1") -> int | None:
    reader = Counter(disk, cpus, where).read
    return fired(parse(BEFORE), parse(AFTER), io_queues(disk, where), cpus, reader)


def test_parse_keeps_the_numbered_lines_summed_over_every_cpu() -> None:
    snapshot = parse(BEFORE)
    assert snapshot["nvme0q2"] == Line("26", 51) and snapshot["timer"] == Line("0", 52)
    assert "LOC" not in snapshot and "interrupts" not in snapshot
    assert parse("") == {}


def test_the_io_queues_of_an_nvme_disk_never_include_the_admin_queue() -> None:
    queues = io_queues("nvme0n1")
    assert queues is not None
    names = ("nvme0q0", "nvme0q1", "nvme0q12", "nvme1q1", "nvme0q01")
    assert [n for n in names if re.fullmatch(queues, n)] == ["nvme0q1", "nvme0q12"]
    assert io_queues("loop0", Where(Path("/nonexistent"))) is None


def test_only_the_queues_of_the_runs_cpus_count(tmp_path: Path) -> None:
    where = proc(tmp_path, BEFORE, i24_smp="0", i25_smp="0", i26_smp="1")
    assert count(where, (0,)) == 300  # CPU 0's queue; the 5 admin interrupts never
    assert count(where, (1,)) == 40
    assert count(where, (0, 1)) == count(where, None) == 340


def test_without_affinity_files_every_io_queue_counts(tmp_path: Path) -> None:
    where = proc(tmp_path, BEFORE)  # no /proc/irq at all
    assert count(where, (0,)) == 340  # both I/O queues, still not the admin queue
    unreadable = proc(tmp_path / "b", BEFORE, i25_smp="garbage", i26_smp="1")
    assert count(unreadable, (0,)) == 300  # q1's list unreadable: it counts; q2 serves CPU 1


def test_the_mask_is_read_first_and_the_effective_affinity_only_without_it(
    tmp_path: Path,
) -> None:
    """A queue serving CPUs 0-1 whose interrupt is delivered to CPU 1 serves a run on CPU 0."""
    where = proc(tmp_path, BEFORE, i25_smp="0-1", i25_eff="1", i26_smp="1", i26_eff="1")
    assert count(where, (0,)) == 300
    effective_only = proc(tmp_path / "b", BEFORE, i25_eff="1", i26_eff="0")
    assert count(effective_only, (0,)) == 40
    assert affinity("25", Counter("nvme0n1", None, where).read) == frozenset({0, 1})
    assert affinity("99", Counter("nvme0n1", None, where).read) is None


def test_nothing_to_count_is_none_and_a_count_is_never_negative(tmp_path: Path) -> None:
    where = proc(tmp_path, BEFORE)
    assert fired(parse(BEFORE), parse(AFTER), io_queues("nvme1n1"), None, lambda p: None) is None
    assert fired(parse(BEFORE), parse(AFTER), None, None, lambda p: None) is None
    assert fired({}, parse(AFTER), io_queues("nvme0n1"), None, lambda p: None) is None
    reset = parse(BEFORE.replace("100          0", "5          0"))  # a reset queue
    assert fired(parse(BEFORE), reset, io_queues("nvme0n1"), None, lambda p: None) == 0
    assert Counter(None, None, where).total() is None


def test_the_counter_takes_its_snapshots_at_the_marks(tmp_path: Path) -> None:
    where = proc(tmp_path, BEFORE, i25_smp="0", i26_smp="1")
    counter = Counter("nvme0n1", (0,), where)
    assert counter.lines() == ["nvme0q1", "nvme0q2"]
    assert counter.total() is None  # no mark yet: nothing measured
    counter.mark("start")
    (where.proc / "interrupts").write_text(AFTER)
    counter.mark("stop")
    assert counter.total() == 300


def test_a_virtio_disk_counts_its_lines_as_the_doctor_always_did(tmp_path: Path) -> None:
    where = proc(tmp_path, BEFORE)
    virtio = tmp_path / "sys" / "devices" / "pci0000:00" / "virtio1"
    virtio.mkdir(parents=True)
    (tmp_path / "sys" / "block" / "vda").mkdir(parents=True)
    (tmp_path / "sys" / "block" / "vda" / "device").symlink_to(virtio)
    after = AFTER.replace("0         70", "0         75")
    counter = Counter("vda", None, where)
    assert counter.lines() == ["virtio1-req.0"]
    counter.mark("start")
    (where.proc / "interrupts").write_text(after)
    counter.mark("stop")
    assert counter.total() == 5


def test_the_guests_affinity_dump_reads_as_the_files_do() -> None:
    """AFFINITY_DUMP run here (GNU grep) and as the guest runs it (busybox's grep) gives each
    IRQ's affinity as reading its files does."""
    here = Counter("nvme0n1", None, Where())
    shells = [["sh", "-c", AFFINITY_DUMP]]
    busybox = shutil.which("busybox")
    if busybox is not None:
        shells.append([busybox, "sh", "-c", AFFINITY_DUMP.replace("grep", f"{busybox} grep")])
    for argv in shells:
        text = subprocess.run(argv, capture_output=True, text=True, check=False).stdout
        listing = affinity_listing(text)
        irqs = {path.split("/")[1] for path in listing}
        assert irqs, text[:200]
        for irq in irqs:
            assert affinity(irq, listing.get) == affinity(irq, here.read)


# -- the runs count through it ---------------------------------------------------------------


def nvme_runner(tmp_path: Path, engine: str) -> tuple[Runner, Where]:
    """A Runner on a file whose interrupts are an nvme0n1's under a /proc made here."""
    data = tmp_path / "data"
    data.write_bytes(b"\0" * (1 << 20))
    config = RealConfig(str(data), journal=tmp_path / "j.json", size=1 << 20, engine=engine)
    runner = Runner(config, LocalExecutor(tmp_path / "empty-sys"))
    runner.site.fio_size = 1 << 20
    runner.site.online_cpus = 2  # what "split" spreads two jobs over: CPUs 0 and 1
    where = proc(tmp_path, BEFORE, i24_smp="0", i25_smp="0", i26_smp="1")
    runner.site.interrupts = lambda cpus: Counter("nvme0n1", cpus, where)  # type: ignore[method-assign]
    return runner, where


def test_the_engine_counts_between_its_own_start_and_stop_marks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """/proc/interrupts changes before the start mark, between the marks and after the stop
    mark: only what happened between the marks is the run's."""
    runner, where = nvme_runner(tmp_path, "dpas")
    interrupts = where.proc / "interrupts"
    real_run = engine_runs.run
    middle = BEFORE.replace("100          0", "1000          0")
    between = middle.replace("1000          0", "1300          0")

    def bracketed(config, should_stop, marks=None):  # type: ignore[no-untyped-def]
        def marked(what: str) -> None:
            if what == "start":
                interrupts.write_text(middle)  # set-up: not the run's
            else:
                interrupts.write_text(between)
            marks(what)

        result = real_run(config, should_stop, marks=marked)
        interrupts.write_text(between.replace("1300          0", "9000          0"))
        return result

    monkeypatch.setattr(engine_runs, "run", bracketed)
    sweep = Sweep((Method.INT,), jobs=(1,), runtime_s=0.2, d_init_ns=4000)
    plan = runner.plan(Method.INT, sweep, 4000)
    record = runner.run_one(sweep, plan, 1, 1, RealBench(model="file"))
    assert record.ios > 0 and record.interrupts == 300


def test_a_fio_run_counts_the_queues_of_the_cpus_its_jobs_are_pinned_to(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner, where = nvme_runner(tmp_path, "fio")
    result = Measured("CP", 1, "R", 1, 1000, 1.0, 1000.0, 10.0, 9.0, 20.0, 30.0, 5.0, 7)

    def fio(sweep, plan, jobs, runtime_s, repeat=0):  # type: ignore[no-untyped-def]
        (where.proc / "interrupts").write_text(AFTER)
        return result

    monkeypatch.setattr(runner.fio, "measure", fio)
    for cpus, jobs, expected in (("0", 2, 300), ("split", 2, 340), ("1", 1, 40)):
        (where.proc / "interrupts").write_text(BEFORE)
        sweep = Sweep((Method.INT,), jobs=(jobs,), runtime_s=1, d_init_ns=4000, cpus=cpus)
        plan = runner.plan(Method.INT, sweep, 4000)
        record = runner.run_one(sweep, plan, jobs, 1, RealBench(model="file"))
        assert record.interrupts == expected, cpus
