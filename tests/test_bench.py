"""``dpas bench``: bench.sh's interface, its tables, its files, and the lab's fidelity."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import run_dpas

from dpas.bench.backend import Sweep
from dpas.bench.sweep import d_init_auto, plan
from dpas.cli import main
from dpas.cli.options import parse_words
from dpas.policy import Method, Op
from dpas.sim import load

sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
import fidelity


def test_words_in_any_order() -> None:
    assert parse_words(()) == (
        (Method.INT, Method.CP, Method.LHP, Method.PAS, Method.DPAS),
        Op.READ,
        1,
    )
    assert parse_words(("3", "w", "dpas", "INT")) == ((Method.DPAS, Method.INT), Op.WRITE, 3)
    assert parse_words(("EHP", "ALL"))[0][0] is Method.EHP


def test_bench_prints_tables_and_writes_files(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    main(
        [
            "bench",
            "CP",
            "DPAS",
            "R",
            "2",
            "--jobs",
            "1,2",
            "--runtime",
            "0.02",
            "--out",
            str(tmp_path),
        ]
    )
    out = capsys.readouterr().out
    assert "CP (mean of 2 runs)" in out and "DPAS (mean of 2 runs)" in out
    assert "Jobs" in out and "breakdown" in out and "cp:" in out
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["schema"] == "dpas.bench/2" and data["backend"] == "simulator"
    assert data["config"]["d_init"] == "auto" and data["d_init_ns"] > 1000
    assert data["profile"]["name"] == "qemu-lab" and "profile" not in data["config"]
    assert data["refused"] == {} and data["ended_early"] is None
    keys = {(r["mode"], r["jobs"], r["repeat"]) for r in data["records"]}
    assert keys == {(m, j, k) for m in ("CP", "DPAS") for j in (1, 2) for k in (1, 2)}
    rows = list(csv.DictReader((tmp_path / "results.csv").open()))
    assert len(rows) == 8 and rows[0]["mode"] == "CP" and rows[-1]["cp"] != ""
    assert (tmp_path / "bench.png").read_bytes()[:4] == b"\x89PNG"


def test_bench_json_is_deterministic(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    args = ["bench", "PAS", "--jobs", "2", "--runtime", "0.02", "--json", "--seed", "9"]
    main([*args, "--out", str(tmp_path / "a")])
    first = capsys.readouterr().out
    main([*args, "--out", str(tmp_path / "b")])
    assert json.loads(capsys.readouterr().out) == json.loads(first)


#: each mode's place in dpas.policy.Method's order (the number a run's seed is drawn with)
METHOD_PLACE = {"INT": 0, "CP": 1, "LHP": 2, "EHP": 3, "PAS": 4, "DPAS": 5, "HYB": 6}


def test_seeds_differ_per_run_and_do_not_depend_on_order() -> None:
    """A run's seed is numpy's SeedSequence of (the bench's seed, the mode's place, jobs,
    rw: 0 read, 1 write, repeat), written out here: nothing of the plan's order is in it."""
    sweep = Sweep(repeats=2)
    runs = plan(load("qemu-lab"), sweep, 4000)
    assert len({r.seed for r in runs}) == len(runs) == 5 * 5 * 2
    for r in runs:
        words = [1, METHOD_PLACE[r.method.value], r.jobs, 0, r.repeat]
        assert r.seed == int(np.random.SeedSequence(words).generate_state(1)[0]), r
    backwards = Sweep(modes=sweep.modes[::-1], jobs=sweep.jobs[::-1], repeats=2)
    seeds = {(r.method, r.jobs, r.repeat): r.seed for r in runs}
    assert {
        (r.method, r.jobs, r.repeat): r.seed for r in plan(load("qemu-lab"), backwards, 4000)
    } == seeds


def test_d_init_auto_is_a_tenth_of_a_plain_runs_latency() -> None:
    d_init = d_init_auto(load("qemu-lab"), Sweep())
    assert 4000 < d_init < 5000  # INT at one job takes about 45.7 µs in the lab's guest


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["TURBO"], "'TURBO': expected modes (INT CP LHP PAS DPAS EHP HYB or ALL)"),
        (["R", "W"], "R or W was given twice"),
        (["--jobs", "1,x"], "--jobs 1,x: expected job counts"),
        (["--d-init", "fast"], "--d-init fast: expected auto or a whole number of ns"),
        (["--profile", "laptop"], "profile laptop: not a file or a shipped profile"),
        (["--cpus", "3"], "--cpus 3: expected 0, split"),  # lists only with --device
        (["--cpus", "0-x", "--device", "/tmp"], "--cpus 0-x: expected 0, split, or a cpus_allowed"),
    ],
)
def test_bad_arguments_are_one_line(args: list[str], message: str) -> None:
    out = run_dpas("bench", *args)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]


def test_the_qemu_lab_profile_reaches_the_lab_table() -> None:
    """benchmarks/fidelity.py's criteria, at a shorter runtime."""
    published = json.loads(fidelity.REFERENCE.read_text())["multi_job_cpu0_pinned_iops"]
    table = {m: {int(j): row[m] for j, row in published.items()} for m in fidelity.MODES}
    iops, breakdown, _ = fidelity.model_table(runtime=0.5, repeats=1)
    failed = [text for text, ok in fidelity.checks(iops, breakdown, table) if not ok]
    assert failed == []


def test_the_hrtimer_table_is_reproduced() -> None:
    for d_init, published, model in fidelity.hrtimer_table():
        assert model == pytest.approx(published, abs=1.0), d_init


def test_repeats_show_each_cell_as_mean_and_interval(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """With 3 repeats IOPS, lat_us and cpu% read `mean ±half-width`, the numbers those of the
    records in results.json; ctx stays a bare mean. One run: no interval, no "mean" title."""
    from dpas.reports.stats import Summary

    args = ["bench", "INT", "--jobs", "1", "--runtime", "0.05", "--d-init", "4000"]
    main([*args, "--repeat", "3", "--out", str(tmp_path / "three")])
    out = capsys.readouterr().out
    records = json.loads((tmp_path / "three" / "results.json").read_text())["records"]
    assert len(records) == 3 and len({r["iops"] for r in records}) == 3  # seeded per repeat
    assert "INT (mean of 3 runs) ±95% CI" in out
    for field, fmt in (("iops", ".0f"), ("lat_mean_us", ".1f"), ("cpu_pct", ".1f")):
        summary = Summary.of([r[field] for r in records])
        assert summary.half_width is not None and summary.half_width > 0
        assert f"{summary.mean:{fmt}} ±{summary.half_width:{fmt}}" in out, field
    ctx = sum(r["ctx"] for r in records) / 3
    assert f"│ {ctx:.0f} │" in out
    main([*args, "--out", str(tmp_path / "one")])
    single = capsys.readouterr().out
    assert "±" not in single and "mean" not in single and "INT" in single


def test_real_and_guest_sweeps_run_round_by_round() -> None:
    """Sweep.rounds: every mode and job count of repeat 1, then of repeat 2; the simulator's
    order (runs) is bench.sh's, and both hold the same runs."""
    sweep = Sweep((Method.DPAS, Method.INT), jobs=(4, 1), repeats=2)
    assert sweep.rounds() == [
        (Method.DPAS, 4, 1), (Method.DPAS, 1, 1), (Method.INT, 4, 1), (Method.INT, 1, 1),
        (Method.DPAS, 4, 2), (Method.DPAS, 1, 2), (Method.INT, 4, 2), (Method.INT, 1, 2),
    ]  # fmt: skip
    assert set(sweep.rounds()) == set(sweep.runs()) and sweep.rounds() != sweep.runs()
    assert Sweep(repeats=1).rounds() == Sweep(repeats=1).runs()


def test_the_real_runner_interleaves_rounds_and_skips_a_refused_mode_after(
    tmp_path: Path, fio: str
) -> None:
    """fio on a file: INT's repeats round by round; CP, refused in round 1 (a file does not
    poll), is not tried again in round 2, and its refusal stands."""
    from dpas.real.executor import LocalExecutor
    from dpas.real.runner import Runner
    from dpas.real.site import RealConfig

    bare = LocalExecutor(sysfs_root=tmp_path / "empty-sys")
    config = RealConfig(str(tmp_path / "data"), fio=fio, journal=tmp_path / "j.json", size=8 << 20)
    sweep = Sweep((Method.INT, Method.CP), jobs=(1, 2), repeats=2, runtime_s=0.2, d_init_ns=4000)
    tried: list[str] = []
    runner = Runner(config, bare)
    runner.starting = tried.append
    bench = runner.run(sweep)
    assert [(r.mode, r.jobs, r.repeat) for r in bench.records] == [
        ("INT", 1, 1), ("INT", 2, 1), ("INT", 1, 2), ("INT", 2, 2),
    ]  # fmt: skip
    if "CP" in bench.refused:  # a machine whose disk polls runs CP: then nothing is skipped
        assert [t for t in tried if t.startswith("CP")] == ["CP:1:1"]
