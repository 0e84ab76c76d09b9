"""A write run's own WAF_IU (``dpas bench W --iu``, issue 29): the simulator's drawn offsets, fio's
iologs and the engine's counted offsets, each held against the counts the backend itself
reports and against media bytes computed here, independently, from the offsets it issued."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from contextlib import nullcontext
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from conftest import run_dpas

from dpas.bench.backend import Sweep
from dpas.bench.sweep import SimulatorBackend
from dpas.bench.waf import Tally
from dpas.engine.run import EngineRun, FakeDevice, run
from dpas.policy import Method, Op
from dpas.real.engine_runs import engine_waf
from dpas.real.executor import LocalExecutor
from dpas.real.fio import FioJob
from dpas.real.runner import Runner
from dpas.real.site import RealConfig
from dpas.reports.bench import mode_tables
from dpas.results import RunResult
from dpas.sim import RunConfig, load, simulate
from dpas.sim.run import REGION_BYTES, waf_tally
from dpas.vm.guest import read_results
from dpas.waf import amplification

K = 1024


def media_here(offsets: list[int], lengths: list[int], iu: int) -> int:
    """Media bytes counted here, one write at a time in Python integers: the IUs from the one
    holding its first byte to the one holding its last, whole."""
    return sum(
        ((o + n - 1) // iu - o // iu + 1) * iu for o, n in zip(offsets, lengths, strict=True)
    )


def iolog_writes(path: Path) -> tuple[list[int], list[int]]:
    """A fio v3 iolog's write lines (time file write offset length), read here."""
    offsets, lengths = [], []
    for line in path.read_text().splitlines()[1:]:
        words = line.split()
        if len(words) == 5 and words[2] == "write":
            offsets.append(int(words[3]))
            lengths.append(int(words[4]))
    return offsets, lengths


def waf(record: RunResult | dict, iu: int) -> Fraction:
    entries = record.waf if isinstance(record, RunResult) else record["waf"]
    entry = next(e for e in entries if e["iu"] == iu)
    return Fraction(entry["media"], entry["logical"])


# -- the simulator ---------------------------------------------------------------------------


def sim_sweep(bs: int, ius: tuple[int, ...], seed: int = 1, **more: object) -> list[RunResult]:
    sweep = Sweep(
        (Method.CP, Method.DPAS), Op.WRITE, jobs=(1, 3), runtime_s=0.05, bs=bs, ius=ius,
        d_init_ns=3000, seed=seed, **more,
    )  # fmt: skip
    return SimulatorBackend(load("qemu-lab")).run(sweep, lambda _: None).records


@pytest.mark.parametrize(
    ("bs", "iu", "expected"),
    [(4 * K, 16 * K, 4), (4 * K, 4 * K, 1), (16 * K, 4 * K, 1), (8 * K, 64 * K, 8)],
)
def test_the_simulators_block_aligned_writes_cost_whole_ius(
    bs: int, iu: int, expected: int
) -> None:
    """fio's randwrite aligns to bs: a block smaller than the IU costs the whole IU, one a
    multiple of it costs nothing extra; every write the run completed is counted."""
    for record in sim_sweep(bs, (iu,)):
        assert waf(record, iu) == expected
        (entry,) = record.waf or []
        assert entry["writes"] == record.ios > 0 and entry["logical"] == record.ios * bs
        if expected > 1:  # a 4k block inside a 16k IU: never both ends on a boundary
            assert entry["start_only"] + entry["end_only"] + entry["both"] == record.ios


def test_the_simulators_offsets_are_the_seeds_and_drawn_as_documented() -> None:
    """Each job's own stream of the run's seed, uniform over the region's blocks: a block of
    12k against a 16k IU lands anywhere in it, so the counts depend on the draws."""
    first, again = sim_sweep(12 * K, (4 * K, 16 * K)), sim_sweep(12 * K, (4 * K, 16 * K))
    assert [r.waf for r in first] == [r.waf for r in again]
    other = sim_sweep(12 * K, (4 * K, 16 * K), seed=2)
    assert [r.waf for r in first] != [r.waf for r in other]
    for record in first:
        assert waf(record, 4 * K) == 1 and 1 < waf(record, 16 * K) < 3
    # the documented draw, redone here: job j's k-th write at its stream's k-th draw
    config = RunConfig(load("qemu-lab"), Method.CP, jobs=2, rw=Op.WRITE, bs=12 * K, seed=9,
                       ius=(16 * K,))  # fmt: skip
    ios = [700, 300]
    streams = np.random.SeedSequence(9).spawn(2)
    offsets = [
        int(o) * 12 * K
        for n, s in zip(ios, streams, strict=True)
        for o in np.random.default_rng(s).integers(0, REGION_BYTES // (12 * K), n)
    ]
    (entry,) = waf_tally(config, ios) or []
    assert entry["writes"] == 1000
    assert entry["media"] == media_here(offsets, [12 * K] * 1000, 16 * K)


def test_reads_and_runs_without_iu_record_no_waf() -> None:
    profile = load("qemu-lab")
    assert simulate(RunConfig(profile, Method.CP, runtime_s=0.01, ius=(16 * K,))).waf is None
    assert simulate(RunConfig(profile, Method.CP, rw=Op.WRITE, runtime_s=0.01)).waf is None


def test_bench_w_iu_shows_waf_iu_and_saves_it(tmp_path: Path) -> None:
    out = run_dpas(
        "bench", "W", "CP", "--iu", "4k,16K", "--jobs", "1,2", "--runtime", "0.02",
        "--out", str(tmp_path),
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "WAF_IU" in out.stdout and "4.000" in out.stdout and "1.000" in out.stdout
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["config"]["ius"] == [4 * K, 16 * K]
    for r in saved["records"]:
        assert [e["iu"] for e in r["waf"]] == [4 * K, 16 * K]
        assert [e["media"] for e in r["waf"]] == [r["ios"] * 4 * K, r["ios"] * 16 * K]


def test_the_table_pools_repeats_and_rounds_to_three_decimals() -> None:
    base = {"mode": "CP", "jobs": 1, "iops": 1.0, "lat_mean_us": 1.0, "cpu_pct": 1.0, "ctx": 0,
            "breakdown": None}  # fmt: skip
    entry = {"iu": 16 * K, "writes": 1, "start_only": 0, "end_only": 0, "both": 0}
    records = [
        {**base, "waf": [{**entry, "logical": 3, "media": 4}]},
        {**base, "waf": [{**entry, "logical": 3, "media": 6}]},
    ]
    (table,) = mode_tables(records)
    column = next(c for c in table.columns if "WAF_IU" in str(c.header))
    assert str(column.header) == "WAF_IU\n16k" and list(column.cells) == ["1.667"]


# -- the offsets counted by remainder (the engine's loop) --------------------------------------


def test_counts_by_remainder_give_the_offsets_own_totals() -> None:
    """Tally.add_residues, fed the counts of offsets modulo the largest IU, equals
    amplification() of the offsets themselves for every IU, with counts far past one bit."""
    rng = np.random.default_rng(5)
    span = 64 * K
    offsets = rng.integers(0, 1 << 20, 50_000) * 1536  # 1.5k blocks: every remainder kind
    counts = np.bincount((offsets % span) // 512, minlength=span // 512) * 1001
    tally = Tally((4 * K, 16 * K, span))
    tally.add_residues(counts, 3 * K)
    many = np.repeat(offsets, 1001)
    for entry in tally.record():
        expected = amplification(many, np.full(many.size, 3 * K), entry["iu"])
        assert entry == {"iu": expected.iu, **{k: getattr(expected, k) for k in entry if k != "iu"}}


def test_the_engine_counts_the_offsets_its_log_shows() -> None:
    """The compiled loop's count by remainder, differential against amplification() of the
    offsets its per-I/O log holds (the fake device: no drive needed)."""
    config = EngineRun(
        Path("/nonexistent"), "CP", rw=Op.WRITE, bs=12 * K, cpus=(0, 0), ios_per_job=3000,
        region_bytes=1 << 26, seed=3, log_ios=5000, waf_span=64 * K,
    )  # fmt: skip
    result = run(config, device=FakeDevice())
    offsets = np.concatenate([j.log["offset"] for j in result.jobs])
    assert offsets.size == result.ios == 6000
    recorded = engine_waf(result, (4 * K, 16 * K, 64 * K)) or []
    for entry in recorded:
        tally = amplification(offsets, np.full(offsets.size, 12 * K), entry["iu"])
        assert (entry["writes"], entry["media"], entry["both"]) == (
            tally.writes,
            tally.media,
            tally.both,
        )
    reads = run(
        EngineRun(Path("/x"), "CP", bs=4 * K, ios_per_job=10, region_bytes=1 << 20,
                  waf_span=16 * K),
        device=FakeDevice(),
    )  # fmt: skip
    assert sum(int(j.residues.sum()) for j in reads.jobs) == 0  # reads are not counted
    with pytest.raises(ValueError, match="waf_span 3000"):
        EngineRun(Path("/x"), "CP", waf_span=3000)


# -- fio and the engine on a regular file ----------------------------------------------------


def test_fio_gives_each_job_its_own_iolog() -> None:
    job = FioJob(Path("/d"), Op.WRITE, 4096, 2, 1.0, "pvsync2", False, "split",
                 iologs=(Path("/l/1"), Path("/l/2")))  # fmt: skip
    argv = job.argv("fio", 4)
    assert "--numjobs=2" not in argv and argv.count("--name=dpas") == 2
    first = argv.index("--name=dpas")
    assert argv[first:] == [
        "--name=dpas",
        "--write_iolog=/l/1",
        "--name=dpas",
        "--write_iolog=/l/2",
    ]
    assert "--cpus_allowed_policy=split" in argv[:first] and "--filename=/d" in argv[:first]
    plain = FioJob(Path("/d"), Op.WRITE, 4096, 2, 1.0, "pvsync2", False, "split").argv("fio", 4)
    assert plain[2] == "--name=dpas" and "--numjobs=2" in plain


def test_fio_on_a_file_counts_what_its_iologs_hold(
    tmp_path: Path, fio: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = RealConfig(str(tmp_path / "data"), fio=fio, journal=tmp_path / "j.json", size=16 << 20)
    sweep = Sweep((Method.INT,), Op.WRITE, jobs=(1, 2), runtime_s=0.4, d_init_ns=4000, bs=8 * K,
                  ius=(4 * K, 16 * K))  # fmt: skip
    runner = Runner(config, LocalExecutor())
    kept = tmp_path / "iologs"
    folders: list[Path] = []

    def keep() -> nullcontext[str]:  # each run's iologs kept for this test to read
        folders.append(kept / str(len(folders)))
        folders[-1].mkdir(parents=True)
        return nullcontext(str(folders[-1]))

    monkeypatch.setattr(runner.fio, "iolog_folder", keep)
    records = runner.run(sweep).records
    assert [r.jobs for r in records] == [1, 2] and len(folders) == 2
    for record, folder in zip(records, folders, strict=True):
        logs = sorted(folder.iterdir())
        assert len(logs) == record.jobs
        offsets, lengths = [], []
        for log in logs:
            o, n = iolog_writes(log)
            offsets += o
            lengths += n
        four, sixteen = record.waf or []
        assert four["writes"] == sixteen["writes"] == len(offsets) == record.ios > 0
        assert four["media"] == four["logical"] == sum(lengths) == record.ios * 8 * K
        assert sixteen["media"] == media_here(offsets, lengths, 16 * K)
        assert 1 < waf(record, 16 * K) <= 2 and "iolog" not in (record.note or "")


def test_fio_deletes_its_iologs_once_counted(
    tmp_path: Path, fio: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setenv("TMPDIR", str(temp))  # where the command's temporary folders go
    out = run_dpas(
        "bench", "INT", "W", "--device", str(tmp_path / "data"), "--size", "8m", "--jobs", "2",
        "--runtime", "0.2", "--d-init", "4000", "--iu", "16k", "--out", str(tmp_path / "out"),
        "--journal", str(tmp_path / "j.json"),
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    (record,) = json.loads((tmp_path / "out" / "results.json").read_text())["records"]
    assert record["backend"] == "fio" and waf(record, 16 * K) == 4
    assert record["waf"][0]["writes"] == record["ios"] > 0
    assert "WAF_IU" in out.stdout and list(temp.iterdir()) == []


def test_the_engine_on_a_file_counts_the_offsets_it_logged(tmp_path: Path) -> None:
    data = tmp_path / "data.img"
    data.write_bytes(b"\0" * (8 << 20))
    out = tmp_path / "out"
    done = run_dpas(
        "bench", "INT", "W", "--device", str(data), "--destroy-data", "--engine", "dpas",
        "--jobs", "1,2", "--runtime", "0.3", "--d-init", "5000", "--size", "8m", "--bs", "12k",
        "--iu", "4k,16k", "--log", "--out", str(out),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    for r in json.loads((out / "results.json").read_text())["records"]:
        offsets = np.load(r["log"])["offset"].tolist()
        assert len(offsets) == r["ios"] == r["waf"][0]["writes"] > 0
        for entry in r["waf"]:
            assert entry["media"] == media_here(offsets, [12 * K] * len(offsets), entry["iu"])


def test_the_guest_sweep_counts_its_writes_as_the_host_does(tmp_path: Path) -> None:
    """dpas.vm.inguest bench (dpas vm bench W --iu) on a file here: the sweep's IUs reach the
    guest's runner in the sweep's record, its records come back with their WAF_IU."""
    sweep = Sweep((Method.INT,), Op.WRITE, jobs=(1,), runtime_s=0.2, d_init_ns=4000,
                  ius=(16 * K,))  # fmt: skip
    assert Sweep.from_record(json.loads(json.dumps(sweep.record()))) == sweep
    for engine in ("fio", "dpas"):
        data = tmp_path / f"data-{engine}"  # missing: made for the run (the guest's own drive
        # is writable by design; a file here that holds data would be refused)
        spec = {"sweep": sweep.record(), "device": str(data), "engine": engine,
                "fio": shutil.which("fio") or "fio"}  # fmt: skip
        out = subprocess.run(
            [sys.executable, "-m", "dpas.vm.inguest", "bench", json.dumps(spec)],
            capture_output=True, text=True, timeout=120,
            env={**os.environ, "XDG_STATE_HOME": str(tmp_path)},
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        result = read_results("@@UNAME here\n" + out.stdout + "@@DONE\n")
        assert not result.error, result.error
        (record,) = result.records
        assert record["waf"][0]["writes"] == record["ios"] > 0 and waf(record, 16 * K) == 4


# -- what is refused -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["W", "--iu", "3k"], "dpas: error: --iu 3k: expected a power of two from 512 to 1g"),
        (["W", "--iu", "2g"], "dpas: error: --iu 2g is 2147483648 bytes: expected a size"),
        (["W", "--iu", "16k,"], "dpas: error: --iu 16k,: expected sizes separated by commas"),
        (["W", "--iu", "16q"], "dpas: error: --iu 16q: expected a size as fio writes one"),
        (["--iu", "16k"], "dpas: error: --iu 16k: a read sweep (R) writes nothing to count"),
        (["R", "--iu", "16k"], "a read sweep (R) writes nothing to count; WAF_IU needs W"),
        (["--workload", "bursts", "--iu", "16k"], "not a workload's"),
    ],
)
def test_iu_refusals_are_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    out = run_dpas("bench", *args, "--out", str(tmp_path))
    assert out.returncode == 2 and message in out.stderr, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and not (tmp_path / "results.json").exists()


def test_vm_bench_refuses_iu_for_reads_before_booting(tmp_path: Path) -> None:
    out = run_dpas("vm", "bench", "INT", "--iu", "16k", "--out", str(tmp_path))
    assert out.returncode == 2 and "--iu 16k: a read sweep (R)" in out.stderr, out.stderr


def test_a_job_without_writes_adds_nothing_and_a_broken_iolog_is_an_error(
    tmp_path: Path,
) -> None:
    from dpas.machine.fio import FioError
    from dpas.real.fio_runs import iolog_waf

    header = "fio version 3 iolog\n0 /f add\n1 /f open\n"
    wrote = tmp_path / "job1.iolog"
    wrote.write_text(header + "2 /f write 12288 20480\n3 /f close\n")
    idle = tmp_path / "job2.iolog"
    idle.write_text(header + "2 /f close\n")
    (entry,) = iolog_waf((wrote, idle), (16 * K,))
    assert (entry["writes"], entry["logical"], entry["media"]) == (1, 20 * K, 32 * K)
    broken = tmp_path / "job3.iolog"
    broken.write_text(header + "2 /f write twelve 4096\n")
    with pytest.raises(FioError, match="job3.iolog line 4"):
        iolog_waf((wrote, broken), (16 * K,))
    with pytest.raises(FioError, match="no such file"):
        iolog_waf((wrote, tmp_path / "job4.iolog"), (16 * K,))
