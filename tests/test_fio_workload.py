"""fio's side of a workload: the job file of every built-in as fio reads it, short real runs
on a file here (psync: no polled drive), each group measured and over time, and the write
guard. Real fio, no mocks."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from dpas.bench.backend import Sweep
from dpas.policy import Method
from dpas.real import fio_workload as fw
from dpas.real.executor import LocalExecutor
from dpas.real.guard import create_filled
from dpas.real.modes import Refused
from dpas.real.runner import Runner
from dpas.real.site import RealConfig
from dpas.workload import Workload, load, parse, shipped
from dpas.workload.measures import BIN_MS

SIZE = 16 << 20
#: CPUs the job files of the parse-only tests are written for (fio parses them without them)
ONLINE = 8
#: this machine's, for the runs
HERE = 2


def debug_parse(fio: str, path: Path) -> list[tuple[str, dict[str, str]]]:
    """The sections fio parsed of a job file, each with the options it handled (its own, after
    [global]'s), from ``fio --parse-only --debug=parse``."""
    done = subprocess.run(
        [fio, "--parse-only", "--debug=parse", str(path)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    sections: list[tuple[str, dict[str, str]]] = []
    for line in done.stdout.splitlines() + done.stderr.splitlines():
        if found := re.search(r"Parsing section \[(.+)\]$", line):
            sections.append((found[1], {}))
        elif (found := re.search(r" handle_option=([a-z_]+), ptr=(.*)$", line)) and sections:
            sections[-1][1][found[1]] = found[2]
    return sections


def written(text: str) -> list[tuple[str, dict[str, str]]]:
    """The sections of a job file as dpas wrote them (key=value; a bare key as fio's (null))."""
    sections: list[tuple[str, dict[str, str]]] = []
    for line in text.splitlines():
        if line.startswith("[") and line.endswith("]"):
            sections.append((line[1:-1], {}))
        elif line and not line.startswith(";") and sections:
            key, _, value = line.partition("=")
            sections[-1][1][key] = value or "(null)"
    return sections


@pytest.mark.parametrize("name", [n for n in shipped() if n != "steady"])
def test_every_builtin_job_file_is_what_fio_parses(tmp_path: Path, fio: str, name: str) -> None:
    workload = load(name)
    job = fw.plan(
        workload, tmp_path / "data", "pvsync2", True, workload.runtime_s or 2, SIZE, ONLINE,
        log_dir=tmp_path,
    )  # fmt: skip
    path = tmp_path / f"{name}.fio"
    path.write_text(job.text)
    parsed = debug_parse(fio, path)
    ours = written(job.text)
    assert [s for s, _ in parsed] == [s for s, _ in ours]
    assert parsed[0][0] == "global"
    for (_, theirs), (_, mine) in zip(parsed[1:], ours[1:], strict=True):
        assert {k: theirs.get(k) for k in mine} == mine
    # one section a group and window; new_group on each group's first
    sections = ours[1:]
    assert [o["name"] for _, o in sections] == [workload.groups[s.group].name for s in job.sections]
    starts = [o for _, o in sections if "new_group" in o]
    assert [o["name"] for o in starts] == [g.name for g in workload.groups]
    for (_, options), section in zip(sections, job.sections, strict=True):
        group = workload.groups[section.group]
        assert options["numjobs"] == str(section.jobs)
        assert options["bs"] == str(group.bs)
        assert options["rw"] == "randread"
        if group.pattern.burst_ios:
            assert options["thinktime"] == str(group.pattern.period_ns // 1000)
            assert options["thinktime_blocks"] == str(group.pattern.burst_ios)
            assert "thinktime_spin" not in options
        if group.pattern.think_ns:
            think = str(group.pattern.think_ns // 1000)
            assert options["thinktime"] == options["thinktime_spin"] == think
        if group.zipf_theta:
            assert options["random_distribution"] == f"zipf:{group.zipf_theta:g}"
    g = dict(ours[0][1])
    assert g["hipri"] == "1" and g["runtime"].endswith("ms") and g["log_avg_msec"] == "100"
    assert job.readonly and "--readonly" in job.argv(fio, path)


def test_phases_on_windows_are_sections_of_one_reporting_group(tmp_path: Path) -> None:
    job = fw.plan(load("phases"), tmp_path / "data", "pvsync2", False, 8.0, SIZE, ONLINE)
    crowd = [(s.start_ms, s.length_ms, s.jobs) for s in job.sections if s.group == 1]
    assert crowd == [(2000, 2000, 7), (6000, 2000, 7)]
    assert job.text.count("\nnew_group\n") == 2 and job.text.count("name=crowd") == 2
    # a shorter run keeps only the windows that start before its end, cut at it
    short = fw.plan(load("phases"), tmp_path / "data", "pvsync2", False, 3.0, SIZE, ONLINE)
    assert [(s.start_ms, s.length_ms) for s in short.sections if s.group == 1] == [(2000, 1000)]
    none = fw.plan(load("phases"), tmp_path / "data", "pvsync2", False, 1.0, SIZE, ONLINE)
    assert [s.group for s in none.sections] == [0]


def test_pinned_jobs_land_where_every_backend_puts_them() -> None:
    """fio's split numbers the jobs of the whole file: a pinned group after one job would start
    on its second CPU, so it is written once per CPU instead."""
    w = parse(
        'name = "x"\n[[group]]\nname = "a"\n[[group]]\nname = "b"\njobs = 3\ncpus = "0-1"\n', "t"
    )
    job = fw.plan(w, "/dev/null", "psync", False, 1.0, None, HERE)
    assert [(s.group, s.jobs, s.cpus) for s in job.sections] == [
        (0, 1, "0"),
        (1, 2, "0"),
        (1, 1, "1"),
    ]
    # first in the file, fio's split already does it: one section, as FioJob writes it
    first = parse('name = "y"\n[[group]]\nname = "b"\njobs = 3\ncpus = "0-1"\n', "t")
    one = fw.plan(first, "/dev/null", "psync", False, 1.0, None, HERE)
    assert [(s.jobs, s.cpus, s.policy) for s in one.sections] == [(3, "0-1", "split")]


def test_what_fio_cannot_run_is_refused_in_one_line() -> None:
    both = parse(
        'name = "x"\n[[group]]\nname = "a"\nthink_us = 5\nburst_ios = 4\nperiod_ms = 10\n', "t"
    )
    with pytest.raises(fw.WorkloadFioError, match="think_us and burst_ios together"):
        fw.plan(both, "/dev/null", "psync", False, 1.0, None, HERE)
    with pytest.raises(fw.WorkloadFioError, match="names CPU 2, and this machine has 2 CPUs"):
        fw.plan(load("macro"), "/dev/null", "psync", False, 1.0, None, HERE)


def test_think_is_spun_only_by_a_fio_that_does_it_safely(tmp_path: Path) -> None:
    assert fw.spins_think("fio-3.36") and fw.spins_think("fio-3.41\n")
    assert not fw.spins_think("fio-3.33") and not fw.spins_think("fio")
    w = load("tenants")
    old = fw.plan(w, tmp_path / "d", "psync", False, 1.0, SIZE, HERE, spin_think=False)
    assert "thinktime_spin" not in old.text and "issue #1588" in old.note
    new = fw.plan(w, tmp_path / "d", "psync", False, 1.0, SIZE, HERE)
    assert "thinktime_spin=20" in new.text and not new.note


def run(fio: str, tmp_path: Path, workload: Workload, runtime_s: float) -> fw.WorkloadRun:
    """The workload on a file in ``tmp_path`` for ``runtime_s``, as FioRuns runs it."""
    data = tmp_path / "data"
    if not data.exists():
        create_filled(data, SIZE)
    logs = tmp_path / "logs"
    logs.mkdir(exist_ok=True)
    version = subprocess.run([fio, "--version"], capture_output=True, text=True).stdout
    job = fw.plan(
        workload, data, "psync", False, runtime_s, SIZE, HERE, log_dir=logs,
        spin_think=fw.spins_think(version),  # fio before 3.36 can stall a spinning job
    )  # fmt: skip
    path = tmp_path / "job.fio"
    path.write_text(job.text)
    done = LocalExecutor().run(job.argv(fio, path), 60)  # its process group ended past it
    assert done.returncode == 0, done.stderr
    groups = fw.group_results(job, done.stdout)
    return fw.WorkloadRun(job, groups, fw.series(job, logs, groups))


@pytest.mark.parametrize("name", ["bursts", "tenants"])
def test_a_builtin_runs_one_group_result_a_group(tmp_path: Path, fio: str, name: str) -> None:
    workload = load(name)
    ran = run(fio, tmp_path, workload, 1.0)
    assert [(g.name, g.role, g.jobs) for g in ran.groups] == [
        (g.name, g.role.value, g.jobs) for g in workload.groups
    ]
    bins = int(1000 / BIN_MS)
    for g in ran.groups:
        assert g.ios > 0 and g.iops > 0 and g.lat_mean_us > 0 and g.ctx > 0
        assert g.lat_p50_us <= g.lat_p99_us <= g.lat_p999_us
        s = ran.series[g.name] if ran.series else {}
        assert len(s["iops"]) == len(s["lat_us"]) == bins
        assert sum(s["iops"]) * BIN_MS / 1000 == pytest.approx(g.ios, rel=1e-6)
    if name == "bursts":  # 320 x 128 KiB, then a 320 ms idle: at most 4 bursts a job in 1 s
        gen = ran.groups[1]
        assert 4 * 320 <= gen.ios <= 4 * 4 * 320
    measured, rest = ran.measured(fw.run_key(workload, "INT", 1), HERE, None)
    fg = [g for g in ran.groups if g.role == "foreground"]
    assert measured.jobs == workload.foreground_jobs and measured.rw == "R"
    assert measured.ios == sum(g.ios for g in fg) and measured.runtime_s == 1.0
    assert rest["workload"] == name and len(rest["groups"]) == len(workload.groups)
    assert rest["mode_share"] is None and rest["series"]["bin_ms"] == BIN_MS


RATED = """
name = "rated"

[[group]]
name = "paced"
jobs = 2
cpus = "0-1"
rate_iops = 200

[[group]]
name = "blink"
role = "background"
cpus = "1"
start_s = 0.3
on_s = 0.2
off_s = 0.2
"""


def test_a_rate_limited_group_runs_at_its_rate_and_windows_start_late(
    tmp_path: Path, fio: str
) -> None:
    workload = parse(RATED, "rated.toml")
    ran = run(fio, tmp_path, workload, 1.0)
    paced, blink = ran.groups
    assert paced.iops == pytest.approx(200 * 2, rel=0.15)
    assert [(s.start_ms, s.length_ms) for s in ran.job.sections if s.group == 1] == [
        (300, 200),
        (700, 200),
    ]
    assert blink.ios > 0 and blink.iops == pytest.approx(blink.ios / 1.0)
    series = ran.series["blink"] if ran.series else {}
    assert series["iops"][:3] == [0.0, 0.0, 0.0] and max(series["iops"][3:]) > 0


def test_the_runner_runs_a_workload_and_keeps_its_job_file(tmp_path: Path, fio: str) -> None:
    workload = load("tenants")
    config = RealConfig(
        str(tmp_path / "data"), fio=fio, journal=tmp_path / "j.json", size=SIZE,
        jobfile_dir=tmp_path / "fio-jobs",
    )  # fmt: skip
    sweep = Sweep(
        (Method.INT,), jobs=(workload.foreground_jobs,), runtime_s=1.0, d_init_ns=4000,
        workload=workload,
    )  # fmt: skip
    bench = Runner(config, LocalExecutor()).run(sweep)
    (record,) = bench.records
    assert (record.mode, record.jobs, record.rw, record.repeat) == ("INT", 4, "R", 1)
    assert record.workload == "tenants" and record.backend == "fio"
    assert [g["name"] for g in record.groups or []] == ["service", "scan"]
    assert record.host_cpu_pct is not None and record.series is not None
    assert record.ios == sum(g["ios"] for g in record.groups or [])
    saved = tmp_path / "fio-jobs" / "INT-r1.fio"
    assert "[service.1]" in saved.read_text() and "[scan.2]" in saved.read_text()


WRITES = 'name = "w"\n[[group]]\nname = "reader"\n[[group]]\nname = "w"\nrole = "background"\nrw = "write"\n'


def test_a_workload_that_writes_needs_destroy_data(tmp_path: Path, fio: str) -> None:
    data = tmp_path / "data"
    create_filled(data, SIZE)
    workload = parse(WRITES, "w.toml")
    sweep = Sweep((Method.INT,), jobs=(1,), runtime_s=1.0, d_init_ns=4000, workload=workload)
    config = RealConfig(str(data), fio=fio, journal=tmp_path / "j.json", size=SIZE)
    with pytest.raises(Refused, match="add --destroy-data to write anyway"):
        Runner(config, LocalExecutor()).run(sweep)
    allowed = Runner(
        RealConfig(str(data), fio=fio, journal=tmp_path / "j.json", destroy_data=True),
        LocalExecutor(),
    )
    allowed.site.check_data(sweep)  # no refusal
    job = fw.plan(workload, data, "psync", False, 1.0, SIZE, HERE)
    assert not job.readonly and "--readonly" not in job.argv(fio, tmp_path / "j.fio")
