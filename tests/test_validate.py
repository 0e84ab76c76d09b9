"""``dpas validate``: the comparison with published tables, its files, and its refusals."""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, replace
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from conftest import run_dpas

from dpas.bench.backend import Sweep
from dpas.bench.sweep import plan
from dpas.cli import main
from dpas.policy import Adaptive, Method, SwitchParams
from dpas.reports.published import PublishedError, PublishedValues, published_values
from dpas.reports.validation import SCHEMA, cell_text, compare, summary_line
from dpas.results import RunResult
from dpas.sim import load
from dpas.sim.profile import Published

PAPER_PUBLISHED = """[published]
table = "paper_4k_randread"
device = "optane_p5800x"
cpus = "split"
jobs = [1, 2]
modes = ["CP", "INT"]
runtime_s = 10
fitted = ["CP x1"]
params = { param3 = 30, adaptive = 1 }
"""


def qemu_lab_text() -> str:
    return (resources.files("dpas.sim") / "profiles" / "qemu-lab.toml").read_text()


def profile_file(tmp_path: Path, name: str, published: str | None) -> Path:
    """qemu-lab's numbers under ``name``, with ``published`` for its [published] section
    (None: none at all)."""
    text = qemu_lab_text()
    text = text[: text.index("[published]")] + (published or "")
    text = text.replace('name = "qemu-lab"', f'name = "{name}"')
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return path


def record(mode: str, jobs: int, iops: float, cpu: float, repeat: int = 1) -> dict[str, Any]:
    """A RunResult dict with what the comparison reads; the rest is filler."""
    result = RunResult(
        mode, jobs, "R", repeat, ios=int(iops), runtime_s=1.0, iops=iops, lat_mean_us=10.0,
        lat_p50_us=10.0, lat_p99_us=20.0, lat_p999_us=30.0, cpu_pct=cpu, ctx=0, breakdown=None,
        switch_stat=None, timeline=None, sleeps_taken=None, sleeps_skipped=None, max_qd=None,
        d_init_ns=1000, seed=1, events=None,
    )  # fmt: skip
    return asdict(result)


HAND_PUBLISHED = Published(
    table="hand",
    device="drive",
    cpus="split",
    jobs=(1, 2),
    modes=(Method.CP, Method.INT),
    runtime_s=10.0,
    fitted=((Method.CP, 1),),
    switch=SwitchParams(),
    adaptive=1,
)
HAND_VALUES = PublishedValues(
    table="hand",
    device="drive",
    role="calibration",
    kiops={("CP", 1): 100.0, ("CP", 2): 200.0, ("INT", 1): 50.0},
    cpu_pct={("CP", 1): 90.0, ("INT", 1): 30.0},
)
HAND_RECORDS = [
    record("CP", 1, 99_000, 96.0, repeat=1),
    record("CP", 1, 101_000, 98.0, repeat=2),  # mean 100k IOPS, 97% CPU
    record("CP", 2, 212_000, 100.0),
    record("INT", 1, 48_000, 31.0),
    record("INT", 2, 90_000, 20.0),  # the table gives nothing here
]


def test_the_cells_on_hand_made_records() -> None:
    comparison = compare("hand-profile", HAND_PUBLISHED, HAND_VALUES, HAND_RECORDS)
    cells = {(c.mode, c.jobs): c for c in comparison.cells}
    assert list(cells) == [("CP", 1), ("CP", 2), ("INT", 1), ("INT", 2)]
    cp1, cp2, int1, int2 = cells.values()
    # CP x1: the mean of two repeats, exactly the published IOPS, 7 points of CPU over
    assert (cp1.repeats, cp1.model_kiops, cp1.model_cpu_pct) == (2, 100.0, 97.0)
    assert cp1.iops_error_pct == 0.0 and cp1.cpu_error_pts == 7.0
    assert cp1.fitted and not (cp2.fitted or int1.fitted or int2.fitted)
    # CP x2: 212k against 200k is +6%; no published CPU
    assert cp2.iops_error_pct == pytest.approx(6.0)
    assert cp2.published_cpu_pct is None and cp2.cpu_error_pts is None
    # INT x1: 48k against 50k is -4%; 31% against 30% is +1 point
    assert int1.iops_error_pct == pytest.approx(-4.0) and int1.cpu_error_pts == pytest.approx(1.0)
    # INT x2: nothing to compare with
    assert int2.published_kiops is None and int2.iops_error_pct is None and not int2.compared
    assert {c.role for c in cells.values()} == {"calibration"}
    assert {c.profile for c in cells.values()} == {"hand-profile"}


def test_the_summary_on_hand_made_records() -> None:
    summary = compare("hand-profile", HAND_PUBLISHED, HAND_VALUES, HAND_RECORDS).summary
    assert summary.cells == 3  # INT x2 has no published value
    # IOPS: fitted CP x1 (0%); predicted CP x2 (+6%) and INT x1 (-4%): mean 5, worst 6
    assert (summary.iops_fitted.cells, summary.iops_fitted.mean_abs) == (1, 0.0)
    assert summary.iops_fitted.worst_abs == 0.0
    assert summary.iops_predicted.cells == 2
    assert summary.iops_predicted.mean_abs == pytest.approx(5.0)
    assert summary.iops_predicted.worst_abs == pytest.approx(6.0)
    # CPU: fitted CP x1 (+7 points); predicted INT x1 (+1 point)
    assert (summary.cpu_fitted.cells, summary.cpu_fitted.mean_abs) == (1, 7.0)
    assert summary.cpu_predicted.cells == 1
    assert summary.cpu_predicted.worst_abs == pytest.approx(1.0)
    # within 5% and 5 points: only INT x1 (CP x1's CPU is 7 points off, CP x2's IOPS 6%)
    assert (summary.within, summary.within_iops, summary.within_cpu) == (1, 2, 1)
    line = summary_line(summary)
    assert "hand-profile: 3 cells compared" in line
    assert "fitted mean 0.0% worst 0.0% (1 cell), predicted mean 5.0% worst 6.0% (2 cells)" in line
    assert "within 5% IOPS and 5 pts CPU: 1/3 (IOPS 2/3, CPU 1/2)" in line


def test_a_cell_as_printed() -> None:
    cells = compare("p", HAND_PUBLISHED, HAND_VALUES, HAND_RECORDS).cells
    cp1, cp2, int1, int2 = cells
    assert cell_text(int1) == "48.0k/50.0k -4.0%\n31.0/30.0 +1.0"
    assert cell_text(cp1) == "100.0k/100.0k +0.0%*\n97.0/90.0 [yellow]+7.0[/yellow]"
    assert cell_text(cp2) == "212.0k/200.0k [yellow]+6.0%[/yellow]\n100.0/-"
    assert cell_text(int2) == "90.0k/-\n20.0/-"


def test_no_published_cpu_is_said_so() -> None:
    values = replace(HAND_VALUES, cpu_pct={})
    summary = compare("p", HAND_PUBLISHED, values, HAND_RECORDS).summary
    assert summary.cpu_fitted.cells == summary.cpu_predicted.cells == 0
    assert summary.cpu_fitted.mean_abs is None
    assert "|CPU error| not published" in summary_line(summary)


def test_the_published_tables_in_one_shape() -> None:
    optane = published_values("paper_4k_randread", "optane_p5800x")
    assert optane.role == "calibration"
    assert optane.kiops["CP", 1] == 169.8 and optane.cpu_pct["DPAS", 1] == 95.74
    assert len(optane.kiops) == len(optane.cpu_pct) == 36
    samsung = published_values("paper_4k_randread", "samsung_983zet")
    assert samsung.role.startswith("prediction")
    assert set(samsung.kiops) == {("CP", 1), ("INT", 1)} and samsung.cpu_pct == {}
    lab = published_values("qemu_lab", "")
    assert lab.kiops["INT", 1] == pytest.approx(21.879) and lab.cpu_pct == {}
    assert lab.role == "calibration" and len(lab.kiops) == 20


def test_a_drive_the_table_lacks_is_named() -> None:
    with pytest.raises(PublishedError, match=r"profile p: \[published\] device = 'nope'.*optane"):
        published_values("paper_4k_randread", "nope", "p")
    with pytest.raises(PublishedError, match="one drive"):
        published_values("qemu_lab", "optane_p5800x")


def test_the_sweep_carries_pas_adaptive_enabled() -> None:
    sweep = Sweep((Method.PAS,), jobs=(1,), adaptive=0)
    assert sweep.record()["adaptive"] == 0
    assert Sweep.from_record(sweep.record()) == sweep
    old = {k: v for k, v in sweep.record().items() if k != "adaptive"}
    assert Sweep.from_record(old).adaptive == 1  # records before the field ran with 1
    assert plan(load("qemu-lab"), sweep, 1000)[0].pas.adaptive is Adaptive.OFF
    assert plan(load("qemu-lab"), Sweep(), 1000)[0].pas.adaptive is Adaptive.DN


def saved(out: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((out / "validate.json").read_text())
    return data


def assert_cells_match_records(entry: dict[str, Any]) -> None:
    """Every cell's model value is its records' mean, and its error follows from it."""
    for cell in entry["cells"]:
        runs = [
            r for r in entry["records"] if (r["mode"], r["jobs"]) == (cell["mode"], cell["jobs"])
        ]
        assert cell["model_kiops"] == pytest.approx(sum(r["iops"] for r in runs) / len(runs) / 1000)
        if cell["published_kiops"] is not None:
            error = (cell["model_kiops"] / cell["published_kiops"] - 1) * 100
            assert cell["iops_error_pct"] == pytest.approx(error)
        if cell["published_cpu_pct"] is not None:
            error = cell["model_cpu_pct"] - cell["published_cpu_pct"]
            assert cell["cpu_error_pts"] == pytest.approx(error)


def test_validate_qemu_lab_end_to_end(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out = tmp_path / "out"
    main(["validate", "--profile", "qemu-lab", "--runtime", "0.02", "--out", str(out)])
    screen = capsys.readouterr().out
    assert "qemu-lab: model/published (qemu_lab, calibration)" in screen
    assert "/21.9k" in screen and "*" in screen and "/36.6k" in screen
    assert "qemu-lab: 20 cells compared" in screen and "|CPU error| not published" in screen
    data = saved(out)
    assert data["schema"] == SCHEMA == "dpas.validate/1"
    assert data["config"]["profiles"] == ["qemu-lab"] and data["config"]["runtime_s"] == 0.02
    (entry,) = data["profiles"]
    assert entry["name"] == "qemu-lab" and entry["role"] == "calibration"
    assert entry["published"]["fitted"] == [
        "INT x1",
        "INT x4",
        "INT x16",
        "CP x1",
        "PAS x1",
        "PAS x16",
    ]
    assert entry["published"]["modes"] == ["INT", "CP", "PAS", "DPAS"]
    assert entry["sweep"]["cpus"] == "0" and entry["sweep"]["adaptive"] == 1
    assert entry["sweep"]["d_init"] == "auto" and entry["d_init_ns"] > 1000
    assert len(entry["records"]) == len(entry["cells"]) == 20
    assert all(r["runtime_s"] == 0.02 for r in entry["records"])
    assert sum(c["fitted"] for c in entry["cells"]) == 6
    assert entry["summary"]["cells"] == 20 and entry["summary"]["cpu_fitted"]["cells"] == 0
    assert_cells_match_records(entry)
    rows = list(csv.DictReader((out / "validate.csv").open()))
    assert len(rows) == 20 and rows[0]["mode"] == "INT" and rows[0]["jobs"] == "1"
    assert rows[0]["fitted"] == "True" and rows[0]["published_cpu_pct"] == ""
    assert (out / "qemu-lab.png").read_bytes()[:4] == b"\x89PNG"


def test_a_paper_profile_beside_qemu_lab(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = profile_file(tmp_path, "paper-test", PAPER_PUBLISHED)
    out = tmp_path / "out"
    main(["validate", "--profile", str(path), "--profile", "qemu-lab", "--runtime", "0.02",
          "--repeats", "2", "--out", str(out)])  # fmt: skip
    screen = capsys.readouterr().out
    assert "paper-test: model/published (paper_4k_randread/optane_p5800x, calibration)" in screen
    assert "/169.8k" in screen and "/99.96" not in screen and "/100.0 " in screen
    assert "paper-test: 4 cells compared" in screen and "qemu-lab: 20 cells compared" in screen
    data = saved(out)
    paper, lab = data["profiles"]
    assert (paper["name"], lab["name"]) == ("paper-test", "qemu-lab")
    assert data["config"]["profiles"] == [str(path), "qemu-lab"]
    assert paper["sweep"]["cpus"] == "split" and paper["sweep"]["switch"]["param3"] == 30
    assert paper["sweep"]["modes"] == ["CP", "INT"] and paper["sweep"]["jobs"] == [1, 2]
    assert len(paper["records"]) == 2 * 4 and len(lab["records"]) == 2 * 20
    cells = {(c["mode"], c["jobs"]): c for c in paper["cells"]}
    assert cells["CP", 1]["published_kiops"] == 169.8 and cells["CP", 1]["fitted"]
    assert cells["CP", 1]["published_cpu_pct"] == 99.96 and cells["CP", 1]["repeats"] == 2
    assert cells["INT", 2]["published_kiops"] == 254.6 and not cells["INT", 2]["fitted"]
    assert {c["role"] for c in paper["cells"]} == {"calibration"}
    assert paper["summary"]["cpu_fitted"]["cells"] == 1
    assert paper["summary"]["cpu_predicted"]["cells"] == 3
    assert_cells_match_records(paper)
    assert_cells_match_records(lab)
    assert len(list(csv.DictReader((out / "validate.csv").open()))) == 4 + 20
    for name in ("paper-test.png", "qemu-lab.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG"


def assert_refused(out: Any, *names: str) -> None:
    """Exit 2, one line on stderr naming the input, no traceback, nothing on stdout."""
    assert out.returncode == 2, (out.returncode, out.stderr[-2000:])
    assert out.stderr.startswith("dpas: error: "), out.stderr[-2000:]
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr[-2000:]
    assert out.stdout == ""
    for name in names:
        assert name in out.stderr, (name, out.stderr)


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["--profile", "no-such-profile"], ["no-such-profile", "qemu-lab"]),
        (["--runtime", "0"], ["--runtime", "0"]),
        (["--runtime", "nan"], ["--runtime", "nan"]),
        (["--runtime", "-1"], ["--runtime", "-1"]),
        (["--repeats", "0"], ["--repeats", "0"]),
        (["--seed", "-1"], ["--seed", "-1"]),
    ],
)
def test_bad_input_is_one_line(args: list[str], names: list[str], tmp_path: Path) -> None:
    out = run_dpas("validate", *args, "--out", str(tmp_path / "out"))
    assert_refused(out, *names)
    assert not (tmp_path / "out").exists()


def test_profiles_that_cannot_be_validated_are_refused(tmp_path: Path) -> None:
    bare = profile_file(tmp_path, "bare", None)
    out = run_dpas("validate", "--profile", str(bare), "--out", str(tmp_path / "out"))
    assert_refused(out, str(bare), "[published]", "qemu-lab")
    lost = profile_file(tmp_path, "lost", PAPER_PUBLISHED.replace("optane_p5800x", "nope"))
    out = run_dpas("validate", "--profile", str(lost), "--out", str(tmp_path / "out"))
    assert_refused(out, "profile lost", "'nope'", "optane_p5800x")
    twin = profile_file(tmp_path, "qemu-lab", PAPER_PUBLISHED)
    out = run_dpas(
        "validate", "--profile", "qemu-lab", "--profile", str(twin), "--out", str(tmp_path / "out")
    )
    assert_refused(out, "two profiles are named 'qemu-lab'")
    assert not (tmp_path / "out").exists()
