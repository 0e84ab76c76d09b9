"""dpas vm: the initramfs format (read back by busybox's cpio), the plan and its parsing, and
a real boot of the guest under TCG that checks from the interrupt counts that CP polled."""

from __future__ import annotations

import io
import shutil
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import run_dpas

from dpas.policy import Method
from dpas.vm.cpio import Cpio
from dpas.vm.guest import GuestRun, ended_early, plan_script, read_results
from dpas.vm.kernel import VmError, image_release

INTERRUPTS = """           CPU0       CPU1
 24:         10          0  PCI-MSIX-0000:00:03.0   0-edge      nvme0q0
 25:        500        300  PCI-MSIX-0000:00:03.0   1-edge      nvme0q1
 26:          0          0  PCI-MSIX-0000:00:03.0   2-edge      nvme0q2
 27:          7          7  IO-APIC   4-edge      ttyS0
"""
#: what the guest's affinity dump prints: nvme0q1 serves vCPU 0, nvme0q2 vCPU 1
AFFINITY = """/proc/irq/24/smp_affinity_list:0-1
/proc/irq/24/effective_affinity_list:1
/proc/irq/25/smp_affinity_list:0
/proc/irq/25/effective_affinity_list:0
/proc/irq/26/smp_affinity_list:1
/proc/irq/26/effective_affinity_list:1
"""
FIO_JSON = (
    '{"jobs": [{"error": 0, "usr_cpu": 1.0, "sys_cpu": 98.0, "ctx": 3, '
    '"job_runtime": 2000, "read": {"total_ios": 20000, "iops": 10000.0, '
    '"runtime": 2000, "lat_ns": {"mean": 99000.0}, "clat_ns": {"percentile": '
    '{"50.000000": 90000, "99.000000": 200000, "99.900000": 400000}}}}]}'
)


def test_cpio_archive_is_read_back_by_busybox(tmp_path: Path) -> None:
    busybox = shutil.which("busybox")
    if busybox is None:
        pytest.fail("busybox is not installed: apt-get install busybox-static")
    buf = io.BytesIO()
    archive = Cpio(buf)
    archive.file("init", b"#!/bin/sh\necho hi\n", 0o755)
    archive.file("lib/modules/nvme.ko", b"\x7fELF" + b"x" * 1001)
    archive.symlink("bin/sh", "busybox")
    archive.close()
    assert len(buf.getvalue()) % 512 == 0
    (tmp_path / "a.cpio").write_bytes(buf.getvalue())
    listed = (
        subprocess.run(
            [busybox, "cpio", "-t"], input=buf.getvalue(), capture_output=True, check=True
        )
        .stdout.decode()
        .split()
    )
    assert listed == ["init", "lib", "lib/modules", "lib/modules/nvme.ko", "bin", "bin/sh"]
    out = tmp_path / "x"
    out.mkdir()
    subprocess.run(
        [busybox, "cpio", "-i", "-d"],
        input=buf.getvalue(),
        cwd=out,
        check=True,
        capture_output=True,
    )
    assert (out / "lib/modules/nvme.ko").read_bytes() == b"\x7fELF" + b"x" * 1001
    assert (out / "init").stat().st_mode & 0o777 == 0o755


def test_plan_has_both_kernels_and_refuses_what_the_stock_one_cannot() -> None:
    run = GuestRun(modes=(Method.INT, Method.CP, Method.PAS), jobs=(1, 2), runtime_s=2)
    script, plans = plan_script(run, "6.1.0-56-amd64")
    assert set(plans["stock"]) == {"INT", "CP"} and set(plans["dpas"]) == {"INT", "CP", "PAS"}
    assert "@@REFUSED PAS PAS with fio needs the DPAS kernel" in script
    assert "echo 1 > /sys/block/nvme0n1/queue/pas_enabled" in script  # the DPAS variant
    assert script.count("run CP:2:1 ") == 2 and "--hipri=1" in script


def test_results_are_read_back() -> None:
    run = GuestRun(modes=(Method.CP,), jobs=(1,), runtime_s=2)
    _, plans = plan_script(run, "6.1.0-56-amd64")
    text = transcript(INTERRUPTS, "CP:1:1")
    result = read_results(text, plans, run)
    ((plan, jobs, repeat, fio, fired),) = result.runs
    assert (plan.mode, jobs, repeat, fio.iops, fired) == (Method.CP, 1, 1, 10000.0, 0)
    assert fio.lat_mean_us == 99.0 and fio.lat_p99_us == 200.0
    partial = read_results(text.replace("@@DONE\n", ""), plans, run)
    assert not partial.complete and len(partial.runs) == 1 and partial.running is None
    failed = text.replace(FIO_JSON, "").replace("@@ERR\n", "@@ERR\nfio: failed to load engine")
    with pytest.raises(VmError) as err:
        read_results(failed, plans, run)
    assert str(err.value) == (
        "fio failed on /dev/nvme0n1 in the guest: fio: failed to load engine"
    )  # dpas bench --device's line, naming the guest's drive


def transcript(after: str, *runs: str, affinity: str | None = AFFINITY) -> str:
    """What the guest prints for ``runs`` (MODE:JOBS:REPEAT), INTERRUPTS before each, ``after``
    after; the affinity dump as the plan makes it (None: the guest printed none)."""
    dump = f"@@AFFINITY\n{affinity}" if affinity is not None else ""
    blocks = "".join(
        f"@@BEGIN {run}\n@@IRQ\n{INTERRUPTS}@@IRQ\n{after}@@FIO\n{FIO_JSON}\n@@ERR\n\n@@END\n"
        for run in runs
    )
    return f"@@UNAME 6.1.0-56-amd64\n{dump}@@HYBRID \n@@VARIANT stock\n{blocks}@@DONE\n"


def test_the_guest_counts_the_io_queues_of_the_vcpus_its_jobs_run_on() -> None:
    """q0 (the admin queue) took 5, q1 (vCPU 0) 100, q2 (vCPU 1) 40: with --pin 0 a run counts
    q1 only, with split and 2 jobs both, without an affinity dump every I/O queue."""
    after = (
        INTERRUPTS.replace("10          0", "15          0")
        .replace("500        300", "600        300")
        .replace(
            "0          0  PCI-MSIX-0000:00:03.0   2-edge",
            "0         40  PCI-MSIX-0000:00:03.0   2-edge",
        )
    )
    script, plans = plan_script(GuestRun(modes=(Method.INT,), jobs=(1, 2)), "6.1.0-56-amd64")
    assert 'echo "@@AFFINITY"; grep -H . /proc/irq/*/smp_affinity_list ' in script
    for pin, affinity, counted in (
        ("0", AFFINITY, [100, 100]),
        ("split", AFFINITY, [100, 140]),
        ("1", AFFINITY, [40, 40]),
        ("0", None, [140, 140]),
    ):
        run = GuestRun(modes=(Method.INT,), jobs=(1, 2), pin=pin, cpus=2)
        text = transcript(after, "INT:1:1", "INT:2:1", affinity=affinity)
        assert [r[4] for r in read_results(text, plans, run).runs] == counted, (pin, affinity)


def test_the_ioengine_override_reaches_every_fio_job_of_the_plan() -> None:
    run = GuestRun(modes=(Method.INT, Method.CP), jobs=(1, 2), ioengine="psync")
    script, plans = plan_script(run, "6.1.0-56-amd64")
    jobs = [line for line in script.splitlines() if line.strip().startswith("run ")]
    assert len(jobs) == 8 and all("--ioengine=psync" in line for line in jobs)
    assert plans["stock"]["CP"].note.startswith("CP: classic polling, fio psync hipri")
    assert plans["dpas"]["INT"].ioengine == "psync"


def test_vm_bench_refuses_ioengine_with_the_engine_as_bench_does(tmp_path: Path) -> None:
    """One line, exit 2, before anything is fetched, built or booted."""
    args = ["INT", "--ioengine", "sync", "--engine", "dpas", "--out", str(tmp_path / "out")]
    out = run_dpas("vm", "bench", *args, "--cache", str(tmp_path / "cache"))
    bench = run_dpas("bench", *args, "--device", str(tmp_path / "data"))
    assert out.returncode == bench.returncode == 2
    assert (
        out.stderr.strip()
        == bench.stderr.strip()
        == ("dpas: error: --ioengine means nothing with --engine dpas; leave it out")
    )
    assert not any(tmp_path.iterdir())


def test_vm_bench_hands_ioengine_to_the_guests_fio(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The command's --ioengine is in the guest's plan for every fio job (not booted here)."""
    from dpas.cli.app import main
    from dpas.vm import runner

    seen = []

    def not_booted(config: runner.VmConfig) -> runner.VmBench:
        seen.append(config)
        raise VmError("not booted in this test")

    monkeypatch.setattr(runner, "_vm_bench", not_booted)
    with pytest.raises(SystemExit) as ended:
        main(["vm", "bench", "INT", "CP", "--jobs", "1,2", "--ioengine", "psync",
              "--out", str(tmp_path / "out"), "--cache", str(tmp_path / "cache")])  # fmt: skip
    assert ended.value.code == 2
    assert capsys.readouterr().err.strip() == "dpas: error: not booted in this test"
    ((config),) = seen
    script, _ = plan_script(config.run, "6.1.0-56-amd64")
    jobs = [line for line in script.splitlines() if line.strip().startswith("run ")]
    assert len(jobs) == 8 and all("--ioengine=psync" in line for line in jobs)


def test_image_release_refuses_what_is_not_a_kernel(tmp_path: Path) -> None:
    f = tmp_path / "vmlinuz"
    f.write_bytes(b"\0" * 0x1000)
    with pytest.raises(VmError, match="not a bzImage"):
        image_release(f)


@pytest.mark.slow
def test_guest_boots_under_tcg_and_cp_polls(tmp_path: Path) -> None:
    """Integration: a real Debian kernel in a real QEMU guest; INT takes an interrupt per I/O,
    CP (io_uring hipri on a drive with poll queues) takes none."""
    for tool in ("qemu-system-x86_64", "apt-get", "busybox", "fio"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: .ci/run installs qemu-system-x86, busybox-static, fio")
    out = run_dpas(
        "vm",
        "bench",
        "INT",
        "CP",
        "--jobs",
        "1",
        "--runtime",
        "2",
        "--json",
        "--out",
        str(tmp_path / "out"),
        "--cache",
        str(tmp_path / "cache"),
        timeout=900,
    )
    assert out.returncode == 0, out.stderr
    import json

    data = json.loads(out.stdout)
    assert data["backend"] == "qemu" and data["kernel"]
    assert data["accelerator"] in ("kvm", "tcg")
    runs = {r["mode"]: r for r in data["records"]}
    assert runs["INT"]["iops"] > 0 and runs["CP"]["iops"] > 0
    assert runs["INT"]["interrupts"] >= 0.9 * runs["INT"]["ios"]  # one interrupt per I/O
    assert runs["CP"]["interrupts"] == 0  # every completion polled
    assert runs["CP"]["engine"] == "io_uring hipri"
    # Debian 12's 6.1 predates io_uring hybrid polling (6.13): the guest's kernel says no
    assert data["hybrid_iopoll"] == "refused (Invalid argument)"
    assert {r["hybrid_iopoll"] for r in data["records"]} == {data["hybrid_iopoll"]}


@pytest.mark.slow
def test_vm_bench_runs_the_guests_fio_with_the_ioengine_given(tmp_path: Path) -> None:
    """--ioengine pvsync2 on Debian 12's 6.1: CP is preadv2(RWF_HIPRI), which stopped polling
    in 5.19, so the completions come by interrupt; records and header say which engine ran."""
    import json

    out = run_dpas(
        "vm", "bench", "CP", "--ioengine", "pvsync2", "--jobs", "1", "--runtime", "1",
        "--out", str(tmp_path / "out"), "--cache", str(tmp_path / "cache"), timeout=900,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "CP: classic polling, fio pvsync2 hipri" in out.stdout
    data = json.loads((tmp_path / "out" / "results.json").read_text())
    assert data["config"]["ioengine"] == "pvsync2"
    (record,) = data["records"]
    assert record["engine"] == "pvsync2 hipri" and "fio pvsync2 hipri" in record["note"]
    assert record["interrupts"] >= 0.9 * record["ios"]  # not io_uring's IOPOLL: interrupts


def test_the_plan_asks_the_guest_about_hybrid_polling_and_reads_the_answer() -> None:
    from dpas.vm.guest import hybrid_answer
    from dpas.vm.python import GuestPython

    python = GuestPython(Path("/usr/bin/python3.11"), (), "/opt/dpas")
    script, _ = plan_script(GuestRun(modes=(Method.INT,), jobs=(1,)), "7.2.13", python)
    assert 'echo "@@HYBRID $(PYTHONPATH=/opt/dpas ' in script
    assert "/usr/bin/python3.11 -m dpas.vm.inguest hybrid)" in script
    assert hybrid_answer('{"accepted": true, "reason": "accepted"}') == "accepted"
    assert hybrid_answer('{"accepted": false, "reason": "Invalid argument"}') == (
        "refused (Invalid argument)"
    )
    assert hybrid_answer("") == hybrid_answer("Traceback (most recent") == "not probed"


def test_the_in_guest_entry_answers_here_as_it_would_there() -> None:
    """The same module the guest runs: its JSON is what the host reads back."""
    import json
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "dpas.vm.inguest", "hybrid"], capture_output=True, text=True
    )
    answer = json.loads(out.stdout)
    assert set(answer) == {"accepted", "reason"}
    bad = subprocess.run(
        [sys.executable, "-m", "dpas.vm.inguest", "nonsense"], capture_output=True, text=True
    )
    assert bad.returncode == 2 and "usage" in bad.stderr


def test_the_guest_python_holds_dpas_numpy_and_the_interpreter() -> None:
    from dpas.vm.python import guest_python

    python = guest_python()
    names = {p.name for p in python.files}
    assert python.interpreter in python.files
    assert "inguest.py" in names and "diagnose.py" in names and "os.py" in names
    assert any("numpy" in p.parts for p in python.files)
    assert not any("tests" in p.parts or "idlelib" in p.parts for p in python.files)


@pytest.mark.slow
def test_vm_doctor_runs_the_doctor_in_debians_newest_kernel(tmp_path: Path) -> None:
    """The issue's check: io_poll 1 and HYBRID_IOPOLL accepted, found inside the guest."""
    import json

    out = run_dpas("vm", "doctor", "--kernel", "debian:sid", "--json", timeout=900)
    assert out.returncode == 0, out.stderr
    record = json.loads(out.stdout)
    assert record["guest"]["kernel"].startswith("7.")
    host = {f["check"]: f for f in record["host"]}
    assert host["io_uring HYBRID_IOPOLL setup"]["status"] == "OK"
    assert "accepted" in host["io_uring HYBRID_IOPOLL setup"]["evidence"]
    (drive,) = record["devices"]
    checks = {f["check"]: f for f in drive["findings"]}
    assert drive["device"] == "nvme0n1"
    assert checks["poll queues"]["evidence"].endswith("io_poll = 1")
    assert checks["interrupts while polling"]["status"] == "OK"
    text = run_dpas("vm", "doctor", "--kernel", "debian:sid", timeout=900)
    assert text.returncode == 0 and "guest kernel 7." in text.stdout
    assert "FAIL, " in text.stdout.splitlines()[-1]  # the doctor's own summary line


CONSOLE_OOPS = """[   12.1] nvme nvme0: 2/0/2 default/read/poll queues
[   41.7] BUG: kernel NULL pointer dereference, address: 0000000000000010
[   41.7] #PF: supervisor read access in kernel mode
[   41.7] RIP: 0010:blk_stat_remove_callback+0x1a/0x60
[   41.8] Kernel panic - not syncing: Fatal exception
"""


def test_a_crash_keeps_the_finished_runs_and_names_the_run_and_the_oops(tmp_path: Path) -> None:
    """Two runs finished, the third begun, then the console's oops: the runs are kept, and
    one line says where it stopped, what the kernel said (RIP as symbol+offset) and where
    the log is."""
    run = GuestRun(modes=(Method.INT, Method.CP), jobs=(1, 2), runtime_s=2)
    _, plans = plan_script(run, "6.1.0-56-amd64")
    text = transcript(INTERRUPTS, "INT:1:1", "INT:2:1").replace("@@DONE\n", "")
    text += "@@BEGIN CP:1:1\n@@IRQ\n" + INTERRUPTS
    result = read_results(text, plans, run)
    assert [(p.mode, jobs) for p, jobs, *_ in result.runs] == [(Method.INT, 1), (Method.INT, 2)]
    assert result.running == "CP x1" and not result.complete
    console = tmp_path / "console.log"
    console.write_text(CONSOLE_OOPS)
    assert ended_early(result, console, None) == (
        "the guest kernel crashed during CP x1 (BUG: kernel NULL pointer dereference, "
        "address: 0000000000000010; RIP blk_stat_remove_callback+0x1a/0x60); 2 runs finished "
        f"and kept; console log: {console}"
    )
    console.write_text(
        "[ 1.0] boot\n[ 90.0] INFO: task fio:201 blocked for more than 30 seconds.\n"
    )
    assert ended_early(result, console, 33.0).startswith(
        "CP x1 did not finish in 33 s (INFO: task fio:201 blocked for more than 30 seconds.); "
        "2 runs finished and kept"
    )
    console.write_text("")
    assert "the guest stopped during CP x1 before the end of its plan" in ended_early(
        result, console, None
    )


def test_the_plan_can_crash_or_hang_its_kernel_for_a_test() -> None:
    run = GuestRun(modes=(Method.INT, Method.CP), jobs=(1,), crash_after=1)
    script, _ = plan_script(run, "6.1.0-56-amd64")
    stock = script.split("@@VARIANT stock")[1]
    assert stock.index("run INT:1:1") < stock.index("sysrq-trigger") < stock.index("run CP:1:1")
    assert "sysrq-trigger" not in plan_script(replace(run, crash_after=0), "6.1.0-56-amd64")[0]
    hung = plan_script(replace(run, crash_after=0, hang_after=1), "6.1.0-56-amd64")[0]
    stock = hung.split("@@VARIANT stock")[1]
    assert "run INT:1:1 " in stock and "\n    hang CP:1:1\n" in stock and "run CP:1:1" not in stock


@pytest.mark.slow
def test_a_guest_kernel_that_crashes_mid_plan_costs_no_finished_run() -> None:
    """Debian's 6.1 guest crashed by the plan (sysrq c) after its first run: dpas vm bench's
    backend keeps that run, says the kernel crashed between runs with the panic's line, and
    the whole takes well under a minute past the boot."""
    from dpas.bench.backend import Interrupted, Sweep
    from dpas.vm.runner import VmBackend, VmConfig

    config = VmConfig(GuestRun(modes=(), crash_after=1), "debian:bookworm")
    sweep = Sweep(modes=(Method.INT, Method.CP), jobs=(1,), runtime_s=1.0, d_init_ns=4000)
    start = time.monotonic()
    with pytest.raises(Interrupted) as ended:
        VmBackend(config).run(sweep, lambda _: None)
    assert time.monotonic() - start < 240
    message = str(ended.value)
    assert ended.value.exit_code == 1
    assert message.startswith("the guest kernel crashed between runs (")
    assert "sysrq" in message and "1 run finished and kept" in message
    assert [r.mode for r in ended.value.outcome.records] == ["INT"]
    assert ended.value.outcome.ended_early == message


@pytest.mark.slow
def test_a_run_that_never_ends_is_stopped_at_its_own_deadline() -> None:
    """A run of the plan that never returns (the test's): the guest is stopped once that run
    has gone on for its runtime plus the margin, not at the whole plan's deadline, and the run
    before it is kept."""
    from dpas.bench.backend import Interrupted, Sweep
    from dpas.vm.runner import PER_RUN_S, VmBackend, VmConfig

    config = VmConfig(GuestRun(modes=(), hang_after=1), "debian:bookworm")
    sweep = Sweep(
        modes=(Method.INT, Method.CP), jobs=(1, 2), repeats=3, runtime_s=1.0, d_init_ns=4000
    )
    start = time.monotonic()
    with pytest.raises(Interrupted) as ended:
        VmBackend(config).run(sweep, lambda _: None)
    took = time.monotonic() - start
    message = str(ended.value)
    assert message.startswith(f"INT x1 did not finish in {1 + PER_RUN_S:.0f} s"), message
    assert "1 run finished and kept" in message and ended.value.exit_code == 1
    assert [r.mode for r in ended.value.outcome.records] == ["INT"]
    assert took < 12 * (1 + PER_RUN_S), took  # the plan's own deadline: 12 runs
