"""The destroy-data guard: no writes to a block device that holds data, unless asked."""

from __future__ import annotations

from pathlib import Path

from dpas.real.executor import Executor
from dpas.real.target import Target


def holdings(target: Target, executor: Executor) -> list[str]:
    """What a block device holds that writing would destroy: partitions, mounts, a filesystem."""
    if target.kind != "block":
        return []
    found = []
    names = {target.path.name}
    if target.disk is not None:
        disk_dir = executor.sysfs_root / "block" / target.disk
        parts = sorted(
            p.name for p in disk_dir.glob(f"{target.disk}*") if (p / "partition").exists()
        )
        if parts:
            found.append(f"partitions {', '.join(parts)}")
            names.update(parts)
    try:
        mounts = executor.read(Path("/proc/self/mounts")).splitlines()
    except OSError:
        mounts = []
    for line in mounts:
        fields = line.split()
        if len(fields) > 1 and Path(fields[0]).name in names and fields[0].startswith("/dev/"):
            found.append(f"a filesystem mounted on {fields[1]}")
    try:
        probe = executor.run(["blkid", "-p", "-o", "value", "-s", "TYPE", str(target.path)], 30)
    except FileNotFoundError:  # no blkid: partitions and mounts are what we can tell
        return found
    kind = probe.stdout.strip()
    if probe.returncode == 0 and kind:
        found.append(f"a {kind} filesystem")
    return found
