"""Does the qemu-lab profile reproduce the lab's published tables? (run by hand)

    python benchmarks/fidelity.py [--runtime S] [--repeats N]

Runs qemu-lab's published grid (its [published] section: INT, CP, PAS and DPAS at 1-16 jobs
pinned to CPU 0, as the lab did, with bench.sh's auto d_init) and prints it against the lab's
multi-job table cell by cell as ``dpas validate`` does (dpas.reports.validation: model /
published, error, * on the six fitted cells, mean |error| fitted and predicted). Then what only
this profile has: the issue's criteria (CP flat, INT rises, DPAS's single-job CP:PAS split and
INT from 2 jobs) and the hrtimer table; exits 1 if any criterion fails.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from importlib import resources
from pathlib import Path
from typing import Any

from rich.console import Console

from dpas.bench.backend import Sweep
from dpas.bench.published import published_sweep
from dpas.bench.sweep import d_init_auto, plan, run_all
from dpas.policy import Method, PasParams
from dpas.reports.bench import averaged
from dpas.reports.published import published_values
from dpas.reports.validation import compare, print_comparison
from dpas.sim import RunConfig, load, simulate

#: the lab's table, as dpas ships it (src/dpas/sim/reference/qemu_lab.json)
REFERENCE = Path(str(resources.files("dpas.sim").joinpath("reference", "qemu_lab.json")))
#: the axes of the checks below (qemu-lab's [published] grid)
MODES = ("INT", "CP", "PAS", "DPAS")
JOBS = (1, 2, 4, 8, 16)
TOLERANCE = 0.25


def grid(runtime: float, repeats: int) -> tuple[list[dict[str, Any]], int]:
    """qemu-lab's published grid: the records (RunResult dicts) and the auto d_init."""
    profile = load("qemu-lab")
    assert profile.published is not None, "qemu-lab lost its [published] section"
    sweep = published_sweep(profile.published, Sweep(repeats=repeats, runtime_s=runtime, seed=1))
    d_init = d_init_auto(profile, sweep)
    return [asdict(r) for r in run_all(plan(profile, sweep, d_init))], d_init


def by_cell(records: list[dict[str, Any]]) -> tuple[dict, dict]:
    """(mode, jobs) -> mean IOPS over repeats, and -> DPAS's breakdown summed over them."""
    table = averaged(records)
    iops = {(m, j): row["iops"] for m, rows in table.items() for j, row in rows.items()}
    breakdown = {
        (m, j): row["breakdown"]
        for m, rows in table.items()
        for j, row in rows.items()
        if "breakdown" in row
    }
    return iops, breakdown


def model_table(runtime: float, repeats: int) -> tuple[dict, dict, int]:
    """The grid's IOPS and breakdowns by cell, and the d_init they ran with."""
    records, d_init = grid(runtime, repeats)
    return (*by_cell(records), d_init)


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
    profile = load("qemu-lab")
    assert profile.published is not None, "qemu-lab lost its [published] section"
    values = published_values(profile.published.table, profile.published.device, profile.name)
    records, d_init = grid(args.runtime, args.repeats)
    comparison = compare(profile.name, profile.published, values, records)
    console = Console()
    console.print(
        f"qemu-lab, jobs on CPU 0, {args.runtime} s x {args.repeats}, auto d_init {d_init} ns",
        soft_wrap=True,
    )
    print_comparison(console, comparison)
    iops, breakdown = by_cell(records)
    for j in JOBS:
        print(f"DPAS {j:2} jobs breakdown: {breakdown['DPAS', j]}")
    print("hrtimer table (sleep ratio %, published vs model, always-yield off):")
    for d, pub, model in hrtimer_table():
        print(f"  d_init {d:5} ns: {pub:5.1f}% vs {model:5.1f}%")
    published = {m: {j: 1000 * v for (mm, j), v in values.kiops.items() if mm == m} for m in MODES}
    ok = True
    for text, passed in checks(iops, breakdown, published):
        print(("PASS " if passed else "FAIL ") + text)
        ok &= passed
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
