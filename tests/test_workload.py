"""Workloads (dpas.workload) as the user meets them: the file's checks, the built-ins, and the
simulator running their patterns, each checked against what the pattern says by hand."""

from __future__ import annotations

import json
import math
import pickle
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
from conftest import run_dpas
from hypothesis import given, settings
from hypothesis import strategies as st

from dpas.policy import Method
from dpas.results import RunResult
from dpas.sim import RunConfig, load, simulate
from dpas.workload import STEADY, Pacer, Pattern, Workload, WorkloadError, parse, shipped
from dpas.workload import load as load_workload
from dpas.workload.load import GROUP_KEYS

MS = 1_000_000


def run(workload: Workload, method: Method = Method.INT, profile: str = "optane-p5800x",
        runtime_s: float = 1.0, seed: int = 1) -> RunResult:  # fmt: skip
    return simulate(
        RunConfig(
            load(profile),
            method,
            jobs=workload.foreground_jobs,
            runtime_s=runtime_s,
            seed=seed,
            workload=workload,
        )
    )


def group(record: RunResult, name: str) -> dict[str, Any]:
    assert record.groups is not None
    return next(g for g in record.groups if g["name"] == name)


def iops_series(record: RunResult, name: str) -> list[float]:
    assert record.series is not None
    return list(record.series["groups"][name]["iops"])


def one(text: str) -> Workload:
    return parse(f'name = "t"\n{text}', "t.toml")


# -- the file -------------------------------------------------------------------------------------
def test_every_builtin_loads_and_names_its_source() -> None:
    names = shipped()
    assert names[0] == STEADY and {"bursts", "macro", "phases", "tenants"} <= set(names)
    for name in names[1:]:
        workload = load_workload(name)
        assert workload.name == name and workload.source and workload.foreground_jobs > 0


def test_a_workload_survives_the_trip_to_a_worker_process() -> None:
    """The simulator sends each run's config, workload included, to a worker process."""
    for name in shipped():
        workload = load_workload(name)
        assert pickle.loads(pickle.dumps(workload)) == workload
        assert Workload.from_record(json.loads(json.dumps(workload.record()))) == workload


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('[[group]]\nname = "a"\nrate = 5', "no key 'rate'"),
        ('[[group]]\nname = "a"\njobs = 0', "jobs = 0: expected a whole number from 1"),
        ('[[group]]\nname = "a"\nthink_us = nan', "think_us = nan: expected a number"),
        ('[[group]]\nname = "a"\nthink_us = inf', "think_us = inf: expected a number"),
        ('[[group]]\nname = "a"\nbs = 1000', "bs = 1000: expected whole 512-byte sectors"),
        ('[[group]]\nname = "a"\nbs = "4KiB"', "bs = 4KiB is 4000 bytes (fio reads KiB"),
        ('[[group]]\nname = "a"\nbs = "4.5k"', "bs = 4.5k: expected a size as fio writes"),
        (
            'runtime_s = 1e-300\n[[group]]\nname = "a"',
            "runtime_s = 1e-300: expected a number from 0.001",
        ),
        ('[[group]]\nname = "a"\nrole = "boss"', "role = 'boss': expected foreground or"),
        ('[[group]]\nname = "a"\nrole = "background"', "expected a foreground group"),
        ('[[group]]\nname = "a"\noffsets = "zipf:0"', "expected uniform or zipf:THETA"),
        ('[[group]]\nname = "a"\ncpus = "x"', "cpus = 'x': expected 0, split or a CPU list"),
        ('[[group]]\nname = "a"\nburst_ios = 3', "burst_ios and period_ms go together"),
        ('[[group]]\nname = "a"\non_s = 1', "on_s (above 0) and off_s go together"),
        ('[[group]]\nname = "a"\nstart_s = 2\nstop_s = 1', "stop_s = 1: expected after"),
        ('[[group]]\nname = "a"\n[[group]]\nname = "a"', "two groups are named 'a'"),
        ("", "expected one or more [[group]] tables"),
    ],
)
def test_a_bad_file_is_one_line_naming_the_key(text: str, says: str) -> None:
    with pytest.raises(WorkloadError) as err:
        one(text)
    assert says in str(err.value) and "\n" not in str(err.value)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(GROUP_KEYS),
        st.one_of(
            st.integers(-5, 10**7), st.floats(allow_nan=True), st.text(max_size=8), st.booleans()
        ),
    )
)
def test_any_group_table_is_a_workload_or_one_line(table: dict[str, Any]) -> None:
    table.setdefault("name", "g")
    lines = [f"{k} = {json.dumps(v) if not isinstance(v, float) else _toml_float(v)}"
             for k, v in table.items()]  # fmt: skip
    try:
        workload = one("[[group]]\n" + "\n".join(lines))
    except WorkloadError as err:
        assert "\n" not in str(err)
        return
    (read,) = workload.groups  # what was read is what the file says
    for key in ("jobs", "bs", "cpus", "pinned", "offsets"):
        assert key not in table or getattr(read, key) == table[key]
    assert read.pattern.rate_iops == table.get("rate_iops", 0)


def _toml_float(v: float) -> str:
    return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)


# -- the pacer ------------------------------------------------------------------------------------
def issue_times(pattern: Pattern, end_ns: int, io_ns: int) -> list[int]:
    """When a job whose I/Os take ``io_ns`` each issues, as the pacer lets it."""
    pacer, now, out = Pacer(pattern, end_ns), 0, []
    while (at := pacer.next_at(now)) >= 0:
        pacer.issued(at)
        out.append(at)
        now = at + io_ns
    return out


def test_bursts_are_io_gens_epochs() -> None:
    """io_gen: burst_ios at the start of each period, the rest of the period idle."""
    times = issue_times(Pattern(burst_ios=3, period_ns=10 * MS), 35 * MS, MS)
    assert times == [0, MS, 2 * MS, 10 * MS, 11 * MS, 12 * MS, 20 * MS, 21 * MS, 22 * MS,
                     30 * MS, 31 * MS, 32 * MS]  # fmt: skip


def test_a_burst_that_overruns_its_period_drops_the_rest() -> None:
    times = issue_times(Pattern(burst_ios=5, period_ns=3 * MS), 9 * MS, 2 * MS)
    # epochs at 0 (I/Os at 0, 2; the third would begin at 4 > 3: a new epoch at once)
    assert times == [0, 2 * MS, 4 * MS, 6 * MS, 8 * MS]
    assert all(b - a == 2 * MS for a, b in zip(times, times[1:], strict=False))


def test_a_rate_is_kept_on_absolute_time() -> None:
    times = issue_times(Pattern(rate_iops=1000), 10 * MS, MS // 4)
    assert times == [k * MS for k in range(10)]


def test_a_rate_starts_anew_in_each_on_window() -> None:
    """As fio runs each window as a job of its own: nothing held back in an off phase goes
    out in a rush after it, and a rate's wait that ends in an off phase waits for the next."""
    p = Pattern(rate_iops=1000, on_ns=2 * MS + MS // 2, off_ns=2 * MS + MS // 2)
    assert issue_times(p, 12 * MS, MS // 10) == [0, MS, 2 * MS, 5 * MS, 6 * MS, 7 * MS,
                                                  10 * MS, 11 * MS]  # fmt: skip


def test_windows_and_phases() -> None:
    p = Pattern(start_ns=2 * MS, stop_ns=9 * MS, on_ns=2 * MS, off_ns=3 * MS)
    times = issue_times(p, 20 * MS, MS)
    assert times == [2 * MS, 3 * MS, 7 * MS, 8 * MS]


# -- the simulator --------------------------------------------------------------------------------
def test_bursts_issue_320_ios_per_epoch_per_io_gen_job() -> None:
    """On a drive that finishes each burst inside its epoch: 4 jobs x one burst of 320 a
    320 ms epoch begun in the run (0, 320, 640, 960 ms in 1 s), and no I/O between bursts."""
    record = run(load_workload("bursts"), runtime_s=1.0)
    bursts = group(record, "io-gen")
    assert bursts["ios"] == 4 * 4 * 320
    series = iops_series(record, "io-gen")  # 100 ms bins: the bursts fall in 0, 3, 6, 9
    assert [k for k, v in enumerate(series) if v] == [0, 3, 6, 9]
    assert group(record, "reader")["ios"] == record.ios  # the headline is the foreground's


def test_a_rate_capped_group_does_its_rate() -> None:
    w = one('[[group]]\nname = "a"\nrate_iops = 2000\n[[group]]\nname = "b"\nrole = '
            '"background"\njobs = 2\nrate_iops = 500')  # fmt: skip
    record = run(w, runtime_s=0.5)
    assert group(record, "a")["ios"] in (999, 1000)  # the last may still be in flight
    assert group(record, "b")["ios"] in (2 * 249, 2 * 250)


def test_think_time_is_spent_on_the_cpu() -> None:
    """20 µs of CPU after each I/O: the job's CPU time holds at least that, and its I/Os are
    fewer than without it."""
    thinking = run(one('[[group]]\nname = "a"\nthink_us = 20'), runtime_s=0.3)
    plain = run(one('[[group]]\nname = "a"'), runtime_s=0.3)
    assert thinking.iops < plain.iops
    assert thinking.cpu_pct >= thinking.iops * 20e-6 * 100
    assert thinking.iops * (20e-6 + thinking.lat_mean_us * 1e-6) <= 1.0


def test_a_window_and_phases_show_in_the_series() -> None:
    w = one('[[group]]\nname = "a"\n[[group]]\nname = "b"\nrole = "background"\n'
            "start_s = 0.2\nstop_s = 0.9\non_s = 0.2\noff_s = 0.3")  # fmt: skip
    record = run(w, runtime_s=1.0)
    series = iops_series(record, "b")  # 100 ms bins: one I/O is 10 IOPS
    on = [k for k, v in enumerate(series) if v > 10]
    assert on == [2, 3, 7, 8]  # on 0.2-0.4 s, off to 0.7, on to 0.9 (its stop)
    # the last I/O issued in a window completes after it, at most one (one job)
    assert [k for k, v in enumerate(series) if 0 < v <= 10] in ([], [4], [9], [4, 9])
    assert all(iops_series(record, "a"))


def test_phases_move_dpas_through_every_mode_in_order() -> None:
    """One job, then 8 on CPU 0 from 2 s to 4 s: alone, DPAS moves between PAS and CP; as the
    crowd comes, PAS -> OL -> INT (queue depth above param3's 1.0); once it has left and INT's
    param7 I/Os are spent, INT -> OL -> PAS -> CP. The timeline says when."""
    record = run(load_workload("phases"), Method.DPAS, "qemu-lab", runtime_s=4.6)
    share = record.mode_share
    assert share is not None and math.isclose(sum(share.values()), 1.0, abs_tol=1e-5)
    steps = [(ms, f"{old}>{new}") for ms, _, old, new in record.timeline or []]
    alone = {step for ms, step in steps if ms < 2000}
    assert "PAS>CP" in alone and "CP>PAS" in alone and "OL>INT" not in alone
    crowd = [step for ms, step in steps if 2000 <= ms < 4000]
    assert "PAS>OL" in crowd and crowd.index("OL>INT") > crowd.index("PAS>OL")
    after = [step for ms, step in steps if ms >= 4000]
    back = after.index("OL>PAS")
    assert after[back - 1] == "INT>OL" and after[back + 1] == "PAS>CP"
    assert all(share[mode] > 0 for mode in ("PAS", "CP", "OL", "INT"))


def test_a_workload_run_is_the_same_for_the_same_seed() -> None:
    workload = load_workload("tenants")
    a = run(workload, Method.DPAS, runtime_s=0.2, seed=3)
    b = run(workload, Method.DPAS, runtime_s=0.2, seed=3)
    c = run(workload, Method.DPAS, runtime_s=0.2, seed=4)
    assert json.dumps(asdict(a)) == json.dumps(asdict(b))
    assert json.dumps(asdict(a)) != json.dumps(asdict(c))


# -- the command ----------------------------------------------------------------------------------
def test_bench_with_a_workload_writes_its_records_and_views(tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = run_dpas("bench", "INT", "DPAS", "--workload", "bursts", "--runtime", "0.7",
                    "--baseline", "INT", "--timeline", str(tmp_path / "t.png"), "--out",
                    str(out), timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    results = json.loads((out / "results.json").read_text())
    assert results["config"]["workload"]["name"] == "bursts"
    assert [r["workload"] for r in results["records"]] == ["bursts", "bursts"]
    assert [b["mode"] for b in results["baseline"]][0] == "INT"
    header = (out / "results.csv").read_text().splitlines()[0].split(",")
    assert "workload" in header and "host_cpu_pct" in header
    assert (tmp_path / "t.png").stat().st_size > 10_000
    assert "io-gen" in done.stdout and "Normalised to INT" in done.stdout


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--workload", "nope"], "--workload 'nope': expected a built-in"),
        (["--workload", "bursts", "--jobs", "4"], "with --workload"),
        (["--workload", "bursts", "--cpus", "split"], "with --workload"),
        (["--workload", "macro"], "names CPU 2, and profile qemu-lab has 2 CPUs"),
        (["--baseline", "EHP", "INT", "DPAS"], "--baseline EHP: expected one of the modes run"),
    ],
)
def test_bench_refuses_in_one_line(tmp_path: Path, args: list[str], says: str) -> None:
    done = run_dpas("bench", *args, "--runtime", "0.1", "--out", str(tmp_path / "o"))
    assert done.returncode == 2, done.stderr
    assert says in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_bench_reads_a_workload_file(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text('name = "mine"\nruntime_s = 0.3\n[[group]]\nname = "a"\njobs = 2\n')
    done = run_dpas("bench", "CP", "--workload", str(path), "--out", str(tmp_path / "o"))
    assert done.returncode == 0, done.stderr
    (record,) = json.loads((tmp_path / "o" / "results.json").read_text())["records"]
    assert record["workload"] == "mine" and record["jobs"] == 2 and record["runtime_s"] == 0.3
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "bad"\n[[group]]\nname = "a"\njobs = -1\n')
    done = run_dpas("bench", "--workload", str(bad), "--out", str(tmp_path / "p"))
    assert done.returncode == 2 and "jobs = -1" in done.stderr
