"""Real runs: real fio on a file here, knobs on a sysfs root made in the test, a real crash,
the destroy-data guard on a loop device, and switch_stat deltas."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_dpas

from dpas.bench.backend import Sweep
from dpas.machine.fio import FioError
from dpas.machine.kernel import Kernel
from dpas.policy import Method, Op, SwitchParams
from dpas.policy.switch_stat import NoBreakdown, delta, parse
from dpas.real.executor import LocalExecutor
from dpas.real.knobs import KnobError, QueueKnobs, applied, restore_journal
from dpas.real.modes import ENGINE, Refused, plan_engine, plan_mode
from dpas.real.runner import Runner
from dpas.real.site import RealConfig

DPAS_KNOBS = {
    "pas_enabled": "0",
    "pas_adaptive_enabled": "0",
    "pas_d_init": "100",
    "switch_enabled": "0",
    "ehp_enabled": "0",
    **{f"switch_param{i}": "0" for i in range(1, 8)},
    "switch_stat": "",
}


def sysfs(tmp_path: Path, dpas: bool = True, io_poll: str = "1") -> tuple[Path, Path]:
    """A sysfs root with nvme0n1's queue: this machine's vda queue files, plus DPAS knobs."""
    root = tmp_path / "sys"
    queue = root / "block" / "nvme0n1" / "queue"
    queue.mkdir(parents=True)
    real = Path("/sys/block/vda/queue")
    for f in real.iterdir() if real.is_dir() else []:
        try:
            (queue / f.name).write_text(f.read_text())
        except OSError:
            continue  # unreadable attributes are left out
    (queue / "io_poll").write_text(f"{io_poll}\n")
    (queue / "io_poll_delay").write_text("-1\n")
    (queue / "nomerges").write_text("0\n")
    if dpas:
        for name, value in DPAS_KNOBS.items():
            (queue / name).write_text(f"{value}\n")
    return root, queue


def values(queue: Path) -> dict[str, str]:
    """Every knob's value as sysfs shows it (a real attribute adds the newline itself)."""
    return {f.name: f.read_text().strip() for f in sorted(queue.iterdir())}


KERNEL_518 = Kernel.parse("5.18.0-dpas")
KERNEL_618 = Kernel.parse("6.18.44")


def test_the_writes_of_every_mode_on_the_dpas_kernel(tmp_path: Path) -> None:
    _, queue = sysfs(tmp_path)
    knobs = QueueKnobs(LocalExecutor(), queue)
    switch = SwitchParams(param3=30)
    plans = {m: plan_mode(m, KERNEL_518, knobs, 4000, switch) for m in Method.policies()}
    common = {"nomerges": "2", "ehp_enabled": "0"}
    assert plans[Method.INT].knobs == {
        **common,
        "io_poll_delay": "-1",
        "pas_enabled": "0",
        "switch_enabled": "0",
    }
    assert not plans[Method.INT].hipri and plans[Method.INT].ioengine == "pvsync2"
    assert plans[Method.CP].knobs == plans[Method.INT].knobs and plans[Method.CP].hipri
    assert plans[Method.LHP].knobs == {
        **common,
        "io_poll_delay": "0",
        "pas_enabled": "0",
        "switch_enabled": "0",
    }
    assert plans[Method.EHP].knobs["ehp_enabled"] == "1"
    assert plans[Method.PAS].knobs == {
        **common,
        "io_poll_delay": "0",
        "pas_enabled": "1",
        "pas_adaptive_enabled": "1",
        "pas_d_init": "4000",
        "switch_enabled": "0",
    }
    dpas = plans[Method.DPAS].knobs
    assert dpas["switch_param3"] == "30" and dpas["switch_param7"] == "10000"
    assert list(dpas)[-1] == "switch_enabled" and dpas["switch_enabled"] == "1"


def test_stock_kernel_refuses_what_needs_dpas_knobs_naming_them(tmp_path: Path) -> None:
    _, queue = sysfs(tmp_path, dpas=False)
    knobs = QueueKnobs(LocalExecutor(), queue)
    for mode, knob in (
        (Method.PAS, "pas_enabled"),
        (Method.DPAS, "pas_enabled"),
        (Method.EHP, "ehp_enabled"),
    ):
        with pytest.raises(Refused, match=f"needs the DPAS kernel: queue/{knob} is missing"):
            plan_mode(mode, KERNEL_618, knobs, 4000, SwitchParams(), where="nvme0n1")
    cp = plan_mode(Method.CP, KERNEL_618, knobs, 4000, SwitchParams())
    assert (cp.ioengine, cp.hipri, cp.knobs) == ("io_uring", True, {})
    assert "5.19" in cp.note
    with pytest.raises(Refused, match="LHP with fio needs block hybrid polling"):
        plan_mode(Method.LHP, KERNEL_618, knobs, 4000, SwitchParams())
    lhp_old = plan_mode(Method.LHP, Kernel.parse("6.1.0"), knobs, 4000, SwitchParams())
    assert lhp_old.knobs == {"io_poll_delay": "0"} and lhp_old.ioengine == "io_uring"
    _, no_poll = sysfs(tmp_path / "b", dpas=False, io_poll="0")
    with pytest.raises(Refused, match=r"no poll queues \(queue/io_poll is 0"):
        plan_mode(Method.CP, KERNEL_618, QueueKnobs(LocalExecutor(), no_poll), 1, SwitchParams())


def test_fio_refusals_name_the_engine(tmp_path: Path) -> None:
    _, queue = sysfs(tmp_path, dpas=False)
    knobs = QueueKnobs(LocalExecutor(), queue)
    for mode in (Method.PAS, Method.DPAS, Method.EHP, Method.LHP, Method.HYB):
        with pytest.raises(Refused, match="--engine dpas runs it"):
            plan_mode(mode, KERNEL_618, knobs, 4000, SwitchParams())


def test_the_engine_plans_every_mode_and_touches_only_io_poll_delay(tmp_path: Path) -> None:
    """On a kernel with block hybrid polling (before 6.4, the DPAS kernel too) the engine sets
    io_poll_delay to -1 for polled modes, so that the kernel adds no sleep of its own."""
    _, queue = sysfs(tmp_path, dpas=True)
    (queue / "io_poll_delay").write_text("0\n")
    knobs = QueueKnobs(LocalExecutor(), queue)
    for mode in Method.policies():
        plan = plan_engine(mode, KERNEL_518, knobs, "nvme0n1")
        assert plan.ioengine == ENGINE and plan.hipri == (mode is not Method.INT)
        assert plan.knobs == ({} if mode is Method.INT else {"io_poll_delay": "-1"})
    stock = QueueKnobs(LocalExecutor(), sysfs(tmp_path / "b", dpas=False)[1])
    assert all(plan_engine(m, KERNEL_618, stock, "x").knobs == {} for m in Method)
    with pytest.raises(Refused, match=r"HYB needs .*6\.13 or newer \(kernel 6\.1\.0\)"):
        plan_engine(Method.HYB, Kernel.parse("6.1.0"), stock, "x")
    no_poll = QueueKnobs(LocalExecutor(), sysfs(tmp_path / "c", dpas=False, io_poll="0")[1])
    for mode in (Method.CP, Method.PAS, Method.HYB):
        with pytest.raises(Refused, match="no poll queues"):
            plan_engine(mode, KERNEL_618, no_poll, "x")
    assert plan_engine(Method.INT, KERNEL_618, no_poll, "x").hipri is False


def test_applied_restores_after_a_failure_raised_mid_run(tmp_path: Path) -> None:
    _, queue = sysfs(tmp_path)
    before = values(queue)
    journal = tmp_path / "journal.json"
    knobs = QueueKnobs(LocalExecutor(), queue)
    with (
        pytest.raises(RuntimeError, match="mid-run"),
        applied(knobs, {"pas_enabled": "1", "io_poll_delay": "0"}, journal),
    ):
        assert (queue / "pas_enabled").read_text().strip() == "1"
        assert json.loads(journal.read_text())["knobs"] == {
            "pas_enabled": "0",
            "io_poll_delay": "-1",
        }
        raise RuntimeError("mid-run")
    assert values(queue) == before and not journal.exists()


def test_runner_restores_when_fio_fails_mid_run(tmp_path: Path) -> None:
    root, queue = sysfs(tmp_path)
    before = values(queue)
    target = tmp_path / "data"
    target.write_bytes(b"\0" * 4096)
    (root / "dev" / "block").mkdir(parents=True)
    config = RealConfig(str(target), fio="/bin/false", journal=tmp_path / "j.json")
    sweep = Sweep((Method.PAS,), jobs=(1,), runtime_s=1, d_init_ns=5000)
    runner = Runner(config, LocalExecutor(root, release="5.18.0-dpas"))
    runner.site.knobs = QueueKnobs(runner.site.executor, queue)  # the file's disk is nvme0n1 here
    runner.fio.version = lambda: "fio-false"  # type: ignore[method-assign]
    with pytest.raises(FioError, match="fio gave no JSON result"):
        runner.run(sweep)
    assert values(queue) == before and not (tmp_path / "j.json").exists()


def test_restore_from_the_journal_after_a_real_crash(tmp_path: Path) -> None:
    _, queue = sysfs(tmp_path)
    before = values(queue)
    journal = tmp_path / "journal.json"
    crash = f"""
import os, signal
from pathlib import Path
from dpas.real.executor import LocalExecutor
from dpas.real.knobs import QueueKnobs, applied
knobs = QueueKnobs(LocalExecutor(), Path({str(queue)!r}))
with applied(knobs, {{"pas_enabled": "1", "switch_enabled": "1", "pas_d_init": "4200"}},
             Path({str(journal)!r})):
    os.kill(os.getpid(), signal.SIGKILL)  # dies inside: no finally runs
"""
    proc = subprocess.run([sys.executable, "-c", crash], capture_output=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert (queue / "pas_enabled").read_text().strip() == "1" and journal.exists()
    with (
        pytest.raises(KnobError, match="did not restore its knobs"),
        applied(QueueKnobs(LocalExecutor(), queue), {"pas_enabled": "0"}, journal),
    ):
        pass
    out = run_dpas("restore", "--journal", str(journal))
    assert out.returncode == 0, out.stderr
    assert "restored pas_enabled = 0" in out.stdout
    assert values(queue) == before and not journal.exists()
    again = run_dpas("restore", "--journal", str(journal))
    assert again.returncode == 2 and "nothing to restore" in again.stderr


def test_restore_journal_names_unwritable_knobs(tmp_path: Path) -> None:
    journal = tmp_path / "j.json"
    gone = tmp_path / "block" / "gone" / "queue"
    journal.write_text(json.dumps({"queue_dir": str(gone), "knobs": {"x": "1"}}))
    with pytest.raises(KnobError, match="could not restore x"):
        restore_journal(LocalExecutor(), journal)
    assert journal.exists()


def test_switch_stat_delta_from_two_real_format_snapshots() -> None:
    before = parse(
        "CPU[ 0] MODE[2] QD[ 1] param1: 0 param2: 10 param3: 10 polled io: 1000, pas io: 300, "
        "ol io: 0, int io: 0\n"
        "CPU[ 1] MODE[0] QD[ 0] param1: 0 param2: 10 param3: 10 polled io: 0, pas io: 100, "
        "ol io: 200, int io: 5000\n"
    )
    after = parse(
        "[  91.1] CPU[ 0] MODE[1] QD[ 0] param1: 0 param2: 10 param3: 10 polled io: 2000, "
        "pas io: 400, ol io: 0, int io: 0\n"
        "[  91.2] CPU[ 1] MODE[0] QD[ 0] param1: 0 param2: 10 param3: 10 polled io: 0, "
        "pas io: 100, ol io: 300, int io: 9000\n"
    )
    assert delta(before, after) == {"cp": 1000, "pas": 100, "ol": 100, "int": 4000}
    # a CPU that only one read shows: its totals would count what it held before the run
    appeared = parse(
        "[  91.3] CPU[ 2] MODE[2] QD[ 0] param1: 0 param2: 10 param3: 10 polled io: 0, "
        "pas io: 50, ol io: 0, int io: 0\n"
    )
    with pytest.raises(NoBreakdown, match=r"CPUs changed between its reads \(CPU 2 appeared\)"):
        delta(before, after + appeared)


@pytest.mark.parametrize("rw", [Op.READ, Op.WRITE])
def test_real_fio_int_on_a_file(tmp_path: Path, fio: str, rw: Op) -> None:
    config = RealConfig(str(tmp_path / "data"), fio=fio, journal=tmp_path / "j.json", size=32 << 20)
    sweep = Sweep((Method.INT,), rw=rw, jobs=(1, 2), runtime_s=2, d_init_ns=4000)
    bench = Runner(config, LocalExecutor()).run(sweep)
    assert [(r.mode, r.jobs, r.rw) for r in bench.records] == [
        ("INT", 1, "R" if rw is Op.READ else "W"),
        ("INT", 2, "R" if rw is Op.READ else "W"),
    ]
    for r in bench.records:
        assert r.backend == "fio" and r.fio_version.startswith("fio-") and r.kernel
        assert r.iops > 0 and r.ios >= r.iops * 1.5 and r.lat_mean_us > 0
        assert r.lat_p50_us <= r.lat_p99_us <= r.lat_p999_us and r.ctx > 0
        assert r.engine == "pvsync2" and r.knobs == {}
    assert not (tmp_path / "j.json").exists()


def test_a_fractional_runtime_is_what_fio_runs_and_the_auto_d_init_probe_is_short(
    tmp_path: Path, fio: str
) -> None:
    """fio reads "--runtime=1.5s" as 1 s and "0.5s" as no runtime at all (then it reads the
    whole file): dpas gives fio milliseconds. The auto d_init probe (50 ms) and a 1.5 s run
    last what they say, by fio's own clock."""
    config = RealConfig(str(tmp_path / "data"), fio=fio, journal=tmp_path / "j.json", size=8 << 20)
    sweep = Sweep((Method.INT,), jobs=(1,), runtime_s=1.5)
    bench = Runner(config, LocalExecutor()).run(sweep)
    assert 1.4 <= bench.records[0].runtime_s <= 1.7
    runner = Runner(config, LocalExecutor())
    plan = runner.plan(Method.INT, sweep, 100)
    probe = runner.fio.measure(sweep, plan, 1, 0.05)
    assert 0.04 <= probe.runtime_s <= 0.2 and probe.mode == "INT" and probe.jobs == 1


@pytest.mark.parametrize("rw", [Op.READ, Op.WRITE])
def test_real_fio_cp_on_a_file_here_is_refused_with_the_kernels_reason(
    tmp_path: Path, fio: str, rw: Op
) -> None:
    """This machine has no polled block device: io_uring hipri on its files gets EOPNOTSUPP."""
    # without a sysfs view of the file's disk, the preflight cannot tell: fio really runs
    bare = LocalExecutor(sysfs_root=tmp_path / "empty-sys")
    config = RealConfig(str(tmp_path / "data"), fio=fio, journal=tmp_path / "j.json", size=32 << 20)
    sweep = Sweep((Method.CP,), rw=rw, jobs=(1, 2), runtime_s=2, d_init_ns=4000)
    bench = Runner(config, bare).run(sweep)
    if bench.records:  # a machine whose disk polls: then CP must have polled-engine records
        assert all(r.engine == "io_uring hipri" and r.iops > 0 for r in bench.records)
        return
    assert "EOPNOTSUPP" in bench.refused["CP"] and "no poll queues" in bench.refused["CP"]


def test_bench_device_cli_prints_tables_and_refusals(tmp_path: Path, fio: str) -> None:
    out = run_dpas(
        "bench",
        "INT",
        "CP",
        "--device",
        str(tmp_path / "f"),
        "--jobs",
        "1",
        "--runtime",
        "1",
        "--size",
        "16m",
        "--out",
        str(tmp_path / "out"),
        "--journal",
        str(tmp_path / "j.json"),
        "--d-init",
        "5000",
    )
    assert out.returncode == 0, out.stderr
    assert "INT: interrupt completion, fio pvsync2 without hipri" in out.stdout
    assert "Jobs" in out.stdout and "CP refused" in out.stdout
    data = json.loads((tmp_path / "out" / "results.json").read_text())
    assert data["backend"] == "fio" and data["records"][0]["mode"] == "INT"
    assert "CP" in data["refused"]
