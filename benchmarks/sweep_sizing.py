"""How fast ``dpas sweep`` runs a small grid, in the pool and on a local dask cluster.

    python benchmarks/sweep_sizing.py [--rounds R] [--save docs/data/sweep-sizing.json]

Per round, interleaved so that the machine's load moves every variant alike: the example grid
(examples/dpas-params.toml: 12 DPAS points of 0.1 s simulated on qemu-lab) and the same grid
with ``repeats = 10`` (120 points), each in the process pool (the default) and with
``--scheduler local:2``, each into a fresh folder. Kept per run: the points, the sweep's own
wall time and rate as its summary line prints them ("ran N points, ..., wall W s, R points per
wall second": timed from the first point, after a cluster has started) and the whole command's
wall time (the cluster's start included). docs/make.py renders docs/sweep.md's sizing from the
saved file.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from measured import save

ROOT = Path(__file__).resolve().parent.parent
GRID = ROOT / "examples" / "dpas-params.toml"
SCHEDULERS = {"pool": (), "local:2": ("--scheduler", "local:2")}
REPEATS = (1, 10)
#: the sweep's summary line
SUMMARY = re.compile(r"ran (\d+) points, .*wall ([\d.]+) s, ([\d.]+) points per wall second")


def grid_file(folder: Path, repeats: int) -> Path:
    """The example grid, with ``repeats`` added where it is more than 1."""
    text = GRID.read_text()
    if repeats > 1:
        text += f"repeats = {repeats}\n"
    path = folder / f"grid-{repeats}.toml"
    path.write_text(text)
    return path


def one(grid: Path, scheduler: str, out: Path) -> dict[str, Any]:
    """One sweep: its points, its own wall time and rate, and the command's wall time."""
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "dpas", "sweep", str(grid), "--out", str(out),
         *SCHEDULERS[scheduler]],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    command_s = time.monotonic() - start
    found = SUMMARY.search(done.stdout + done.stderr)
    if done.returncode != 0 or found is None:
        raise SystemExit(f"dpas sweep failed ({done.returncode}): {done.stderr[-400:]}")
    return {
        "points": int(found[1]),
        "sweep_wall_s": float(found[2]),
        "points_per_s": float(found[3]),
        "command_s": round(command_s, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--save", type=Path, default=None)
    args = parser.parse_args()
    runs: dict[str, list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        grids = {r: grid_file(folder, r) for r in REPEATS}
        for round_no in range(args.rounds):
            for repeats, grid in grids.items():
                for scheduler in SCHEDULERS:
                    key = f"{scheduler} x{repeats}"
                    out = folder / f"out-{round_no}-{repeats}-{scheduler.replace(':', '')}"
                    run = one(grid, scheduler, out)
                    runs.setdefault(key, []).append(run)
                    print(f"round {round_no + 1} {key}: {run}", flush=True)
    if args.save:
        save(
            args.save,
            "dpas sweep's rate on the example grid, pool and local:2",
            {"grid": GRID.relative_to(ROOT).as_posix(), "runs": runs},
        )


if __name__ == "__main__":
    main()
