"""The workload reports: group tables, the baseline comparison and the timeline figure, on
records built by hand (small, made up, but as a backend writes them)."""

from __future__ import annotations

import io
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from matplotlib.colors import to_rgba
from rich.console import Console
from rich.table import Table

from dpas.errors import DpasError
from dpas.reports.timeline_figure import MODE_COLORS, mode_spans, pick_run, plot_timeline
from dpas.reports.workload import baseline_record, baseline_table, group_tables
from dpas.results import GroupResult, RunResult
from dpas.workload import Group, Role, Workload
from dpas.workload.measures import workload_fields

#: two foreground jobs on CPUs 0-1 and one background job beside them
WORKLOAD = Workload(
    name="tiny",
    groups=(
        Group("app", jobs=2, cpus="0-1"),
        Group("load", role=Role.BACKGROUND, jobs=1, cpus="0-1", bs=131072),
    ),
)
RUNTIME_S = 1.0
#: CPU 1 goes to CP at 250 ms and to INT at 500 ms; CPU 0 never changes (PAS throughout)
TIMELINE = [(250.0, 1, "PAS", "CP"), (500.0, 1, "CP", "INT")]


def record(
    mode: str,
    iops: float,
    cpu: float,
    *,
    repeat: int = 1,
    jobs: int = 2,
    timeline: list[tuple[float, int, str, str]] | None = None,
    series: bool = True,
) -> dict[str, Any]:
    """A workload run's record: the foreground app at ``iops`` and ``cpu`` %, the background
    at a tenth of its IOPS and 10 % CPU, ten bins of 100 ms."""
    groups = [
        GroupResult("app", "foreground", jobs, int(iops), iops, 20.0, 18.0, 40.0, 60.0, cpu, 5),
        GroupResult("load", "background", 1, int(iops / 10), iops / 10, 90.0, 80, 200, 300, 10, 2),
    ]
    bins = {
        "app": {"iops": [iops] * 9 + [0.0], "lat_us": [20.0] * 9 + [0.0]},
        "load": {"iops": [iops / 10] * 10, "lat_us": [90.0] * 10},
    }
    fields = workload_fields(WORKLOAD, groups, 2, RUNTIME_S, bins if series else None, timeline)
    return asdict(
        RunResult(
            mode=mode,
            jobs=jobs,
            rw="R",
            repeat=repeat,
            runtime_s=RUNTIME_S,
            d_init_ns=0,
            timeline=timeline,
            **fields,
        )
    )


def rendered(table: Table) -> str:
    console = Console(width=200, file=io.StringIO())
    console.print(table)
    return console.file.getvalue()  # type: ignore[attr-defined]


def test_a_record_is_self_consistent() -> None:
    r = record("INT", 1000.0, 40.0)
    assert r["iops"] == 1000.0 and r["cpu_pct"] == 40.0 and r["workload"] == "tiny"
    # (40 % x 2 jobs + 10 % x 1 job) over 2 CPUs
    assert r["host_cpu_pct"] == pytest.approx(45.0)
    shares = record("DPAS", 1, 1, timeline=TIMELINE)["mode_share"]
    assert shares == pytest.approx({"PAS": 0.625, "CP": 0.125, "OL": 0.0, "INT": 0.25})


def test_baseline_is_100_and_twice_its_iops_is_200() -> None:
    records = [
        record("INT", 1000.0, 40.0, repeat=1),
        record("INT", 1000.0, 40.0, repeat=2),
        record("CP", 2000.0, 100.0),
        record("DPAS", 1500.0, 20.0, timeline=TIMELINE),
    ]
    rows = {r["mode"]: r for r in baseline_record(records)}
    assert list(rows) == ["INT", "CP", "DPAS"]
    assert rows["INT"]["repeats"] == 2
    assert rows["INT"]["iops_rel"] == rows["INT"]["cpu_pct_rel"] == 100.0
    assert rows["INT"]["host_cpu_pct_rel"] == 100.0
    assert rows["CP"]["iops"] == 2000.0 and rows["CP"]["iops_rel"] == 200.0
    assert rows["CP"]["cpu_pct_rel"] == 250.0
    # host: (100 x 2 + 10) / 2 = 105 against INT's 45
    assert rows["CP"]["host_cpu_pct_rel"] == pytest.approx(100 * 105 / 45)
    assert rows["DPAS"]["iops_rel"] == 150.0 and rows["DPAS"]["cpu_pct_rel"] == 50.0
    text = rendered(baseline_table(records))
    assert "Normalised to INT = 100" in text
    assert "Jobs" not in text  # one job count: no column for it
    cp = [list(c.cells)[1] for c in baseline_table(records).columns]
    assert cp == ["CP", "2000", "200", "100.0", "250", "105.0", "233"]


def test_baseline_per_job_count_and_another_baseline() -> None:
    records = [
        record("INT", 1000.0, 40.0, jobs=1),
        record("INT", 4000.0, 40.0, jobs=4),
        record("PAS", 3000.0, 20.0, jobs=1),
        record("PAS", 4000.0, 20.0, jobs=4),
    ]
    rows = {(r["mode"], r["jobs"]): r for r in baseline_record(records)}
    assert rows["PAS", 1]["iops_rel"] == 300.0 and rows["PAS", 4]["iops_rel"] == 100.0
    assert "Jobs" in rendered(baseline_table(records))
    by_pas = {(r["mode"], r["jobs"]): r for r in baseline_record(records, "PAS")}
    assert by_pas["PAS", 4]["iops_rel"] == 100.0 and by_pas["INT", 1]["cpu_pct_rel"] == 200.0


def test_a_missing_baseline_is_one_line_naming_what_ran() -> None:
    records = [record("CP", 1.0, 1.0), record("DPAS", 1.0, 1.0)]
    with pytest.raises(DpasError) as caught:
        baseline_table(records)
    message = str(caught.value)
    assert "\n" not in message
    assert "INT" in message and "CP, DPAS" in message


def test_group_tables_a_row_per_group_then_the_host() -> None:
    records = [
        record("INT", 1000.0, 40.0, repeat=1),
        record("INT", 3000.0, 60.0, repeat=2),
        record("DPAS", 1500.0, 20.0, timeline=TIMELINE),
        record("INT", 1.0, 1.0, jobs=7) | {"groups": None},  # a steady run: not a group table
    ]
    tables = group_tables(records)
    assert [t.title for t in tables] == ["INT: tiny (mean of 2 runs)", "DPAS: tiny"]
    int_table, dpas_table = tables
    heads = [str(c.header) for c in int_table.columns]
    assert heads == [
        "Group",
        "Role",
        "Jobs",
        "IOPS",
        "mean µs",
        "p50 µs",
        "p99 µs",
        "p99.9 µs",
        "CPU %",
    ]
    cells = {str(c.header): list(c.cells) for c in int_table.columns}
    assert cells["Group"] == ["app", "load", "host"]
    assert cells["Role"] == ["foreground", "background", "all jobs"]
    assert cells["IOPS"] == ["2000", "200", ""]  # means over the repeats
    assert cells["CPU %"] == ["50.0", "10.0", "55.0"]  # host: (50 x 2 + 10) / 2
    assert int_table.caption is None
    assert dpas_table.caption == "mode share: PAS 62% CP 12% OL 0% INT 25%"


def test_group_tables_one_section_per_job_count() -> None:
    records = [
        record("DPAS", 1.0, 1.0, jobs=2, timeline=[]),
        record("DPAS", 1.0, 1.0, jobs=4, timeline=TIMELINE),
    ]
    (table,) = group_tables(records)
    assert table.row_count == 6
    assert str(table.caption).startswith("mode share (2 jobs): PAS 100% CP 0% OL 0% INT 0%; ")
    assert "(4 jobs): PAS 62%" in str(table.caption)


def test_mode_spans_cover_the_run_for_every_cpu() -> None:
    spans = mode_spans(TIMELINE, [0, 1, 2], 1000.0)
    assert spans[0] == spans[2] == [(0.0, 1000.0, "PAS")]
    assert spans[1] == [(0.0, 250.0, "PAS"), (250.0, 250.0, "CP"), (500.0, 500.0, "INT")]


@pytest.mark.parametrize(
    "run",
    [
        record("DPAS", 1500.0, 20.0, timeline=TIMELINE),
        record("DPAS", 1500.0, 20.0, timeline=[]),
        record("INT", 1000.0, 40.0),
        record("CP", 1000.0, 40.0, series=False),
    ],
    ids=["timeline", "no-change", "no-timeline", "no-series"],
)
def test_timeline_figure_is_written(run: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "timeline.png"
    run = json.loads(json.dumps(run))  # as results.json gives it back: tuples become lists
    figure = plot_timeline(run, path, f"{run['mode']}: tiny", cpus=[0, 1])
    assert path.read_bytes()[:4] == b"\x89PNG"
    top, middle, bottom = figure.axes
    if run["series"]:
        # each group's IOPS per 100 ms bin, in thousands, the last bin held to the run's end
        drawn = {line.get_label(): line.get_ydata().tolist() for line in top.get_lines()}
        assert drawn == {
            name: [v / 1000 for v in [*g["iops"], g["iops"][-1]]]
            for name, g in run["series"]["groups"].items()
        }
        # the foreground's latency, a bin without I/O a gap
        (latency,) = bottom.get_lines()
        assert latency.get_ydata()[:9].tolist() == [20.0] * 9
        assert np.isnan(latency.get_ydata()[9:]).all()
    else:
        assert not top.get_lines() and not bottom.get_lines()
    # each CPU's bars: the modes' spans, in the modes' colours (CPU 0 never changed: PAS)
    bars = [(c.get_paths(), c.get_facecolors()) for c in middle.collections]
    if run["timeline"] is None:
        assert bars == []
    else:
        spans = mode_spans(run["timeline"], [0, 1], run["runtime_s"] * 1000)
        assert len(bars) == 2
        for (paths, colours), cpu in zip(bars, (0, 1), strict=True):
            starts = [round(path.vertices[:, 0].min(), 6) for path in paths]
            assert starts == [round(start / 1000, 6) for start, _, _ in spans[cpu]]
            want = [to_rgba(MODE_COLORS[mode]) for _, _, mode in spans[cpu]]
            assert [tuple(c) for c in colours] == want


def test_pick_run() -> None:
    records = [
        record("INT", 1.0, 1.0, repeat=1),
        record("DPAS", 2.0, 1.0, repeat=1, jobs=4),
        record("DPAS", 3.0, 1.0, repeat=2, jobs=4),
        record("CP", 4.0, 1.0, repeat=2),
        record("CP", 5.0, 1.0, repeat=1),
    ]
    assert pick_run(records)["iops"] == 2.0  # DPAS by default, its first repeat
    assert pick_run(records, "CP")["iops"] == 5.0  # the first repeat, not the first record
    assert pick_run(records[:1] + records[3:])["mode"] == "CP"  # no DPAS: the last mode
    with pytest.raises(DpasError, match=r"no PAS run .*INT, DPAS, CP"):
        pick_run(records, "PAS")
    with pytest.raises(DpasError):
        pick_run([])
