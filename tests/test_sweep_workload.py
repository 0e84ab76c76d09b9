"""dpas sweep and dpas tune with a workload setting (dpas.workload)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_dpas

from dpas.cli.app import main
from dpas.sweep import dataset
from dpas.sweep.grid import GridError, parse

GRID = 'profile = "qemu-lab"\nmode = "DPAS"\nworkload = ["steady", "bursts"]\nruntime = 0.3\n'


def test_a_grid_runs_each_workload(tmp_path: Path) -> None:
    grid = tmp_path / "g.toml"
    grid.write_text(GRID)
    out = tmp_path / "o"
    main(["sweep", str(grid), "--out", str(out), "--workers", "2"])
    rows = {r["workload"]: r for r in dataset.read(out / "points")}
    assert set(rows) == {"steady", "bursts"}
    steady, bursts = rows["steady"], rows["bursts"]
    assert steady["host_cpu_pct"] is None and steady["cpus"] == "0" and steady["bs"] == 4096
    assert bursts["jobs"] == 1 and bursts["host_cpu_pct"] is not None
    assert bursts["cpus"] is None and bursts["rw"] is None and bursts["iops"] > 0
    records = dataset.read_records(out)
    assert records[bursts["key"]]["workload"] == "bursts"
    assert json.loads((out / "sweep.json").read_text())["schema"] == dataset.SCHEMA


def test_a_workload_takes_its_runtime_where_the_grid_gives_none() -> None:
    (point,) = parse('workload = "bursts"').points
    assert point.runtime == 2.0 and point.jobs == 1


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('workload = "nope"', "workload = 'nope'"),
        ("workload = 3", "workload = 3"),
        ('workload = "bursts"\njobs = 2', "jobs and workload = 'bursts'"),
        ('workload = ["steady", "bursts"]\nrw = "W"', "rw and workload = 'bursts'"),
        ('workload = "macro"', "profile qemu-lab has 2 CPUs"),
    ],
)
def test_bad_workload_settings_name_the_key(text: str, says: str) -> None:
    with pytest.raises(GridError) as err:
        parse(text)
    assert says in str(err.value) and "\n" not in str(err.value)


def test_a_bad_workload_through_the_cli_is_one_line(tmp_path: Path) -> None:
    grid = tmp_path / "g.toml"
    grid.write_text('workload = "nope"\n')
    result = run_dpas("sweep", str(grid), "--out", str(tmp_path / "o"))
    assert result.returncode == 2 and "workload = 'nope'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_tune_under_a_workload(tmp_path: Path) -> None:
    out = tmp_path / "t"
    main(
        [
            "tune", "--profile", "qemu-lab", "--trials", "2", "--runtime", "0.1",
            "--workload", "bursts", "--workers", "2", "--out", str(out),
        ]
    )  # fmt: skip
    record = json.loads((out / "tune.json").read_text())
    assert record["config"]["workload"] == "bursts" and record["config"]["jobs"] == [1]
    rows = dataset.read(out / "trials")
    assert rows and {r["workload"] for r in rows} == {"bursts"}
    assert all(r["host_cpu_pct"] is not None for r in rows)


def test_tune_refuses_jobs_with_a_workload(tmp_path: Path) -> None:
    result = run_dpas(
        "tune", "--profile", "qemu-lab", "--workload", "bursts", "--jobs", "2",
        "--out", str(tmp_path / "t"),
    )  # fmt: skip
    assert result.returncode == 2 and "--jobs" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_dataset_of_the_old_schema_is_refused(tmp_path: Path) -> None:
    grid = tmp_path / "g.toml"
    grid.write_text(GRID)
    out = tmp_path / "o"
    out.mkdir()
    sha = parse(GRID).sha256
    (out / "sweep.json").write_text(json.dumps({"schema": "dpas.sweep/2", "grid_sha256": sha}))
    result = run_dpas("sweep", str(grid), "--out", str(out))
    assert result.returncode == 2 and "dpas.sweep/2" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
