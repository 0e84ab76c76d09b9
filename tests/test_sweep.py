"""dpas sweep: grid parsing, the pool and dask giving the same rows, resume, refusals."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import run_dpas

from dpas.cli.app import main
from dpas.sweep import dataset
from dpas.sweep.grid import GridError, parse

SMALL = """
profile = "qemu-lab"
mode = ["DPAS", "PAS"]
jobs = [1, 2]
param2 = [5, 20]
runtime = 0.02
zip = [["mode", "param2"]]
repeats = 1
"""


def test_product_of_lists_and_scalars() -> None:
    grid = parse('mode = "DPAS"\njobs = [1, 4]\nparam2 = [5, 10, 20]\nparam3 = [10, 30]')
    assert len(grid.points) == 12
    assert {(p.jobs, p.param2, p.param3) for p in grid.points} == {
        (j, a, b) for j in (1, 4) for a in (5, 10, 20) for b in (10, 30)
    }
    assert len({p.key() for p in grid.points}) == 12


def test_zip_ties_axes_and_repeats_expand() -> None:
    grid = parse('jobs = [1, 4]\ncpus = ["0", "split"]\nzip = [["jobs", "cpus"]]\nrepeats = 3')
    assert sorted((p.jobs, p.cpus, p.repeat) for p in grid.points) == sorted(
        (j, c, r) for j, c in ((1, "0"), (4, "split")) for r in (1, 2, 3)
    )


def test_ios_replaces_runtime_and_keys_are_stable() -> None:
    a, b = parse("ios = 500").points[0], parse("ios = 500\n").points[0]
    assert a.runtime is None and a.ios == 500 and a.key() == b.key()


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("jobz = 1", "jobz"),
        ("jobs = 0", "jobs"),
        ("jobs = [1, 5000]", "jobs"),
        ('mode = "SPIN"', "mode"),
        ('cpus = "0-3"', "cpus"),
        ("bs = 1000", "bs"),
        ('rw = "X"', "rw"),
        ("runtime = 0", "runtime"),
        ("runtime = 0.1\nios = 10", "ios"),
        ("seed = -1", "seed"),
        ("repeats = 0", "repeats"),
        ('d_init = "soon"', "d_init"),
        ("adaptive = 3", "adaptive"),
        ("dn = -1", "dn"),
        ("param5 = 0", "param5"),
        ("param1 = true", "param1"),
        ('order = "random"', "order"),
        ('rules = "mine"', "rules"),
        ("jobs = []", "empty"),
        ('jobs = [1, 2]\ncpus = ["0"]\nzip = [["jobs", "cpus"]]', "unequal"),
        ('zip = [["jobs"]]', "jobs"),
        ('jobs = [1]\nzip = [[["jobs"]]]', "zip"),
        ("jobs = [", "TOML"),
        ("target = 3", "target"),
        ('target = ""', "target"),
        ('engine = "spdk"', "engine"),
        ('target = "vm"\nkernel = "windows"', "kernel"),
        ('target = "vm"\nios = 100', "ios: only the simulator"),
    ],
)
def test_bad_grids_name_the_key(text: str, names: str) -> None:
    with pytest.raises(GridError, match=names):
        parse(text)


def test_too_many_points_need_yes() -> None:
    text = "jobs = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\nparam1 = " + str(list(range(100_001)))
    with pytest.raises(GridError, match="--yes"):
        parse(text)


def _sweep(tmp_path: Path, name: str, *more: str) -> tuple[str, Path]:
    grid = tmp_path / "grid.toml"
    if not grid.exists():
        grid.write_text(SMALL)
    out = tmp_path / name
    result = run_dpas("sweep", str(grid), "--out", str(out), *more)
    assert result.returncode == 0, result.stderr
    return result.stdout, out


def test_pool_and_local_cluster_give_identical_rows(tmp_path: Path) -> None:
    said, pool = _sweep(tmp_path, "pool", "--workers", "2")
    assert "ran 4 points, skipped 0" in said
    _, local = _sweep(tmp_path, "local", "--scheduler", "local:2")
    rows = dataset.read(pool / "points")
    assert len(rows) == 4 and rows == dataset.read(local / "points")
    assert {r["mode"] for r in rows} == {"DPAS", "PAS"} and all(r["iops"] > 0 for r in rows)
    assert (pool / "grid.toml").read_text() == SMALL


def test_rerun_runs_only_the_missing_points(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    grid, out = tmp_path / "grid.toml", tmp_path / "out"
    grid.write_text(SMALL)
    monkeypatch.setattr(dataset, "BATCH_ROWS", 1)
    main(["sweep", str(grid), "--out", str(out), "--workers", "1"])
    full = dataset.read(out / "points")
    assert len(dataset.parts(out / "points")) == 4
    dataset.parts(out / "points")[1].unlink()
    capsys.readouterr()
    main(["sweep", str(grid), "--out", str(out), "--workers", "1"])
    assert "ran 1 points, skipped 3 already done" in capsys.readouterr().out
    assert dataset.read(out / "points") == full
    main(["sweep", str(grid), "--out", str(out), "--workers", "1"])
    assert "ran 0 points, skipped 4" in capsys.readouterr().out


def test_a_folder_of_another_grid_is_refused(tmp_path: Path) -> None:
    _, out = _sweep(tmp_path, "out")
    other = tmp_path / "other.toml"
    other.write_text(SMALL.replace("0.02", "0.03"))
    result = run_dpas("sweep", str(other), "--out", str(out))
    assert result.returncode == 2 and "another grid" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_bad_grid_file_is_one_line(tmp_path: Path) -> None:
    grid = tmp_path / "g.toml"
    grid.write_text("jobs = [1, -4]")
    result = run_dpas("sweep", str(grid), "--out", str(tmp_path / "o"))
    assert result.returncode == 2 and result.stderr.startswith("dpas: error: jobs -4")
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_unreachable_scheduler_is_refused_within_seconds(tmp_path: Path) -> None:
    grid = tmp_path / "g.toml"
    grid.write_text("runtime = 0.01")
    began = time.monotonic()
    result = run_dpas(
        "sweep", str(grid), "--out", str(tmp_path / "o"), "--scheduler", "tcp://127.0.0.1:9"
    )
    assert time.monotonic() - began < 15
    assert result.returncode == 2 and "cannot connect" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o" / "sweep.json").exists()


def test_records_hold_what_the_simulator_gave(tmp_path: Path) -> None:
    """OUT/records/ keeps each point's whole record (every RunResult field: switch_stat and
    timeline too) beside its row, and the record is that point's run: it agrees with the row,
    with fio's IOPS rule, and with the grid's settings as the simulated kernel saw them."""
    from dataclasses import fields

    from dpas.results import RunResult

    _, out = _sweep(tmp_path, "out")
    records = dataset.read_records(out)
    rows = dataset.read(out / "points")
    assert set(records) == {r["key"] for r in rows} and len(rows) == 4
    for row in rows:
        kept = records[row["key"]]
        assert set(kept) == {f.name for f in fields(RunResult)} | {"key"}
        same = ("mode", "jobs", "repeat", "iops", "cpu_pct", "lat_p99_us", "d_init_ns")
        assert {k: kept[k] for k in same} == {k: row[k] for k in same}
        assert kept["seed"] == row["run_seed"] and kept["runtime_s"] == 0.02
        assert kept["iops"] == pytest.approx(kept["ios"] / 0.02)  # fio's: I/Os per second
        if row["mode"] == "PAS":
            assert kept["switch_stat"] is None and kept["timeline"] is None
            continue
        # DPAS with param2 5 (zipped): every CPU's switch_stat shows it; its modes start in
        # PAS and each change leaves the mode the previous one entered
        assert kept["switch_stat"] and {s["param2"] for s in kept["switch_stat"]} == {5}
        modes = [(old, new) for _, _, old, new in kept["timeline"]]
        assert modes[0][0] == "PAS"
        assert all(a[1] == b[0] for a, b in zip(modes, modes[1:], strict=False))


KILLED = 2000  # points of the grid a sweep is killed in: 10 parts of 200


def _long_grid(tmp_path: Path) -> Path:
    grid = tmp_path / "long.toml"
    seeds = ", ".join(str(s) for s in range(1, KILLED + 1))
    grid.write_text(f'mode = "INT"\nios = 50\nd_init = 5000\nseed = [{seeds}]\n')
    return grid


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_a_killed_sweep_resumes_with_only_the_missing_points(
    tmp_path: Path, sig: signal.Signals
) -> None:
    grid, out = _long_grid(tmp_path), tmp_path / "out"
    argv = [sys.executable, "-m", "dpas", "sweep", str(grid), "--out", str(out)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = out / "points" / "part-00000.parquet"
    deadline = time.monotonic() + 120
    while not first.exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.002)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == (-signal.SIGKILL if sig == signal.SIGKILL else 130), err
    kept = dataset.read(out / "points")
    assert 0 < len(kept) < KILLED
    again = run_dpas("sweep", str(grid), "--out", str(out))
    said = f"ran {KILLED - len(kept)} points, skipped {len(kept)} already done"
    assert again.returncode == 0 and said in again.stdout, again.stdout + again.stderr
    clean = tmp_path / "clean"
    assert run_dpas("sweep", str(grid), "--out", str(clean)).returncode == 0
    assert dataset.read(out / "points") == dataset.read(clean / "points")
    assert dataset.read_records(out) == dataset.read_records(clean)


def test_a_simulated_hyb_point_is_kept_as_refused(tmp_path: Path) -> None:
    grid = tmp_path / "g.toml"
    grid.write_text('mode = ["CP", "HYB"]\nruntime = 0.02\n')
    main(["sweep", str(grid), "--out", str(tmp_path / "o"), "--workers", "1"])
    rows = {r["mode"]: r for r in dataset.read(tmp_path / "o" / "points")}
    assert rows["CP"]["refused"] is None and rows["CP"]["iops"] > 0
    assert "hybrid polling" in rows["HYB"]["refused"] and rows["HYB"]["iops"] is None
    assert set(dataset.read_records(tmp_path / "o")) == {rows["CP"]["key"]}


def test_a_grid_takes_fio_size_words_for_bs() -> None:
    assert sorted({p.bs for p in parse('bs = ["8k", 4096, "1M"]').points}) == [4096, 8192, 1 << 20]
    with pytest.raises(GridError, match="bs = 4KiB is 4000 bytes"):
        parse('bs = "4KiB"')  # fio's default kb_base reads KiB as 1000


def _children(pid: int) -> list[int]:
    """The processes ``pid`` started (every thread's), from /proc."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def test_ctrl_c_under_a_local_cluster_prints_only_aborted(tmp_path: Path) -> None:
    """The terminal's Ctrl-C reaches the whole process group: the workers must not each print
    a KeyboardInterrupt traceback; dpas closes them and says it was aborted."""
    grid = tmp_path / "grid.toml"
    grid.write_text('mode = ["INT", "CP"]\njobs = [1, 2, 4, 8]\nruntime = 5.0\n')
    argv = [sys.executable, "-m", "dpas", "sweep", str(grid), "--out", str(tmp_path / "out")]
    proc = subprocess.Popen(
        [*argv, "--scheduler", "local:2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 120
    while len(_children(proc.pid)) < 3:  # the resource tracker and two workers
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.1)
    time.sleep(2)  # the workers importing, or running their first points
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert [line for line in err.splitlines() if line.strip()] == ["dpas: aborted"], err


def test_a_failed_write_of_a_part_is_one_line_and_leaves_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The seam beside the tmpfs test (tests/test_cli_bad_input.py, root only): an EIO as
    the Parquet part is written."""
    grid, out = tmp_path / "grid.toml", tmp_path / "out"
    grid.write_text(SMALL)

    def failing(table: object, where: Path) -> None:
        Path(where).write_bytes(b"PAR1 half")  # what a full disk leaves: a part of a part
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(dataset.pq, "write_table", failing)
    with pytest.raises(SystemExit) as stop:
        main(["sweep", str(grid), "--out", str(out), "--workers", "1"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"dpas: error: {out / 'points' / 'part-00000.parquet'}: cannot be")
    assert "Input/output error" in err and len(err.strip().splitlines()) == 1
    assert [p.name for d in ("points", "records") for p in (out / d).iterdir()] == []
