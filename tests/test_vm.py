"""dpas vm: the initramfs format (read back by busybox's cpio), the plan and its parsing, and
a real boot of the guest under TCG that checks from the interrupt counts that CP polled."""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import run_dpas

from dpas.policy import Method, Op
from dpas.vm.cpio import Cpio
from dpas.vm.guest import GuestRun, nvme_interrupts, plan_script, read_results
from dpas.vm.kernel import VmError, image_release

INTERRUPTS = """           CPU0       CPU1
 24:         10          0  PCI-MSIX-0000:00:03.0   0-edge      nvme0q0
 25:        500        300  PCI-MSIX-0000:00:03.0   1-edge      nvme0q1
 26:          7          7  IO-APIC   4-edge      ttyS0
"""


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
    fio_json = (
        '{"jobs": [{"error": 0, "usr_cpu": 1.0, "sys_cpu": 98.0, "ctx": 3, '
        '"job_runtime": 2000, "read": {"total_ios": 20000, "iops": 10000.0, '
        '"runtime": 2000, "lat_ns": {"mean": 99000.0}, "clat_ns": {"percentile": '
        '{"50.000000": 90000, "99.000000": 200000, "99.900000": 400000}}}}]}'
    )
    after = INTERRUPTS.replace("500        300", "500        300")
    text = (
        f"@@UNAME 6.1.0-56-amd64\n@@VARIANT stock\n@@BEGIN CP:1:1\n@@IRQ\n{INTERRUPTS}"
        f"@@IRQ\n{after}@@FIO\n{fio_json}\n@@ERR\n\n@@END\n@@DONE\n"
    )
    result = read_results(text, plans, Op.READ)
    ((plan, jobs, repeat, fio, fired),) = result.runs
    assert (plan.mode, jobs, repeat, fio.iops, fired) == (Method.CP, 1, 1, 10000.0, 0)
    assert fio.lat_mean_us == 99.0 and fio.lat_p99_us == 200.0
    with pytest.raises(VmError, match="stopped before the end"):
        read_results(text.replace("@@DONE\n", ""), plans, Op.READ)


def test_nvme_interrupts_count_the_queues_only() -> None:
    assert nvme_interrupts(INTERRUPTS) == 10 + 800


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
