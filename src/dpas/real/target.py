"""What ``--device`` names: a block device (its queue holds the knobs) or a regular file."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from dpas.errors import DpasError
from dpas.machine.where import block_name
from dpas.real.executor import Executor


class TargetError(DpasError, ValueError):
    """--device names nothing usable."""


@dataclass(frozen=True, slots=True)
class Target:
    path: Path  # what fio opens
    kind: str  # "block" or "file"
    disk: str | None  # the whole disk whose queue/ holds the knobs, when known
    exists: bool = True  # False: a file dpas will create (and fill) for the run
    size: int = 0  # bytes: a file's length (a block device's is fio's business)

    def queue_dir(self, executor: Executor) -> Path | None:
        if self.disk is None:
            return None
        queue = executor.sysfs_root / "block" / self.disk / "queue"
        return queue if executor.exists(queue) else None


def _disk_of(major: int, minor: int, sysfs_root: Path) -> str | None:
    """The whole disk of a device number (a partition's parent), from /sys/dev/block."""
    link = sysfs_root / "dev" / "block" / f"{major}:{minor}"
    try:
        real = link.resolve(strict=True)
    except OSError:
        return None
    if (real / "partition").exists():
        return real.parent.name
    return real.name


def resolve(spec: str, executor: Executor, dev_root: Path = Path("/dev")) -> Target:
    """A block device by name (nvme0n1) or path (/dev/nvme0n1), or a regular file path
    (which dpas creates and fills if it does not exist yet)."""
    sysfs = executor.sysfs_root
    if not spec.strip() or "\0" in spec:
        raise _unusable(repr(spec), "empty or not a path")
    if block_name(spec) and executor.exists(sysfs / "block" / spec):
        return Target(dev_root / spec, "block", spec)
    path = Path(spec)
    try:
        st = path.stat()
    except FileNotFoundError:
        if "/" not in spec:  # a device name that is not here: never a new file in the cwd
            raise _unusable(
                spec,
                f"no block device of that name in {sysfs / 'block'} and no such file; "
                f"for a new file give a path such as ./{spec}",
            ) from None
        if not path.parent.is_dir():
            raise _unusable(spec, "no such file or directory") from None
        # a new regular file: dpas creates and fills it, on the parent directory's device
        st = path.parent.stat()
        disk = _disk_of(os.major(st.st_dev), os.minor(st.st_dev), sysfs)
        return Target(path.absolute(), "file", disk, exists=False)
    except OSError as err:
        raise _unusable(spec, err.strerror or str(err)) from None
    if stat.S_ISBLK(st.st_mode):
        disk = _disk_of(os.major(st.st_rdev), os.minor(st.st_rdev), sysfs)
        return Target(path, "block", disk)
    if stat.S_ISREG(st.st_mode):
        disk = _disk_of(os.major(st.st_dev), os.minor(st.st_dev), sysfs)
        return Target(path.absolute(), "file", disk, size=st.st_size)
    raise _unusable(spec, "not a block device or a regular file")


def _unusable(spec: str, why: str) -> TargetError:
    return TargetError(
        f"--device {spec}: {why} (expected a block device such as nvme0n1 or a regular file)"
    )
