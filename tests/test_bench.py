"""``dpas bench``: bench.sh's interface, its tables, its files, and the lab's fidelity."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest
from conftest import run_dpas

from dpas.bench.backend import Sweep
from dpas.bench.sweep import d_init_auto, plan, run_seed
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


def test_seeds_differ_per_run_and_do_not_depend_on_order() -> None:
    runs = plan(load("qemu-lab"), Sweep(repeats=2), 4000)
    assert len({r.seed for r in runs}) == len(runs) == 5 * 5 * 2
    assert runs[0].seed == run_seed(1, Method.INT, 1, Op.READ, 1)


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
