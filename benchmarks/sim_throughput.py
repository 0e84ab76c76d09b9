"""Simulated I/Os per wall second, per mode, and the wall time of `dpas bench ALL` (by hand).

    python benchmarks/sim_throughput.py

The issue's target: `dpas bench ALL` (5 modes x 5 job counts, 1 s of simulated time each)
in at most 60 s on this 2-core machine, using both cores.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time

from dpas.policy import Method
from dpas.sim import RunConfig, load, simulate


def main() -> None:
    profile = load("qemu-lab")
    names = ("mode", "jobs", "sim I/Os", "events", "wall s", "I/Os per wall s")
    widths = (-5, 4, 9, 9, 7, 16)
    print(
        " ".join(f"{n:{'<' if w < 0 else '>'}{abs(w)}}" for n, w in zip(names, widths, strict=True))
    )
    for mode in ("INT", "CP", "LHP", "PAS", "DPAS", "EHP"):
        for jobs in (1, 16):
            start = time.perf_counter()
            r = simulate(RunConfig(profile, Method.parse(mode), jobs=jobs, runtime_s=1.0))
            wall = time.perf_counter() - start
            print(f"{mode:5} {jobs:4} {r.ios:9} {r.events:9} {wall:7.2f} {r.ios / wall:16,.0f}")
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "dpas", "bench", "--out", out], check=True, capture_output=True
        )
        print(f"dpas bench (ALL, R, 1 repeat, qemu-lab): {time.perf_counter() - start:.1f} s wall")


if __name__ == "__main__":
    main()
