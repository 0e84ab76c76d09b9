"""dpas vm: the initramfs format (read back by busybox's cpio), the plan and its parsing, and
a real boot of the guest under TCG that checks from the interrupt counts that CP polled."""

from __future__ import annotations

import io
import json
import os
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
from dpas.vm.kernel import GuestKernel, VmError, image_release


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


def record_line(mode: str, jobs: int, **fields: object) -> str:
    """A @@RECORD line as the in-guest runner streams it (a RunResult's fields)."""
    raw = {"mode": mode, "jobs": jobs, "repeat": 1, "backend": "fio", "note": "", "log": None,
           "timeline": None, **fields}  # fmt: skip
    return f"@@RECORD {json.dumps(raw)}"


def streamed(
    *runs: tuple[str, int], refused: dict[str, str] | None = None, done: bool = True
) -> str:
    lines = ["@@UNAME 6.1.0-56-amd64", '@@HYBRID {"accepted": false, "reason": "Invalid argument"}']
    for mode, jobs in runs:
        lines += [f"@@BEGIN {mode}:{jobs}:1", record_line(mode, jobs), "@@END"]
    if done:
        bench = {"refused": refused or {}, "d_init_ns": 4555, "error": ""}
        lines += [f"@@BENCH {json.dumps(bench)}", "@@DONE"]
    return "\n".join(lines) + "\n"


def test_the_streamed_runs_are_read_back() -> None:
    result = read_results(streamed(("INT", 1), ("CP", 1), ("CP", 2), refused={"CP": "no poll"}))
    assert [r["mode"] for r in result.records] == ["INT"]  # a refused mode's runs are dropped
    assert result.refused == {"CP": "no poll"} and result.d_init_ns == 4555 and result.complete
    assert result.kernel == "6.1.0-56-amd64"
    assert result.hybrid_iopoll == "refused (Invalid argument)"
    partial = read_results(streamed(("INT", 1), done=False) + "@@BEGIN INT:2:1\n")
    assert not partial.complete and partial.running == "INT x2" and len(partial.records) == 1
    between = read_results(streamed(("INT", 1), done=False))
    assert not between.complete and between.running is None
    with pytest.raises(VmError, match="the guest sent a RECORD line that is not JSON"):
        read_results(streamed(("INT", 1)).replace('"mode"', "mode"))


def test_the_in_guest_sweep_runs_here_on_a_file_as_it_would_there(tmp_path: Path) -> None:
    """dpas.vm.inguest bench with real fio on a file: each run streamed as it ends, CP refused
    (a file has no poll queues), the host's reader takes back what the host's runner made."""
    import sys

    from dpas.bench.backend import Sweep

    data = tmp_path / "data"
    data.write_bytes(b"\1" * (8 << 20))
    sweep = Sweep(modes=(Method.INT, Method.CP), jobs=(1, 2), runtime_s=0.3, d_init_ns=4000)
    spec = {"sweep": sweep.record(), "device": str(data), "fio": shutil.which("fio") or "fio"}
    out = subprocess.run(
        [sys.executable, "-m", "dpas.vm.inguest", "bench", json.dumps(spec)],
        capture_output=True, text=True, timeout=120, env={**os.environ, "XDG_STATE_HOME": str(tmp_path)},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert [line.split()[0] for line in lines][:6] == ["@@BEGIN", "@@RECORD", "@@END"] * 2
    result = read_results("@@UNAME here\n" + out.stdout + "@@DONE\n")
    assert [(r["mode"], r["jobs"]) for r in result.records] == [("INT", 1), ("INT", 2)]
    assert all(r["ios"] > 0 and r["fio_version"].startswith("fio-") for r in result.records)
    assert "no poll queues" in result.refused["CP"] and not result.error


def test_both_engines_in_one_guest_take_turns_round_by_round(tmp_path: Path) -> None:
    """--engine fio,dpas: repeat 1 by fio, repeat 1 by the engine, repeat 2 by fio, ...; each
    engine's refusals under its own name; the tables tell the kernel's rows from the
    engine's."""
    import sys

    from dpas.bench.backend import Sweep
    from dpas.reports.bench import averaged

    data = tmp_path / "data"
    data.write_bytes(b"\1" * (8 << 20))
    sweep = Sweep(modes=(Method.INT, Method.PAS), jobs=(1,), runtime_s=0.3, repeats=2)
    spec = {"sweep": sweep.record(), "device": str(data), "engine": "fio,dpas",
            "fio": shutil.which("fio") or "fio"}  # fmt: skip
    out = subprocess.run(
        [sys.executable, "-m", "dpas.vm.inguest", "bench", json.dumps(spec)],
        capture_output=True, text=True, timeout=120, env={**os.environ, "XDG_STATE_HOME": str(tmp_path)},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    result = read_results("@@UNAME here\n" + out.stdout + "@@DONE\n")
    assert not result.error, result.error
    turns = [(r["mode"], r["repeat"], r["engine"]) for r in result.records]
    assert turns == [
        ("INT", 1, "pvsync2"), ("INT", 1, "dpas engine"),
        ("INT", 2, "pvsync2"), ("INT", 2, "dpas engine"),
    ]  # fmt: skip
    # one d_init for all: the first round's probe
    assert len({r["d_init_ns"] for r in result.records}) == 1
    assert "no poll queues" in result.refused["PAS (fio)"]
    assert "PAS (dpas)" in result.refused and "PAS" not in result.refused
    rows = averaged(result.records)
    assert set(rows) == {"INT (kernel)", "INT (engine)"}
    assert rows["INT (kernel)"][1]["repeats"] == 2


def test_both_engines_are_for_the_guest_only(tmp_path: Path) -> None:
    out = run_dpas("bench", "INT", "--engine", "fio,dpas", "--device", str(tmp_path / "d"))
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip() == (
        "dpas: error: --engine fio,dpas: both engines in one sweep is for dpas vm bench (one "
        "boot); here run one, then the other"
    )


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


def test_vm_bench_hands_ioengine_to_the_guests_runner(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The command's --ioengine is in what the guest's runner is handed (not booted here)."""
    from dpas.cli.app import main
    from dpas.vm import runner

    seen = []

    def not_booted(config: runner.VmConfig, sweep: object) -> runner.VmBench:
        seen.append(runner.guest_spec(config, sweep))  # type: ignore[arg-type]
        raise VmError("not booted in this test")

    monkeypatch.setattr(runner, "_vm_bench", not_booted)
    with pytest.raises(SystemExit) as ended:
        main(["vm", "bench", "INT", "CP", "--jobs", "1,2", "--ioengine", "psync",
              "--out", str(tmp_path / "out"), "--cache", str(tmp_path / "cache")])  # fmt: skip
    assert ended.value.code == 2
    assert capsys.readouterr().err.strip() == "dpas: error: not booted in this test"
    ((spec),) = seen
    assert spec["ioengine"] == "psync" and spec["engine"] == "fio"
    assert spec["sweep"]["modes"] == ["INT", "CP"] and spec["sweep"]["jobs"] == [1, 2]


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
    script = plan_script({"sweep": {}}, python)
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
    """The issue's check: io_poll 1 and HYBRID_IOPOLL accepted (on 6.13 or later), found
    inside the guest. Which kernel sid has is asked of sid's package index (dpas's own
    resolution, into the cache the doctor boots from), not assumed."""
    import json

    from dpas.machine.kernel import Kernel
    from dpas.vm.kernels import resolve_kernel
    from dpas.vm.runner import default_cache

    sid = resolve_kernel("debian:sid", None, (), default_cache() / "kernels").release
    out = run_dpas("vm", "doctor", "--kernel", "debian:sid", "--json", timeout=900)
    assert out.returncode == 0, out.stderr
    record = json.loads(out.stdout)
    assert record["guest"]["kernel"] == sid
    host = {f["check"]: f for f in record["host"]}
    hybrid = host["io_uring HYBRID_IOPOLL setup"]
    if Kernel.parse(sid).io_uring_hybrid_polling:
        assert hybrid["status"] == "OK" and "accepted" in hybrid["evidence"], hybrid
    else:
        assert hybrid["status"] == "INFO" and "6.13" in hybrid["fix"], hybrid
    (drive,) = record["devices"]
    checks = {f["check"]: f for f in drive["findings"]}
    assert drive["device"] == "nvme0n1"
    assert checks["poll queues"]["evidence"].endswith("io_poll = 1")
    assert checks["interrupts while polling"]["status"] == "OK"
    text = run_dpas("vm", "doctor", "--kernel", "debian:sid", timeout=900)
    assert text.returncode == 0 and f"guest kernel {sid}" in text.stdout
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
    text = streamed(("INT", 1), ("INT", 2), done=False) + "@@BEGIN CP:1:1\n"
    result = read_results(text)
    assert [(r["mode"], r["jobs"]) for r in result.records] == [("INT", 1), ("INT", 2)]
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


@pytest.mark.slow
def test_a_guest_kernel_that_crashes_mid_plan_costs_no_finished_run() -> None:
    """Debian's 6.1 guest crashed by the plan (sysrq c) after its first run: dpas vm bench's
    backend keeps that run, says the kernel crashed between runs with the panic's line, and
    the whole takes well under a minute past the boot."""
    from dpas.bench.backend import Interrupted, Sweep
    from dpas.vm.runner import VmBackend, VmConfig

    config = VmConfig(GuestRun(crash_after=1), "debian:bookworm")
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

    config = VmConfig(GuestRun(hang_after=1), "debian:bookworm")
    sweep = Sweep(
        modes=(Method.INT, Method.CP), jobs=(1, 2), repeats=3, runtime_s=1.0, d_init_ns=4000
    )
    start = time.monotonic()
    with pytest.raises(Interrupted) as ended:
        VmBackend(config).run(sweep, lambda _: None)
    took = time.monotonic() - start
    message = str(ended.value)
    (_, (mode, jobs, _)) = sweep.rounds()[:2]  # round by round: the plan's second run
    assert message.startswith(f"{mode.value} x{jobs} did not finish in {1 + PER_RUN_S:.0f} s")
    # the guest dumped its blocked tasks first: the test's hang sleeps, so none is blocked
    assert "(no task blocked)" in message, message
    assert "1 run finished and kept" in message and ended.value.exit_code == 1
    assert [r.mode for r in ended.value.outcome.records] == ["INT"]
    assert took < 12 * (1 + PER_RUN_S), took  # the plan's own deadline: 12 runs


#: a QEMU stand-in: its console gets an oops on the boots the count file lists as crashing,
#: else its results port gets a plan's first and last lines
CRASHING_QEMU = """#!/bin/sh
n=$(($(cat {count}) + 1)); echo $n > {count}
console=""; results=""
while [ $# -gt 0 ]; do
    case "$1" in -serial) case "$2" in file:*) [ -z "$console" ] && console=${{2#file:}} \\
        || results=${{2#file:}};; esac;; esac
    shift
done
if grep -qx "$n" {crashing}; then
    printf '%s\\n' 'Oops: int3: 0000 [#1] SMP NOPTI' 'RIP: 0010:sched_clock_cpu+0x9/0x230' \\
        'Kernel panic - not syncing: Fatal exception in interrupt' > "$console"
else
    printf '@@UNAME 7.9.0\\n@@DONE\\n' > "$results"
fi
"""


@pytest.mark.parametrize("crashing", [[], [1], [1, 2]])
def test_a_kernel_that_crashes_before_the_plan_is_booted_once_more(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, crashing: list[int]
) -> None:
    """A crash before @@UNAME costs one boot more, said with the oops; a second one is the
    caller's (no plan output: the caller names the crash from the console kept)."""
    from dpas.vm import guest

    count, crash_list = tmp_path / "count", tmp_path / "crashing"
    count.write_text("0")
    crash_list.write_text("".join(f"{n}\n" for n in crashing))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    qemu = bin_dir / "qemu-system-x86_64"
    qemu.write_text(CRASHING_QEMU.format(count=count, crashing=crash_list))
    qemu.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setattr(guest, "kvm_unusable", lambda: "no KVM in this test")
    said: list[str] = []
    machine = guest.Machine(tmp_path / "k", tmp_path / "i", tmp_path / "d", 2, "1G")
    accel, _, text = guest.boot(machine, tmp_path, 30, None, said.append)
    assert accel == "tcg" and int(count.read_text()) == min(len(crashing) + 1, guest.BOOTS)
    if not crashing:
        assert text.startswith("@@UNAME") and said == []
        return
    (line,) = said
    assert "crashed before its plan began (Oops: int3: 0000 [#1] SMP NOPTI; RIP " in line
    assert "sched_clock_cpu+0x9/0x230" in line
    kept = tmp_path / "console.boot-crash.log"
    assert kept.read_text().startswith("Oops: int3") and str(kept) in line
    if crashing == [1]:
        assert text.startswith("@@UNAME")
    else:  # the second crash is left for the caller, its console in place
        assert text == "" and "Kernel panic" in (tmp_path / "console.log").read_text()


def test_a_dpas_record_from_the_guest_keeps_its_switch_stat_and_modes() -> None:
    """The guest's runner made the record (settled, switch_stat read in either form); the
    host keeps every field of it, marks fio's runs as the qemu backend's, adds the
    accelerator."""
    import dataclasses

    from dpas.real.fio import record
    from dpas.real.modes import plan_engine
    from dpas.results import Measured
    from dpas.vm.runner import _host_record

    modes = {"before": {"0": "PAS", "1": "PAS"}, "after": {"0": "OL", "1": "PAS"}}
    breakdown = {"cp": 10, "pas": 100, "ol": 5, "int": 0}
    made = record(
        plan_engine(Method.DPAS, None, None, "nvme0n1"),  # type: ignore[arg-type]
        Measured("DPAS", 2, "R", 1, 115, 0.115, 1000.0, 90.0, 80.0, 200.0, 300.0, 50.0, 10), 4000,
        breakdown=breakdown, switch_stat=[{"cpu": 0, "text": "cpu 0: ..."}],
        backend="fio", kernel="5.18.0-rc6-dpas-fast26", note="CPU 0 settled OL -> PAS",
        cpu_modes=modes, interrupts=0,
    )  # fmt: skip
    raw = json.loads(json.dumps(dataclasses.asdict(made)))  # as it crossed the serial port
    kept = _host_record(raw, "tcg", "refused (Invalid argument)", {})
    assert kept.breakdown == breakdown and kept.cpu_modes == modes
    assert kept.switch_stat == [{"cpu": 0, "text": "cpu 0: ..."}]
    assert kept.backend == "qemu" and kept.note == "CPU 0 settled OL -> PAS; guest under tcg"
    assert kept.hybrid_iopoll == "refused (Invalid argument)"


def test_a_bare_faulting_address_is_named_from_the_system_map(tmp_path: Path) -> None:
    """A tinyconfig kernel has no kallsyms: it prints RIP as an address, and a build's
    System.map names it; a crash before any run says so."""
    from dpas.vm.guest import GuestResult, kernel_trouble, symbol

    system_map = tmp_path / "System.map"
    system_map.write_text(
        "ffffffff81000000 T _text\nffffffff810617b7 t do_raw_spin_trylock\n"
        "ffffffff810617c0 D some_data\nffffffff810617d1 t do_raw_spin_lock\n"
        "ffffffff81061800 T next_function\n"
    )
    assert symbol(0xFFFFFFFF810617D8, system_map) == "do_raw_spin_lock+0x7"
    assert symbol(0xFFFFFFFF810617C4, system_map) == "do_raw_spin_trylock+0xd"  # data skipped
    assert symbol(0x1000, system_map) == ""
    console = "BUG: kernel NULL pointer dereference, address: 0\nRIP: 0010:0xffffffff810617d8\n"
    assert kernel_trouble(console, system_map).endswith(
        "RIP do_raw_spin_lock+0x7 (0xffffffff810617d8)"
    )
    assert kernel_trouble(console).endswith("RIP 0xffffffff810617d8")
    log = tmp_path / "console.log"
    log.write_text(console)
    assert ended_early(GuestResult(complete=False), log, None, system_map).startswith(
        "the guest kernel crashed before its first run (BUG: kernel NULL pointer dereference"
    )


BLOCKED_DUMP = """[   30.10] sysrq: Show Blocked State
[   30.10] task:fio             state:D stack:0     pid:201   ppid:200    flags:0x00004000
[   30.10] Call Trace:
[   30.10]  <TASK>
[   30.10]  __schedule+0x2e5/0x8a0
[   30.10]  schedule+0x5a/0xc0
[   30.10]  io_schedule+0x42/0x70
[   30.10]  ? hrtimer_init_sleeper+0x10/0x10
[   30.10]  blk_mq_poll_hybrid+0x1a/0x60
[   30.10]  </TASK>
[   30.11] task:kworker/0:1     state:D stack:0     pid:12    ppid:2      flags:0x00004000
[   30.11]  __schedule+0x2e5/0x8a0
[   30.11]  blk_mq_timeout_work+0x20/0x1a0
"""


def test_a_hung_run_names_the_tasks_the_kernels_dump_shows(tmp_path: Path) -> None:
    """The guest dumps its blocked tasks (sysrq w) before the host's deadline for a run: the
    line names each with the function it is stuck in; an empty dump says none was."""
    from dpas.vm.guest import GuestResult, blocked_tasks

    assert blocked_tasks(BLOCKED_DUMP) == [
        "fio (blk_mq_poll_hybrid)",
        "kworker/0:1 (blk_mq_timeout_work)",
    ]
    assert blocked_tasks("[ 1.0] boot\n") is None
    log = tmp_path / "console.log"
    result = GuestResult(complete=False, running="PAS x1")
    log.write_text(BLOCKED_DUMP)
    assert ended_early(result, log, 26.0).startswith(
        "PAS x1 did not finish in 26 s (blocked: fio (blk_mq_poll_hybrid), kworker/0:1 "
        "(blk_mq_timeout_work)); 0 runs finished"
    )
    log.write_text("[ 20.0] sysrq: Show Blocked State\n")
    assert ended_early(result, log, 26.0).startswith(
        "PAS x1 did not finish in 26 s (no task blocked)"
    )


def test_keep_going_boots_a_fresh_guest_for_the_runs_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first guest finishes INT x1 and crashes in INT x2; the second is told to leave
    both out and runs CP; the crash is named, its console kept, its next record noted. A guest
    that finishes nothing and is in no run ends it; so does a crash without --keep-going."""
    from dpas.bench.backend import Sweep
    from dpas.vm import runner
    from dpas.vm.guest import GuestEnded

    answers = [
        read_results(streamed(("INT", 1), done=False) + "@@BEGIN INT:2:1\n"),
        read_results(streamed(("CP", 1), ("CP", 2))),
    ]
    skips: list[list[tuple[str, int, int]]] = []

    def guest_sweep(config, kernel, python, sweep, skip):  # type: ignore[no-untyped-def]
        skips.append(sorted(skip))
        (config.cache / "run").mkdir(parents=True, exist_ok=True)
        (config.cache / "run" / "console.log").write_text(CONSOLE_OOPS)
        return answers.pop(0), "tcg", "", None

    monkeypatch.setattr(runner, "_guest_sweep", guest_sweep)
    monkeypatch.setattr(runner, "_guest_kernel", lambda config: GuestKernel(tmp_path, None, "x"))
    monkeypatch.setattr(runner, "guest_python", lambda: None)
    from test_backend import record as made

    def host_record(raw, *_):  # type: ignore[no-untyped-def]
        return replace(made(raw["mode"], raw["jobs"], raw["repeat"]), note="")

    monkeypatch.setattr(runner, "_host_record", host_record)
    sweep = Sweep(modes=(Method.INT, Method.CP), jobs=(1, 2), runtime_s=1.0, d_init_ns=4000)
    config = runner.VmConfig(GuestRun(), cache=tmp_path, keep_going=True)
    got = runner._vm_bench(config, sweep)
    assert skips == [[], [("INT", 1, 1), ("INT", 2, 1)]]
    assert [(r.mode, r.jobs) for r in got.records] == [("INT", 1), ("CP", 1), ("CP", 2)]
    (crash,) = got.crashed
    kept = tmp_path / "run" / "console.crash-1.log"
    assert (
        crash.startswith("the guest kernel crashed during INT x2 (BUG: kernel NULL")
        and str(kept) in crash
    )
    assert kept.read_text() == CONSOLE_OOPS
    assert "in a fresh guest after: the guest kernel crashed during INT x2" in got.records[1].note
    assert "fresh guest" not in got.records[2].note
    # no progress at all: no endless boots
    answers[:] = [read_results("@@UNAME x\n")]
    with pytest.raises(GuestEnded, match="before its first run"):
        runner._vm_bench(config, sweep)
    answers[:] = [read_results(streamed(("INT", 1), done=False))]
    with pytest.raises(GuestEnded, match="between runs"):
        runner._vm_bench(replace(config, keep_going=False), sweep)


@pytest.mark.slow
def test_keep_going_goes_on_in_a_fresh_guest_after_a_hung_run() -> None:
    """Debian's 6.1 with a run that never ends in each guest (the test's seam: the second run
    of each boot): with --keep-going a fresh guest runs what is left, so every run but the
    two hung ones is measured, and both hangs are named."""
    from dpas.bench.backend import Sweep
    from dpas.vm.runner import VmBackend, VmConfig

    config = VmConfig(GuestRun(hang_after=1), "debian:bookworm", keep_going=True)
    sweep = Sweep(modes=(Method.INT, Method.CP), jobs=(1, 2), runtime_s=1.0, d_init_ns=4000)
    outcome = VmBackend(config).run(sweep, lambda _: None)
    assert [(r.mode, r.jobs) for r in outcome.records] == [("INT", 1), ("CP", 1)]
    crashed = outcome.context["crashed"]
    assert [line.split(" did not finish")[0] for line in crashed] == ["INT x2", "CP x2"]
    assert "in a fresh guest after: INT x2 did not finish" in outcome.records[1].note
    assert outcome.records[1].interrupts == 0  # CP in the fresh guest still polled
