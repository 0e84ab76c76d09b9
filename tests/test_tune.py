"""dpas tune (optuna over the simulator) and the sweep's figures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_dpas

from dpas.cli.app import main
from dpas.sweep import dataset

FAST = ("--profile", "qemu-lab", "--trials", "12", "--runtime", "0.05", "--jobs", "1")


def _tune(out: Path, *more: str) -> dict[str, object]:
    main(["tune", *FAST, "--workers", "2", "--out", str(out), *more])
    record: dict[str, object] = json.loads((out / "tune.json").read_text())
    return record


def test_tune_beats_the_defaults_and_repeats_with_its_seed(tmp_path: Path) -> None:
    first = _tune(tmp_path / "a")
    assert first["schema"] == "dpas.tune/2" and first["trials"] == 12
    best, defaults = first["best"], first["defaults"]
    assert isinstance(best, dict) and isinstance(defaults, dict)
    assert best["objective"] >= defaults["objective"] > 0
    assert first["published"] is not None
    rows = dataset.read(tmp_path / "a" / "trials")
    assert sorted({r["trial"] for r in rows}) == list(range(12))
    assert (tmp_path / "a" / "front.png").stat().st_size > 0
    second = _tune(tmp_path / "b", "--workers", "1")  # the batch, not the workers, decides
    assert second["best"] == first["best"]
    again = dataset.read(tmp_path / "b" / "trials")
    assert [(r["key"], r["objective"]) for r in again] == [(r["key"], r["objective"]) for r in rows]


def test_a_bound_makes_slow_trials_infeasible(tmp_path: Path) -> None:
    record = _tune(tmp_path / "o", "--bound", "p99_us<=0.001", "--trials", "2")
    best = record["best"]
    assert isinstance(best, dict) and best["objective"] is None


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--objective", "speed"), "--objective"),
        (("--bound", "p99<5"), "--bound"),
        (("--trials", "0"), "--trials"),
        (("--profile", "no-such-drive"), "no-such-drive"),
        (("--jobs", "1,x"), "--jobs"),
    ],
)
def test_bad_input_is_one_line(tmp_path: Path, args: tuple[str, ...], says: str) -> None:
    result = run_dpas("tune", *FAST, "--out", str(tmp_path / "o"), *args)
    assert result.returncode == 2 and says in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


GRID = 'profile = "qemu-lab"\nmode = ["DPAS", "PAS"]\nparam2 = [5, 20]\nruntime = 0.02\n'


def test_sweep_figures_are_written(tmp_path: Path) -> None:
    grid = tmp_path / "g.toml"
    grid.write_text(GRID)
    out = tmp_path / "o"
    main(["sweep", str(grid), "--out", str(out), "--workers", "1"])
    main(["sweep", str(grid), "--out", str(out), "--heatmap", "mode,param2,cpu_pct", "--front"])
    for name in ("heatmap.png", "front.png"):
        assert (out / name).stat().st_size > 0


def test_heatmap_of_a_setting_the_grid_does_not_vary_is_refused(tmp_path: Path) -> None:
    grid = tmp_path / "g.toml"
    grid.write_text(GRID)
    out = tmp_path / "o"
    result = run_dpas("sweep", str(grid), "--out", str(out), "--heatmap", "param2,jobs")
    assert result.returncode == 2 and "'jobs' is not a setting this grid varies" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not out.exists()


def test_the_pareto_front_keeps_only_undominated_points() -> None:
    from dpas.reports.sweep_figures import pareto

    points = [(50.0, 30.0), (20.0, 10.0), (20.0, 12.0), (40.0, 11.0), (90.0, 30.0), (95.0, 31.0)]
    # (20, 10) loses to (20, 12); (40, 11) and (90, 30) to cheaper points with as many IOPS
    assert pareto(points) == [(20.0, 12.0), (50.0, 30.0), (95.0, 31.0)]
    assert pareto([]) == []
