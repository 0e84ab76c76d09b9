"""Does the qemu-lab profile reproduce the lab's published multi-job table? (run by hand)

    python benchmarks/fidelity.py [--runtime S] [--repeats N]

Runs INT, CP, PAS and DPAS at 1-16 jobs pinned to CPU 0 (as the lab did) with bench.sh's
auto d_init, prints the model against shared/reference/qemu_lab.json cell by cell (marking
the six cells the profile was fitted to), checks the issue's criteria and the hrtimer table,
and exits 1 if any criterion fails.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from dpas.bench.backend import Sweep
from dpas.bench.sweep import d_init_auto, plan, run_all
from dpas.policy import Method, PasParams
from dpas.sim import RunConfig, load, simulate

#: shared/ sits beside the project (../shared), wherever the project was copied to
REFERENCE = next(
    p / "shared" / "reference" / "qemu_lab.json"
    for p in Path(__file__).resolve().parents
    if (p / "shared" / "reference" / "qemu_lab.json").exists()
)
MODES = ("INT", "CP", "PAS", "DPAS")
JOBS = (1, 2, 4, 8, 16)
#: the cells the profile's FIT parameters were fitted to (with DPAS's 1-job breakdown)
FITTED = {("INT", 1), ("INT", 4), ("INT", 16), ("CP", 1), ("PAS", 1), ("PAS", 16)}
TOLERANCE = 0.25


def model_table(runtime: float, repeats: int) -> tuple[dict, dict, int]:
    profile = load("qemu-lab")
    sweep = Sweep(
        modes=tuple(Method.parse(m) for m in MODES),
        jobs=JOBS,
        runtime_s=runtime,
        repeats=repeats,
    )
    d_init = d_init_auto(profile, sweep)
    runs = plan(profile, sweep, d_init)
    iops: dict = {}
    breakdown: dict = {}
    for run, result in zip(runs, run_all(runs), strict=True):
        key = (run.method.value, run.jobs)
        iops[key] = iops.get(key, 0.0) + result.iops / repeats
        if result.breakdown is not None:
            old = breakdown.get(key, dict.fromkeys(result.breakdown, 0))
            breakdown[key] = {k: old[k] + v for k, v in result.breakdown.items()}
    return iops, breakdown, d_init


def hrtimer_table() -> list[tuple[int, float, float]]:
    """The lab's measurement before the always-yield fix: how often a d_init sleep slept."""
    reference = json.loads(REFERENCE.read_text())["hrtimer_sleep_in_qemu"]["rows"]
    profile = load("qemu-lab").with_pitfalls(always_yield=False)
    rows = []
    for row in reference:
        run = simulate(
            RunConfig(
                profile,
                Method.PAS,
                runtime_s=0.2,
                pas=PasParams(d_init=row["d_init_ns"], adaptive=0, dn_init=0, up_init=0),
            )
        )
        slept = 100 * run.sleeps_taken / max(run.sleeps_taken + run.sleeps_skipped, 1)
        rows.append((row["d_init_ns"], row["sleep_ratio_pct"], slept))
    return rows


def checks(iops: dict, breakdown: dict, published: dict) -> list[tuple[str, bool]]:
    out = []
    worst = max(abs(iops[k] / published[k[0]][k[1]] - 1) for k in iops)
    out.append((f"every cell within 25% (worst {worst:.0%})", worst <= TOLERANCE))
    cp = [iops["CP", j] for j in JOBS]
    out.append((f"CP flat: max/min {max(cp) / min(cp):.2f} <= 1.25", max(cp) / min(cp) <= 1.25))
    ratio = iops["INT", 8] / iops["INT", 1]
    out.append((f"INT rises: 8 jobs = {ratio:.1f} x 1 job >= 3", ratio >= 3))
    d1 = iops["DPAS", 1] / iops["CP", 1]
    out.append((f"DPAS 1 job = {d1:.2f} x CP >= 0.85", d1 >= 0.85))
    b = breakdown["DPAS", 1]
    cp_pas = b["cp"] / max(b["pas"], 1)
    out.append((f"DPAS 1 job CP:PAS = {cp_pas:.1f}:1 in 5..20", 5 <= cp_pas <= 20))
    for j in JOBS[1:]:
        b = breakdown["DPAS", j]
        share = b["int"] / max(sum(b.values()), 1)
        out.append((f"DPAS {j} jobs: {share:.0%} of I/Os in INT (mostly)", share > 0.5))
    for j in (4, 8, 16):
        r = iops["DPAS", j] / iops["INT", j]
        out.append((f"DPAS {j} jobs = {r:.2f} x INT >= 0.8", r >= 0.8))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runtime", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    published = {
        m: {int(j): row[m] for j, row in table.items()}
        for m in MODES
        for table in [json.loads(REFERENCE.read_text())["multi_job_cpu0_pinned_iops"]]
    }
    iops, breakdown, d_init = model_table(args.runtime, args.repeats)
    print(f"qemu-lab, jobs on CPU 0, {args.runtime} s x {args.repeats}, auto d_init {d_init} ns")
    print("IOPS: model / published (error); * = fitted cell, the rest are predictions")
    print("mode  " + "".join(f"{j:>22}" for j in JOBS))
    for m in MODES:
        cells = []
        for j in JOBS:
            mark = "*" if (m, j) in FITTED else " "
            err = iops[m, j] / published[m][j] - 1
            cells.append(f"{iops[m, j] / 1e3:6.1f}k/{published[m][j] / 1e3:5.1f}k{err:+5.0%}{mark}")
        print(f"{m:5} " + "".join(f"{c:>22}" for c in cells))
    held = [abs(iops[k] / published[k[0]][k[1]] - 1) for k in iops if k not in FITTED]
    fit = [abs(iops[k] / published[k[0]][k[1]] - 1) for k in iops if k in FITTED]
    print(
        f"mean |error|: fitted cells {sum(fit) / len(fit):.1%}, "
        f"predicted cells {sum(held) / len(held):.1%} (worst {max(held):.1%})"
    )
    for j in JOBS:
        print(f"DPAS {j:2} jobs breakdown: {breakdown['DPAS', j]}")
    print("hrtimer table (sleep ratio %, published vs model, always-yield off):")
    for d, pub, model in hrtimer_table():
        print(f"  d_init {d:5} ns: {pub:5.1f}% vs {model:5.1f}%")
    ok = True
    for text, passed in checks(iops, breakdown, published):
        print(("PASS " if passed else "FAIL ") + text)
        ok &= passed
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
