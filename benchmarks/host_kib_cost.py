"""The host's CPU time per KiB of a larger block, measured with real fio (run by hand).

    python benchmarks/host_kib_cost.py [--dir /var/tmp/dpas-kib-probe] [--runtime 4]

This is the source of ``kib_ns`` in the profiles ([host] of qemu-lab.toml and of
platforms/bare-metal.toml): the submission's CPU time per KiB beyond 4 KiB, which the
simulator adds to submit_ns for --bs above 4096 (pinning and mapping the pages of the
buffer, building a longer request).

It runs fio randread, ioengine=pvsync2, direct=1, iodepth 1, one job, at bs=4k and at
bs=128k for --runtime seconds each, on a 1 GiB file in --dir, and prints for each the CPU
time per I/O, (usr_cpu + sys_cpu) / 100 x job_runtime / total_ios from fio's JSON, and the
difference per KiB: (cpu128k - cpu4k) / 124 (128 KiB is 124 KiB beyond 4 KiB).

The reads never write. The file is created only if it does not exist, by fio's own
sequential write job on that new file (said when it happens); an existing file is only read
(fio runs with --readonly), and one smaller than 1 GiB is refused rather than extended.

What it measures is the difference of two whole I/O paths: the wait for the device is the
same sleep in both (interrupt-driven pvsync2), so it cancels but for the completion's work
on the larger request. Run it on an idle machine; pin it with --cpu to steady it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

SIZE = 1 << 30
FILE = "kib-probe.dat"
SIZES = (("4k", 4096), ("128k", 131072))


def fio_json(argv: list[str]) -> dict[str, Any]:
    """Run fio with JSON output; its report (fio may print notes before the JSON)."""
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"fio failed ({done.returncode}): {done.stderr.strip() or done.stdout[-500:]}")
    start = done.stdout.find("{")
    if start < 0:
        sys.exit(f"fio printed no JSON: {done.stdout[-500:]}")
    return json.loads(done.stdout[start:])


def ensure_file(fio: str, path: Path) -> None:
    """Create the probe file with fio's write job if it does not exist; never rewrite one."""
    if path.exists():
        size = path.stat().st_size
        if size < SIZE:
            sys.exit(f"{path}: {size} bytes, under 1 GiB; remove it or choose another --dir")
        print(f"reusing {path} ({size >> 20} MiB)")
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    print(f"creating {path} (1 GiB, fio sequential write, direct)", flush=True)
    fio_json(
        [
            fio,
            "--name=create",
            f"--filename={path}",
            "--rw=write",
            "--bs=1M",
            f"--size={SIZE}",
            "--direct=1",
            "--end_fsync=1",
            "--output-format=json",
        ]
    )


def cpu_us_per_io(fio: str, path: Path, bs: str, runtime: int, cpu: int | None) -> dict[str, Any]:
    """fio randread at ``bs``: CPU µs per I/O, with the numbers it comes from."""
    argv = [
        fio,
        f"--name=kib-{bs}",
        f"--filename={path}",
        "--readonly",
        "--allow_file_create=0",
        "--rw=randread",
        f"--bs={bs}",
        f"--size={SIZE}",
        "--ioengine=pvsync2",
        "--direct=1",
        "--iodepth=1",
        "--numjobs=1",
        "--time_based",
        f"--runtime={runtime}",
        "--norandommap",
        "--randrepeat=0",
        "--output-format=json",
    ]
    if cpu is not None:
        argv.append(f"--cpus_allowed={cpu}")
    job = fio_json(argv)["jobs"][0]
    cpu_pct = float(job["usr_cpu"]) + float(job["sys_cpu"])
    runtime_ms = float(job["job_runtime"])
    ios = int(job["read"]["total_ios"])
    if ios == 0:
        sys.exit(f"fio at bs={bs} completed no I/O")
    return {
        "bs": bs,
        "ios": ios,
        "runtime_ms": runtime_ms,
        "cpu_pct": cpu_pct,
        "lat_us": float(job["read"]["clat_ns"]["mean"]) / 1000,
        "cpu_us": cpu_pct / 100 * runtime_ms * 1000 / ios,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default="/var/tmp/dpas-kib-probe", type=Path)
    parser.add_argument("--runtime", default=4, type=int, help="seconds per block size")
    parser.add_argument("--cpu", default=None, type=int, help="pin fio to this CPU")
    args = parser.parse_args()
    fio = shutil.which("fio")
    if fio is None:
        sys.exit("fio is not installed (apt-get install -y fio)")
    version = subprocess.run([fio, "--version"], capture_output=True, text=True).stdout.strip()
    path = args.dir / FILE
    ensure_file(fio, path)
    print(f"{version}, randread pvsync2 direct=1 iodepth=1, {args.runtime} s per size")
    results = {}
    for name, _ in SIZES:
        r = results[name] = cpu_us_per_io(fio, path, name, args.runtime, args.cpu)
        print(
            f"  bs={name:>4}: {r['ios']:>7} I/Os in {r['runtime_ms']:.0f} ms, "
            f"cpu {r['cpu_pct']:5.2f}%, clat {r['lat_us']:7.2f} us, "
            f"CPU {r['cpu_us']:.3f} us per I/O"
        )
    kib = (SIZES[1][1] - SIZES[0][1]) // 1024
    per_kib_ns = (results["128k"]["cpu_us"] - results["4k"]["cpu_us"]) / kib * 1000
    print(f"per KiB beyond 4 KiB: ({results['128k']['cpu_us']:.3f} - ", end="")
    print(f"{results['4k']['cpu_us']:.3f}) us / {kib} = {per_kib_ns:.1f} ns (kib_ns)")


if __name__ == "__main__":
    main()
