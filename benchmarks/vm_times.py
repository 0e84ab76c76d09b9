"""How long ``dpas vm bench`` takes per --kernel spec, cold (an empty cache) and warm (again).

    python benchmarks/vm_times.py --kernel debian [--kernel debian:sid ...] [--save FILE.json]

Per spec, exactly ``dpas vm bench INT CP --jobs 1 --runtime 2 --kernel SPEC --cache DIR``: first
with DIR empty (cold: the fetch or build, the initramfs, the boot and two fio runs of 2 s), then
the same again (warm), each timed with the monotonic clock. What the cold run fetched: the
packages it unpacked (as it printed them), the size of DIR's apt lists and of DIR in all, and
the guest kernel's release from the results.json the run wrote. ``--keep DIR``: the caches go
to DIR/SPEC (kept, e.g. for benchmarks/engine_vs_fio.py --cache) instead of a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from measured import save

ARGS = ("INT", "CP", "--jobs", "1", "--runtime", "2")
#: what dpas prints when it unpacks a fetched package: "unpacking NAME.deb (12.3 MB)"
UNPACKED = re.compile(r"unpacking (\S+\.deb) \(([\d.]+) MB\)")


def size(path: Path) -> int:
    """The bytes of the files under ``path`` (their lengths, not their blocks)."""
    if not path.exists():
        return 0
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def bench(spec: str, cache: Path, out: Path) -> dict[str, Any]:
    """One timed ``dpas vm bench``: seconds, exit code, what it printed, the guest kernel."""
    shutil.rmtree(out, ignore_errors=True)
    argv = ["dpas", "vm", "bench", *ARGS, "--kernel", spec, "--cache", str(cache)]
    start = time.monotonic()
    done = subprocess.run([*argv, "--out", str(out)], capture_output=True, text=True)
    seconds = time.monotonic() - start
    text = done.stdout + done.stderr
    sys.stdout.write(text)
    results = out / "results.json"
    kernel = json.loads(results.read_text()).get("kernel") if results.exists() else None
    print(f"{spec}: {seconds:.1f} s, exit {done.returncode}, guest kernel {kernel}", flush=True)
    return {"seconds": round(seconds, 2), "returncode": done.returncode, "kernel": kernel,
            "output": text}  # fmt: skip


def measure(spec: str, cache: Path, out: Path) -> dict[str, Any]:
    """Cold then warm runs of ``spec`` in ``cache`` (emptied first), and what cold fetched."""
    shutil.rmtree(cache, ignore_errors=True)
    cache.mkdir(parents=True)
    cold = bench(spec, cache, out)
    fetched = {
        "packages": [
            {"name": name, "mb": float(mb)} for name, mb in UNPACKED.findall(cold["output"])
        ],
        "lists_bytes": sum(size(p) for p in cache.rglob("lists") if p.is_dir()),
        "cache_bytes": size(cache) - sum(size(cache / d) for d in ("run", "doctor", "shell")),
    }
    warm = bench(spec, cache, out)
    return {"spec": spec, "cold": cold, "warm": warm, "fetched": fetched}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kernel", action="append", required=True, help="a spec; repeatable")
    parser.add_argument("--keep", type=Path, help="keep the caches in KEEP/SPEC")
    parser.add_argument("--save", type=Path, help="save the times (docs/data/vm-times.json)")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="vm-times-", dir="/var/tmp") as tmp:
        for spec in args.kernel:
            slug = re.sub(r"[^\w.-]", "_", spec)
            cache = (args.keep or Path(tmp)) / slug
            rows.append(measure(spec, cache, Path(tmp) / "out"))
            if not args.keep:
                shutil.rmtree(cache)
    for row in rows:
        print(f"{row['spec']}: cold {row['cold']['seconds']:.1f} s, "
              f"warm {row['warm']['seconds']:.1f} s, {row['fetched']}")  # fmt: skip
    if args.save:
        what = "time dpas vm bench " + " ".join(ARGS) + " --kernel SPEC --cache DIR, cold and warm"
        save(args.save, what, rows)


if __name__ == "__main__":
    main()
