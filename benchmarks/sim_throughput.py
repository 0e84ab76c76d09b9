"""Simulated I/Os per wall second, compiled (mypyc) and pure Python, per mode; the peak RSS of
a long run; determinism; and the wall time of `dpas bench ALL` (by hand).

    python benchmarks/sim_throughput.py [--rounds R] [--save docs/data/sim-throughput.json]

Every measurement runs in a subprocess of this script (``--worker``): the compiled one as
installed, the pure one with DPAS_PURE_PYTHON=1, one after the other so they do not share the
cores; with ``--rounds`` they alternate R times, and each case's rate is its median round.
``--save`` writes every round's wall times, the peak RSS and the bench's wall time
(docs/make.py renders docs/bench.md's table from them). Reinstall first (``python3 -m pip
install -e .``) if a simulator source changed: a stale compiled set runs as Python, and the
first line says so.

The issue's target: `dpas bench ALL` (5 modes x 5 job counts, 1 s of simulated time each)
in at most 60 s on this 2-core machine, using both cores.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from measured import save

from dpas.compiled import PURE_ENV, decide
from dpas.policy import Method
from dpas.sim import RunConfig, load, simulate
from dpas.sim.profile import shipped

MODES = ("INT", "CP", "LHP", "EHP", "PAS", "DPAS")
#: (profile, cpus, jobs, simulated seconds): the lab's guest, and a fast drive if shipped
GRIDS = (("qemu-lab", "0", (1, 16), 1.0), ("optane-p5800x", "split", (1, 20), 0.2))
RSS_CASE = {"mode": "DPAS", "jobs": 20, "runtime_s": 1.0}


def config(case: dict[str, Any]) -> RunConfig:
    return RunConfig(
        load(case.get("profile", "qemu-lab")),
        Method.parse(case["mode"]),
        jobs=case["jobs"],
        cpus=case.get("cpus", "0"),
        runtime_s=case["runtime_s"],
        seed=case.get("seed", 1),
    )


def measure(case: dict[str, Any]) -> dict[str, Any]:
    """One run's simulated I/Os and events, and its wall time."""
    start = time.perf_counter()
    r = simulate(config(case))
    return {"ios": r.ios, "events": r.events, "wall_s": time.perf_counter() - start}


def peak_rss(case: dict[str, Any]) -> dict[str, Any]:
    """One run, then this process's peak resident set (KiB on Linux)."""
    result = measure(case)
    return {**result, "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}


def twice(case: dict[str, Any]) -> dict[str, Any]:
    """The same config and seed twice in one process: the same record, field for field."""
    a, b = asdict(simulate(config(case))), asdict(simulate(config(case)))
    return {"same": a == b, "ios": a["ios"]}


TASKS = {"measure": measure, "rss": peak_rss, "twice": twice}


def worker() -> None:
    """``--worker``: run the tasks on stdin, print the results and which simulator ran."""
    import dpas.compiled

    tasks = json.load(sys.stdin)
    results = [TASKS[task](case) for task, case in tasks]
    json.dump({"simulator": dpas.compiled.mode(), "results": results}, sys.stdout)


def run_worker(tasks: list[tuple[str, dict[str, Any]]], pure: bool) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k != PURE_ENV}
    if pure:
        env[PURE_ENV] = "1"
    done = subprocess.run(
        [sys.executable, __file__, "--worker"],
        input=json.dumps(tasks),
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    sys.stderr.write(done.stderr)
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def cases() -> list[dict[str, Any]]:
    names = shipped()
    return [
        {"profile": profile, "cpus": cpus, "mode": mode, "jobs": jobs, "runtime_s": runtime_s}
        for profile, cpus, job_counts, runtime_s in GRIDS
        if profile in names
        for mode in MODES
        for jobs in job_counts
    ]


def throughput(rounds: int) -> dict[str, Any]:
    """Every case's simulated I/Os and its wall times per round, compiled and pure, the two
    alternating so that the machine's load moves both alike."""
    todo = [("measure", case) for case in cases()]
    walls: dict[str, list[list[float]]] = {"compiled": [], "pure": []}
    simulator: dict[str, str] = {}
    ios: list[int] = []
    for _ in range(rounds):
        for name in walls:
            out = run_worker(todo, pure=name == "pure")
            simulator[name] = out["simulator"]
            walls[name].append([r["wall_s"] for r in out["results"]])
            ios = ios or [r["ios"] for r in out["results"]]
            if [r["ios"] for r in out["results"]] != ios:
                raise SystemExit(f"{name}: the records differ between runs")
    return {
        "simulator": simulator,
        "cases": [
            {**case, "ios": n, **{f"{k}_wall_s": [w[i] for w in walls[k]] for k in walls}}
            for i, ((_, case), n) in enumerate(zip(todo, ios, strict=True))
        ],
    }


def rate(case: dict[str, Any], which: str) -> float:
    """A case's simulated I/Os per wall second, at its median round."""
    return float(case["ios"] / statistics.median(case[f"{which}_wall_s"]))


def print_table(found: dict[str, Any]) -> None:
    simulator = found["simulator"]
    print(f"simulator: {simulator['compiled']} vs {simulator['pure']} ({PURE_ENV}=1)")
    print(
        f"{'profile':14} {'cpus':5} {'mode':5} {'jobs':>4} {'sim I/Os':>9} "
        f"{'compiled I/O/s':>14} {'pure I/O/s':>12} {'ratio':>5}"
    )
    ratios = []
    for case in found["cases"]:
        fast, slow = rate(case, "compiled"), rate(case, "pure")
        ratios.append(fast / slow)
        print(
            f"{case['profile']:14} {case['cpus']:5} {case['mode']:5} {case['jobs']:4} "
            f"{case['ios']:9} {fast:14,.0f} {slow:12,.0f} {fast / slow:5.2f}"
        )
    print(f"compiled/pure: {min(ratios):.2f} to {max(ratios):.2f}, mean {mean(ratios):.2f}")


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def rss_and_determinism() -> dict[str, Any]:
    profile = "optane-p5800x" if "optane-p5800x" in shipped() else "qemu-lab"
    rss_case = {**RSS_CASE, "profile": profile, "cpus": "split" if profile != "qemu-lab" else "0"}
    check = {"profile": "qemu-lab", "mode": "DPAS", "jobs": 16, "runtime_s": 0.2, "seed": 3}
    found: dict[str, Any] = {}
    for pure in (False, True):
        tasks = [("twice", check)] + ([] if pure else [("rss", rss_case)])
        out = run_worker(tasks, pure)
        same = out["results"][0]
        print(
            f"{out['simulator']}: same config and seed twice -> "
            f"{'identical' if same['same'] else 'DIFFERENT'} records ({same['ios']} I/Os)"
        )
        if not pure:
            rss = out["results"][1]
            print(
                f"{out['simulator']}: peak RSS of {profile} DPAS x20 ({rss_case['cpus']}) 1 s: "
                f"{rss['maxrss_kib'] / 1024:.0f} MiB ({rss['ios']} I/Os, {rss['wall_s']:.1f} s)"
            )
            found = {**rss_case, **rss}
    return found


def bench_wall_time() -> float | None:
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "dpas", "bench", "--out", out], capture_output=True, text=True
        )
        wall = time.perf_counter() - start
    if done.returncode:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        print(f"dpas bench failed (exit {done.returncode}): {last}")
        return None
    print(f"dpas bench (ALL, R, 1 repeat, qemu-lab): {wall:.1f} s wall")
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1, help="runs of each case, alternating")
    parser.add_argument("--save", type=Path, help="write the results here (docs/data/...)")
    args = parser.parse_args()
    status = decide(environ={k: v for k, v in os.environ.items() if k != PURE_ENV})
    print(f"compiled set: {'in use' if status.active else 'NOT in use: ' + status.reason}")
    found = throughput(args.rounds)
    print_table(found)
    found["peak_rss"] = rss_and_determinism()
    found["bench_all_wall_s"] = bench_wall_time()
    if args.save:
        save(args.save, "simulated I/Os per wall second, compiled and pure Python", found)


if __name__ == "__main__":
    if sys.argv[1:] == ["--worker"]:
        worker()
    else:
        main()
