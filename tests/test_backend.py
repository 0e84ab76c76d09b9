"""The backend interface: the sweep's order and record, the one results.json shape, and a
sweep that ended early, driven through the commands as a backend meets them."""

from __future__ import annotations

import csv
import json
import signal
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from io import StringIO
from pathlib import Path

import pytest
from rich.console import Console

from dpas.bench.backend import Interrupted, Outcome, Sweep, results_record
from dpas.cli import bench as cli_bench
from dpas.cli import main
from dpas.cli import vm as cli_vm
from dpas.policy import Method, Op, Order, SwitchParams
from dpas.real.stop import Stopped
from dpas.reports.bench import CSV_COLUMNS, mode_tables, write_csv
from dpas.results import SCHEMA, WORKLOAD_COLUMNS, RunResult
from dpas.vm import runner as vm_runner
from dpas.vm.guest import GuestRun
from dpas.vm.runner import VmBackend, VmBench, VmConfig
from dpas.workload import load as load_workload

TOP = ["schema", "backend", "kernel", "config", "d_init_ns", "refused", "ended_early", "records"]
NEW_FIELDS = {
    "ctx_voluntary": 7,
    "ctx_involuntary": 3,
    "overslept": 60,
    "underslept": 40,
    "log": "/tmp/dpas-io.log",
}


def record(mode: str, jobs: int, repeat: int) -> RunResult:
    return RunResult(
        mode=mode, jobs=jobs, rw="R", repeat=repeat, ios=1000, runtime_s=1.0, iops=1000.0,
        lat_mean_us=50.0, lat_p50_us=40.0, lat_p99_us=90.0, lat_p999_us=95.0, cpu_pct=3.0,
        ctx=10, breakdown=None, switch_stat=None, timeline=None, sleeps_taken=None,
        sleeps_skipped=None, max_qd=None, d_init_ns=4321, seed=None, events=None,
        backend="fake", **NEW_FIELDS,  # type: ignore[arg-type]
    )  # fmt: skip


@dataclass
class FakeBackend:
    """Refuses PAS; with ``stop_after``, a SIGTERM arrives once that many runs are done."""

    stop_after: int | None = None
    name: str = "fake"

    def run(self, sweep: Sweep, done: Callable[[str], None]) -> Outcome:
        outcome = Outcome(
            refused={"PAS": "PAS needs the DPAS kernel"},
            d_init_ns=4321,
            context={"kernel": "6.1-fake"},
            header=["fake header"],
            config={"device": "fake0"},
        )
        for mode, jobs, repeat in sweep.runs():
            if mode.value in outcome.refused:
                continue
            if len(outcome.records) == self.stop_after:
                raise Interrupted(Stopped(signal.SIGTERM), outcome)
            outcome.records.append(record(mode.value, jobs, repeat))
            done(f"{mode.value} x{jobs}")
        return outcome


def test_runs_go_mode_then_jobs_then_repeat() -> None:
    sweep = Sweep((Method.DPAS, Method.INT), jobs=(4, 1), repeats=2)
    assert sweep.runs() == [
        (Method.DPAS, 4, 1), (Method.DPAS, 4, 2), (Method.DPAS, 1, 1), (Method.DPAS, 1, 2),
        (Method.INT, 4, 1), (Method.INT, 4, 2), (Method.INT, 1, 1), (Method.INT, 1, 2),
    ]  # fmt: skip
    assert Sweep(repeats=3).runs()[:3] == [
        (Method.INT, 1, 1),
        (Method.INT, 1, 2),
        (Method.INT, 1, 3),
    ]
    assert len(Sweep().runs()) == 5 * 5


def test_the_sweep_record_names_every_field() -> None:
    sweep = Sweep(
        (Method.CP,), Op.WRITE, 2, (1, 8), "split", 2.5, None, 9, 8192, 5000,
        SwitchParams(param1=3), Order.GUIDE,
    )  # fmt: skip
    assert sweep.record() == {
        "modes": ["CP"], "rw": "W", "repeats": 2, "jobs": [1, 8], "cpus": "split",
        "runtime_s": 2.5, "ios": None, "seed": 9, "bs": 8192, "d_init": 5000,
        "switch": asdict(SwitchParams(param1=3)), "order": "guide", "rules": "lab",
        "adaptive": 1, "workload": "steady", "ius": [],
    }  # fmt: skip
    assert Sweep().record()["d_init"] == "auto" and Sweep().record()["rw"] == "R"
    burst = Sweep(workload=load_workload("bursts"))
    assert burst.record()["workload"] == load_workload("bursts").record()
    assert Sweep.from_record(burst.record()) == burst
    assert set(Sweep().record()) == {f.name for f in fields(Sweep)} - {"d_init_ns"} | {"d_init"}


def test_a_backend_through_run_backend_writes_the_one_shape(tmp_path: Path) -> None:
    sweep = Sweep((Method.INT, Method.PAS), jobs=(1, 2), repeats=2)
    screen = StringIO()
    console = Console(file=screen, width=200)
    outcome = cli_bench.run_backend(
        FakeBackend(), sweep, console, tmp_path, False, lambda o: f"fake on {o.context['kernel']}"
    )
    saved = json.loads((tmp_path / "results.json").read_text())
    assert list(saved) == TOP
    assert saved == results_record(sweep, "fake", outcome)
    assert saved["schema"] == SCHEMA == "dpas.bench/2" and saved["backend"] == "fake"
    assert saved["kernel"] == "6.1-fake" and saved["config"] == {
        **sweep.record(),
        "device": "fake0",
    }
    assert saved["d_init_ns"] == 4321 and saved["ended_early"] is None
    assert saved["refused"] == {"PAS": "PAS needs the DPAS kernel"}
    assert [(r["mode"], r["jobs"], r["repeat"]) for r in saved["records"]] == [
        ("INT", 1, 1), ("INT", 1, 2), ("INT", 2, 1), ("INT", 2, 2),
    ]  # fmt: skip
    assert {k: saved["records"][0][k] for k in NEW_FIELDS} == NEW_FIELDS
    rows = list(csv.reader((tmp_path / "results.csv").open()))
    steady = tuple(c for c in CSV_COLUMNS if c not in WORKLOAD_COLUMNS)  # as before workloads
    assert tuple(rows[0]) == steady and rows[0][-6:] == [*NEW_FIELDS, "engine"]
    assert rows[1][-6:-1] == [str(v) for v in NEW_FIELDS.values()]
    assert rows[1][-1] == (saved["records"][0]["engine"] or "")  # who completed the I/Os
    assert (tmp_path / "bench.png").read_bytes()[:4] == b"\x89PNG"
    text = screen.getvalue()
    assert "PAS refused: PAS needs the DPAS kernel" in text and "fake header" in text
    assert "INT (mean of 2 runs)" in text and f"wrote {tmp_path / 'results.json'}" in text


def test_records_without_the_new_fields_still_make_a_csv(tmp_path: Path) -> None:
    """A dpas.bench/1 record (no ctx_voluntary ... log): empty cells, no KeyError."""
    old = {k: v for k, v in asdict(record("INT", 1, 1)).items() if k not in NEW_FIELDS}
    write_csv([old], tmp_path / "old.csv")
    rows = list(csv.reader((tmp_path / "old.csv").open()))
    assert rows[1][-5:] == [""] * 5


def test_the_tables_show_the_sleeps_verdicts_only_where_sleeps_were_taken() -> None:
    """The engine's over/under column: means over repeats for a sleeping mode; absent for a
    mode that never slept and for records without verdicts (fio, dpas.bench/1)."""
    slept = [
        asdict(record("PAS", 1, r)) | {"sleeps_taken": 100, "overslept": o, "underslept": 100 - o}
        for r, o in ((1, 60), (2, 70))
    ]
    never = [asdict(record("CP", 1, 1)) | {"sleeps_taken": 0}]
    old = [{k: v for k, v in asdict(record("INT", 1, 1)).items() if k not in NEW_FIELDS}]

    def text(records: list[dict[str, object]]) -> str:
        screen = StringIO()
        for table in mode_tables(records):
            Console(file=screen, width=200).print(table)
        return screen.getvalue()

    assert "over/under" in text(slept) and "65/35" in text(slept)
    assert "over/under" not in text(never + old)


def test_an_interrupted_sweep_is_saved_then_raised(tmp_path: Path) -> None:
    sweep = Sweep((Method.INT,), jobs=(1, 2, 4))
    console = Console(file=StringIO())
    with pytest.raises(Interrupted) as stopped:
        cli_bench.run_backend(FakeBackend(stop_after=2), sweep, console, tmp_path, False, str)
    assert stopped.value.exit_code == 128 + signal.SIGTERM
    assert isinstance(stopped.value.cause, Stopped)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert list(saved) == TOP
    assert [r["jobs"] for r in saved["records"]] == [1, 2]
    assert saved["ended_early"] == str(stopped.value.cause)
    assert saved["ended_early"].startswith("stopped by SIGTERM")


def test_dpas_bench_saves_an_interrupted_sweep_and_exits_with_its_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli_bench, "SimulatorBackend", lambda profile: FakeBackend(stop_after=1))
    with pytest.raises(SystemExit) as ended:
        main(["bench", "INT", "--jobs", "1,2", "--out", str(tmp_path)])
    assert ended.value.code == 128 + signal.SIGTERM
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1].startswith("dpas: error: stopped by SIGTERM")
    saved = json.loads((tmp_path / "results.json").read_text())
    assert list(saved) == TOP and saved["backend"] == "fake"
    assert [r["jobs"] for r in saved["records"]] == [1]
    assert saved["config"]["modes"] == ["INT"] and saved["config"]["jobs"] == [1, 2]


def test_dpas_bench_refuses_when_the_backend_refused_every_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli_bench, "SimulatorBackend", lambda profile: FakeBackend())
    with pytest.raises(SystemExit) as ended:
        main(["bench", "PAS", "--jobs", "1", "--out", str(tmp_path)])
    assert ended.value.code == 2
    err = capsys.readouterr().err
    assert err.strip() == "dpas: error: every mode was refused: PAS needs the DPAS kernel"
    assert json.loads((tmp_path / "results.json").read_text())["records"] == []


def test_dpas_vm_bench_runs_its_backend_through_the_same_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    made: list[VmConfig] = []

    def backend(config: VmConfig) -> FakeBackend:
        made.append(config)
        return FakeBackend()

    monkeypatch.setattr(cli_vm, "VmBackend", backend)
    args = ["vm", "bench", "INT", "--jobs", "1", "--pin", "split", "--cpus", "3"]
    main([*args, "--memory", "2G", "--cache", str(tmp_path / "c"), "--out", str(tmp_path)])
    (config,) = made
    assert (config.run.cpus, config.run.memory, config.spec) == (3, "2048M", "debian")
    saved = json.loads((tmp_path / "results.json").read_text())
    assert list(saved) == TOP and saved["config"]["cpus"] == "split"
    assert saved["config"]["runtime_s"] == 10.0 and saved["config"]["d_init"] == "auto"
    assert "fake header" in capsys.readouterr().out


def test_the_vm_backend_gives_the_guest_the_sweep(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[VmConfig, Sweep]] = []

    def vm_bench(config: VmConfig, sweep: Sweep) -> VmBench:
        seen.append((config, sweep))
        return VmBench(
            records=[record("INT", 2, 1)], kernel="6.1.0-56-amd64", accelerator="tcg",
            why_not_kvm="no vmx", d_init_ns=4555, fio_version="fio-3.33", seconds=12.0,
            hybrid_iopoll="refused (Invalid argument)",
        )  # fmt: skip

    monkeypatch.setattr(vm_runner, "vm_bench", vm_bench)
    guest = VmConfig(
        GuestRun(cpus=4, memory="512M", ioengine="psync"), "debian:sid", cache=tmp_path
    )
    sweep = Sweep((Method.INT, Method.DPAS), jobs=(2,), cpus="0-1", runtime_s=3, bs=8192)
    labels: list[str] = []
    outcome = VmBackend(guest).run(sweep, labels.append)
    ((config, given),) = seen
    assert given is sweep and (config.run.cpus, config.run.memory) == (4, "512M")
    # what the guest's runner is handed: the whole sweep, as dpas bench --device takes it
    spec = vm_runner.guest_spec(config, given)
    assert Sweep.from_record(spec["sweep"]) == sweep and spec["sweep"]["d_init"] == "auto"
    assert (spec["engine"], spec["ioengine"], spec["log"]) == ("fio", "psync", False)
    assert labels == ["INT x2"] and outcome.d_init_ns == 4555
    assert outcome.context["accelerator"] == "tcg" and outcome.context["kernel"] == "6.1.0-56-amd64"
    assert outcome.config == {
        "kernel": "debian:sid", "vcpus": 4, "memory": "512M", "ioengine": "psync", "keep_going": False,
    }  # fmt: skip
    assert outcome.header[0].startswith("guest kernel 6.1.0-56-amd64 (io_uring HYBRID_IOPOLL")
    assert "under TCG (no vmx), 4 vCPUs, 512M" in outcome.header[0]
