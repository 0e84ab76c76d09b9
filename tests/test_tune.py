"""dpas tune (optuna over the simulator) and the sweep's figures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import run_dpas
from numpy.testing import assert_allclose

from dpas.cli.app import main
from dpas.sweep import dataset

FAST = ("--profile", "qemu-lab", "--trials", "12", "--runtime", "0.05", "--jobs", "1")


def _tune(out: Path, *more: str) -> dict[str, object]:
    main(["tune", *FAST, "--workers", "2", "--out", str(out), *more])
    record: dict[str, object] = json.loads((out / "tune.json").read_text())
    return record


class FigureSpy:
    """Wraps one of dpas.reports.sweep_figures' figure functions and keeps the Figures it
    returns: the test reads back the data plotted, not the file's size."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
        from dpas.reports import sweep_figures

        self.real = getattr(sweep_figures, name)
        self.figures: list[Any] = []
        monkeypatch.setattr(sweep_figures, name, self)

    def __call__(self, *args: Any) -> Any:
        figure = self.real(*args)
        self.figures.append(figure)
        return figure


def front_rows_plotted(figure: Any) -> tuple[list[tuple[float, float]], list[float], list[float]]:
    """The front figure's scatter points (CPU %, kIOPS) and its one front line's x and y."""
    (ax,) = figure.axes
    points = [(float(x), float(y)) for c in ax.collections for x, y in c.get_offsets()]
    (line,) = ax.get_lines()
    return points, list(line.get_xdata()), list(line.get_ydata())


def undominated(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The Pareto front by its definition (no other point has as little CPU or less and as
    many IOPS or more), by brute force: an independent check of sweep_figures.pareto."""
    kept = {p for p in points if not any(q[0] <= p[0] and q[1] >= p[1] for q in points if q != p)}
    return sorted(kept)


#: --jobs 1 on qemu-lab: one job alone on CPU 0 at queue depth 1, scored in I/Os per CPU second
#: (iops_per_cpu = iops / cpu share). Its CPU time per I/O is the submit and completion work
#: plus whatever part of the device's ~27 us it polls. The defaults (auto d_init, a few us,
#: adaptive 1) poll most of that wait: nearly all of the CPU. A setting that sleeps through
#: most of the wait (d_init near the 20 us top of its range, adaptive 0) leaves the CPU idle
#: then, so its I/Os per CPU second are far higher: the search space holds a region clearly
#: better than the defaults, by the model's construction, whatever the sampler's luck.
SLEEPS_THROUGH = {"adaptive": 0, "d_init": 20_000}


def _scores(settings: dict[str, Any], seeds: range) -> list[float]:
    """These settings' objective on the test's task under each seed (one point each)."""
    from dpas.sweep import schedulers, tune

    scores = []
    for seed in seeds:
        task = tune.Task("qemu-lab", (1,), "0", 0.05, seed, "iops_per_cpu", None)
        with schedulers.connected(schedulers.Scheduler("pool", 1)) as run:
            (rows,) = tune.evaluate(task, [settings], run)
        scores.append(task.score(rows))
    return scores


def test_tune_finds_the_region_that_sleeps_through_the_wait(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dpas.sweep import tune

    spy = FigureSpy(monkeypatch, "front")
    first = _tune(tmp_path / "a")
    assert first["schema"] == "dpas.tune/2" and first["trials"] == 12
    best, defaults = first["best"], first["defaults"]
    assert isinstance(best, dict) and isinstance(defaults, dict)
    assert first["published"] is not None
    rows = dataset.read(tmp_path / "a" / "trials")
    assert sorted({r["trial"] for r in rows}) == list(range(12))
    by_trial = {r["trial"]: r for r in rows}
    polled = by_trial[0]  # the defaults, enqueued first
    assert polled["objective"] == defaults["objective"] and polled["cpu_pct"] > 80
    # the seed alone: how far the defaults' objective moves without any setting changed
    noise = _scores(tune.defaults(), range(1, 5))
    assert noise[0] == defaults["objective"]
    spread = max(noise) - min(noise)
    # the model's region is there, and clearly better than any seed makes the defaults
    assert min(_scores({**tune.defaults(), **SLEEPS_THROUGH}, range(1, 3))) > 1.4 * max(noise)
    assert best["objective"] - max(noise) > 5 * spread  # the search found its way into it
    found = by_trial[best["trial"]]
    assert found["cpu_pct"] < 0.75 * polled["cpu_pct"]  # it sleeps where the defaults poll
    (figure,) = spy.figures
    expected = sorted((r["cpu_pct"], r["iops"] / 1000) for r in rows)
    points, xs, ys = front_rows_plotted(figure)
    assert_allclose(sorted(points), expected)  # pairs: pytest.approx refuses nesting
    front = list(zip(xs, ys, strict=True))
    assert_allclose(front, undominated(expected))
    assert 1 <= len(front) < len(expected)  # 12 trials of one mode: some are dominated


def test_tune_repeats_with_its_seed(tmp_path: Path) -> None:
    first = _tune(tmp_path / "a")
    rows = dataset.read(tmp_path / "a" / "trials")
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


def test_sweep_figures_plot_the_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The heatmap's cells and the front's points are the dataset's rows (one row a cell
    here: the grid varies only mode and param2), read back from the Figures themselves."""
    grid = tmp_path / "g.toml"
    grid.write_text(GRID)
    out = tmp_path / "o"
    main(["sweep", str(grid), "--out", str(out), "--workers", "1"])
    heatmaps, fronts = FigureSpy(monkeypatch, "heatmap"), FigureSpy(monkeypatch, "front")
    main(["sweep", str(grid), "--out", str(out), "--heatmap", "mode,param2,cpu_pct", "--front"])
    assert (out / "heatmap.png").exists() and (out / "front.png").exists()
    rows = dataset.read(out / "points")
    cpu = {(r["mode"], r["param2"]): r["cpu_pct"] for r in rows}
    assert len(cpu) == len(rows) == 4
    (heatmap,) = heatmaps.figures
    image = heatmap.axes[0].images[0].get_array()
    # x is mode (columns, sorted), y is param2 (rows, sorted, origin lower)
    expected = [cpu["DPAS", 5], cpu["PAS", 5], cpu["DPAS", 20], cpu["PAS", 20]]
    assert image.shape == (2, 2) and image.ravel().tolist() == pytest.approx(expected)
    (front,) = fronts.figures
    points, xs, ys = front_rows_plotted(front)
    plotted = sorted((r["cpu_pct"], r["iops"] / 1000) for r in rows)
    assert_allclose(sorted(points), plotted)
    assert_allclose(list(zip(xs, ys, strict=True)), undominated(plotted))


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
