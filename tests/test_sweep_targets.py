"""dpas sweep's real points: a file with real fio and the engine, a DPAS queue on a sysfs root
(the test seam of dpas bench's safety tests), and the QEMU guest; the same rules as dpas bench."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import run_dpas
from test_safety import Rig, gone, rig  # noqa: F401  (rig: the fixture)

from dpas.sweep import dataset
from dpas.sweep.grid import parse


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_file_points_run_with_real_fio_and_the_engine(tmp_path: Path) -> None:
    data = tmp_path / "data.img"
    grid = tmp_path / "g.toml"
    grid.write_text(
        f'target = ["sim", "{data}"]\nengine = ["fio", "dpas"]\nmode = "INT"\njobs = [1, 2]\n'
        "runtime = 0.2\nd_init = 5000\n"
    )
    out = tmp_path / "out"
    done = run_dpas("sweep", str(grid), "--out", str(out))
    assert done.returncode == 0, done.stderr
    # the simulator's two points once (engine means nothing there), the file's four
    assert "ran 6 points" in done.stdout and "4 on their targets here" in done.stdout
    rows = dataset.read(out / "points")
    real = [r for r in rows if r["target"] == str(data)]
    assert {(r["engine"], r["jobs"]) for r in real} == {
        ("fio", 1),
        ("fio", 2),
        ("dpas", 1),
        ("dpas", 2),
    }
    assert all(r["iops"] > 0 and r["refused"] is None and r["profile"] is None for r in real)
    records = dataset.read_records(out)
    assert set(records) == {r["key"] for r in rows}
    assert {records[r["key"]]["backend"] for r in real} == {"fio", "engine"}
    assert all(records[r["key"]]["iops"] == r["iops"] for r in rows)
    before = _digest(data)  # dpas made it, filled with seeded data; reads leave it so
    again = run_dpas("sweep", str(grid), "--out", str(out))
    assert "ran 0 points, skipped 6" in again.stdout and _digest(data) == before


def test_a_write_to_an_existing_file_needs_destroy_data(tmp_path: Path) -> None:
    data = tmp_path / "precious"
    data.write_bytes(os.urandom(1 << 20))
    before = _digest(data)
    grid = tmp_path / "g.toml"
    grid.write_text(f'target = "{data}"\nmode = "INT"\nrw = ["R", "W"]\nruntime = 0.2\n')
    refused = run_dpas("sweep", str(grid), "--out", str(tmp_path / "out"))
    assert refused.returncode == 2 and "--destroy-data" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and "Traceback" not in refused.stderr
    assert _digest(data) == before and not (tmp_path / "out" / "points").exists()
    allowed = run_dpas("sweep", str(grid), "--out", str(tmp_path / "out"), "--destroy-data")
    assert allowed.returncode == 0, allowed.stderr
    assert {r["rw"] for r in dataset.read(tmp_path / "out" / "points")} == {"R", "W"}


def test_a_missing_device_is_refused_before_any_point(tmp_path: Path) -> None:
    grid = tmp_path / "g.toml"
    grid.write_text('target = ["sim", "nvme7n7"]\nmode = "INT"\nruntime = 0.05\n')
    result = run_dpas("sweep", str(grid), "--out", str(tmp_path / "out"))
    assert result.returncode == 2 and "nvme7n7" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out" / "points").exists() and not Path("nvme7n7").exists()


def test_device_options_need_a_device_target(tmp_path: Path) -> None:
    grid = tmp_path / "g.toml"
    grid.write_text('mode = "INT"\nruntime = 0.05\n')
    result = run_dpas("sweep", str(grid), "--out", str(tmp_path / "o"), "--destroy-data")
    assert result.returncode == 2 and "--destroy-data means nothing" in result.stderr


def test_settings_a_target_does_not_read_are_null_and_not_repeated() -> None:
    grid = parse(
        'target = ["sim", "nvme0n1"]\nprofile = ["qemu-lab", "optane-p5800x"]\n'
        'adaptive = [0, 1]\norder = ["kernel", "guide"]\nengine = ["fio", "dpas"]\nmode = "PAS"'
    )
    sim = [p for p in grid.points if p.simulated]
    real = [p for p in grid.points if not p.simulated]
    assert len(sim) == 8 and all(p.engine is None and p.kernel is None for p in sim)
    # fio reads neither the profile, adaptive nor order; the engine reads order
    assert sorted((p.engine, p.order) for p in real) == [
        ("dpas", "guide"),
        ("dpas", "kernel"),
        ("fio", None),
    ]
    assert all(p.profile is None and p.adaptive is None and p.kernel is None for p in real)
    vm = parse('target = "vm"\nmode = "CP"').points[0]
    assert (vm.engine, vm.kernel) == ("fio", "debian")


def _sweep_on(rig: Rig, grid_text: str, fio: str) -> subprocess.Popen[str]:  # noqa: F811
    grid = rig.tmp / "g.toml"
    grid.write_text(grid_text)
    argv = [sys.executable, "-m", "dpas", "sweep", str(grid), "--out", str(rig.tmp / "out")]
    argv += ["--sysfs-root", str(rig.root), "--fio", str(rig.fio)]
    env = {**rig.env(fio), "XDG_STATE_HOME": str(rig.tmp / "state")}
    return subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


DEVICE_GRID = 'target = "{data}"\nmode = ["DPAS", "PAS"]\njobs = 1\nruntime = 1\nd_init = 5000\n'


def test_a_signal_stops_a_device_sweep_with_every_knob_restored(rig: Rig) -> None:  # noqa: F811
    proc = _sweep_on(rig, DEVICE_GRID.format(data=rig.data), "sleep")
    rig.wait_for_fio(proc)
    assert rig.values()["switch_enabled"] == "1"  # the first point's knobs are set
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert err.strip().splitlines()[-1].startswith("dpas: error: stopped by SIGTERM")
    assert rig.values() == rig.original and gone(rig.fio_pids())
    assert not list((rig.tmp / "state").rglob("*.json"))  # the journal went with the restore


def test_the_sweep_holds_its_device_from_first_point_to_last(rig: Rig) -> None:  # noqa: F811
    proc = _sweep_on(rig, DEVICE_GRID.format(data=rig.data), "sleep")
    rig.wait_for_fio(proc)
    other = run_dpas("bench", *rig.args("INT", journal=rig.tmp / "other.json"))
    assert other.returncode == 2 and f"in use by another dpas run (pid {proc.pid})" in other.stderr
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGINT and rig.values() == rig.original


def test_device_points_run_one_after_another_with_the_knobs_of_each(rig: Rig) -> None:  # noqa: F811
    proc = _sweep_on(rig, DEVICE_GRID.format(data=rig.data), "ok")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    rows = dataset.read(rig.tmp / "out" / "points")
    records = dataset.read_records(rig.tmp / "out")
    assert sorted(r["mode"] for r in rows) == ["DPAS", "PAS"]
    knobs = {records[r["key"]]["mode"]: records[r["key"]]["knobs"] for r in rows}
    assert knobs["DPAS"]["switch_enabled"] == "1" and knobs["PAS"]["pas_enabled"] == "1"
    assert rig.values() == rig.original
    assert len(rig.fio_pids()) == 2  # one fio a point: d_init was given, nothing probed


@pytest.mark.slow
def test_guest_points_poll_and_interrupt(tmp_path: Path) -> None:
    """Two points in the QEMU guest (a boot each): the engine's CP takes no interrupt, its
    INT one an I/O."""
    grid = tmp_path / "g.toml"
    grid.write_text('target = "vm"\nengine = "dpas"\nmode = ["CP", "INT"]\nruntime = 1\n')
    began = time.monotonic()
    result = run_dpas("sweep", str(grid), "--out", str(tmp_path / "out"), timeout=900)
    assert result.returncode == 0, result.stderr
    rows = {r["mode"]: r for r in dataset.read(tmp_path / "out" / "points")}
    records = dataset.read_records(tmp_path / "out")
    cp, interrupt = (records[rows[m]["key"]] for m in ("CP", "INT"))
    assert cp["backend"] == "engine" and "guest under" in cp["note"]
    assert cp["interrupts"] == 0 and interrupt["interrupts"] >= interrupt["ios"] * 0.9
    assert rows["CP"]["kernel"] == "debian" and time.monotonic() - began < 900


def test_the_device_is_held_before_the_first_point_runs(rig: Rig) -> None:  # noqa: F811
    from dpas.sweep.targets import RealOptions, RealPoints

    points = parse(DEVICE_GRID.format(data=rig.data)).points
    real = RealPoints(points, RealOptions(fio=str(rig.fio), sysfs_root=rig.root))
    with real.held():
        lock = real.devices()[0].runner.lock
        assert lock is not None and lock.holder() == os.getpid()
    assert lock.holder() is None
