"""What a run may do to the data on its target.

A read never writes: an existing file is used as it is (at most ``--size`` of it), never
resized or laid out, and refused when too small or when the range read has holes (reads of a
hole never reach the device). A file dpas creates is filled with data before anything reads
it. A write to a block device or to any existing file needs ``--destroy-data``; the refusal
lists what the target holds as far as dpas can tell, and says what it could not tell.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from dpas.real.executor import Executor
from dpas.real.target import Target, TargetError
from dpas.sizes import show_size

MIB = 1 << 20
#: how many holes a refusal names before it says "and N more"
HOLES_NAMED = 3


# -- reads ------------------------------------------------------------------------------------
def read_size(target: Target, size: int, bs: int, jobs: int) -> int:
    """How much of an existing file a read run uses: at most ``size``, whole blocks, and at
    least one block per job; never more than the file holds (fio would lay out the rest)."""
    usable = min(size, target.size) // bs * bs
    needed = bs * jobs
    if usable < needed:
        raise TargetError(
            f"--device {target.path} holds {target.size} bytes: a read run of {jobs} jobs of "
            f"{show_size(bs)} needs at least {needed} bytes, and dpas never extends a file to "
            "read it"
        )
    holes = find_holes(target.path, usable)
    if holes:
        named = ", ".join(f"{start}-{end}" for start, end in holes[:HOLES_NAMED])
        more = f" and {len(holes) - HOLES_NAMED} more" if len(holes) > HOLES_NAMED else ""
        raise TargetError(
            f"--device {target.path} has holes in the range read (bytes {named}{more}): reads "
            "of a hole never reach the device; fill the file (or let dpas create one)"
        )
    return usable


def find_holes(path: Path, length: int) -> list[tuple[int, int]]:
    """The unallocated ranges in [0, length), by SEEK_DATA/SEEK_HOLE; where the filesystem
    does not report holes, fewer allocated blocks than bytes means the whole range is suspect."""
    holes: list[tuple[int, int]] = []
    fd = os.open(path, os.O_RDONLY)
    try:
        offset = 0
        while offset < length:
            try:
                hole = os.lseek(fd, offset, os.SEEK_HOLE)
            except OSError:
                break
            if hole >= length:
                break
            try:
                data = os.lseek(fd, hole, os.SEEK_DATA)
            except OSError:  # ENXIO: no data after the hole
                data = length
            holes.append((hole, min(data, length)))
            offset = data
        blocks = os.fstat(fd).st_blocks * 512
    finally:
        os.close(fd)
    if not holes and blocks < length:
        holes.append((0, length))
    return holes


def create_filled(path: Path, size: int, seed: int = 0) -> None:
    """A new file of ``size`` bytes of seeded random data (as fio fills a file it creates),
    so that reads reach the device. O_EXCL: a file that appeared meanwhile is never touched."""
    rng = np.random.default_rng(seed)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except OSError as err:
        raise TargetError(f"--device {path}: cannot create it: {err.strerror or err}") from None
    try:
        left = size
        while left > 0:
            chunk = rng.bytes(min(left, 4 * MIB))
            os.write(fd, chunk)
            left -= len(chunk)
        os.fsync(fd)
    except BaseException as err:  # half a file would pass for a user's file next time
        os.close(fd)
        path.unlink(missing_ok=True)
        if isinstance(err, OSError):
            raise TargetError(f"--device {path}: cannot fill it: {err.strerror or err}") from None
        raise
    os.close(fd)


# -- writes -----------------------------------------------------------------------------------
def write_refusal(target: Target, executor: Executor) -> str:
    """Why a write needs --destroy-data here: what the target holds, as far as dpas can tell."""
    held, unknown = holdings(target, executor)
    what = "a block device" if target.kind == "block" else "an existing file"
    says = (
        f"it holds {', '.join(held)}"
        if held
        else "dpas found nothing on it it recognises, but writes destroy whatever is there"
    )
    cannot = f" (dpas cannot tell {'; '.join(unknown)})" if unknown else ""
    return (
        f"--device {target.path} is {what}: {says}{cannot}; random writes would destroy it: "
        "add --destroy-data to write anyway"
    )


def holdings(target: Target, executor: Executor) -> tuple[list[str], list[str]]:
    """(what the target holds, what could not be checked): signatures, a partition table,
    partitions, mounts, holders, loop devices backed by it, and non-zero data up front."""
    held: list[str] = []
    names = _names(target, executor)
    if len(names) > 1:
        held.append(f"partitions {', '.join(sorted(names - {target.path.name}))}")
    held += _mounts(names, executor)
    held += _holders(target, names, executor)
    held += _loops(target, executor)
    signatures, no_blkid = _signatures(target, executor)
    held += signatures
    first, unreadable = _first_mib(target.path)
    # without blkid, look for a partition table ourselves (a FAT boot sector has the same
    # signature, so blkid's word is preferred when there is one)
    if no_blkid and _partition_table(first):
        held.append("a partition table (MBR boot signature or GPT header)")
    if any(first):
        held.append("non-zero data in its first MiB")
    return held, [why for why in (no_blkid, unreadable) if why]


def _names(target: Target, executor: Executor) -> set[str]:
    """The device's name and its partitions' (from sysfs)."""
    names = {target.path.name}
    if target.kind == "block" and target.disk is not None:
        disk_dir = executor.sysfs_root / "block" / target.disk
        names.update(p.name for p in disk_dir.glob(f"{target.disk}*") if (p / "partition").exists())
    return names


def _mounts(names: set[str], executor: Executor) -> list[str]:
    try:
        lines = executor.read(Path("/proc/self/mounts")).splitlines()
    except OSError:
        return []
    found = []
    for line in lines:
        fields = line.split()
        if len(fields) > 1 and fields[0].startswith("/dev/") and Path(fields[0]).name in names:
            found.append(f"a filesystem mounted on {fields[1]}")
    return found


def _holders(target: Target, names: set[str], executor: Executor) -> list[str]:
    """Device-mapper, MD RAID and the like built on the device or its partitions."""
    if target.kind != "block" or target.disk is None:
        return []
    found = []
    base = executor.sysfs_root / "block" / target.disk
    for name in sorted(names):
        folder = base / "holders" if name == target.disk else base / name / "holders"
        found += [f"holder {h.name} (on {name})" for h in sorted(folder.glob("*"))]
    return found


def _loops(target: Target, executor: Executor) -> list[str]:
    """Loop devices whose backing file is this file (an attached disk image)."""
    if target.kind != "file":
        return []
    mine = str(target.path.resolve())
    found = []
    for backing in sorted(executor.sysfs_root.glob("block/loop*/loop/backing_file")):
        try:
            if executor.read(backing).strip() == mine:
                found.append(f"loop device /dev/{backing.parent.parent.name} attached to it")
        except OSError:
            continue
    return found


def _signatures(target: Target, executor: Executor) -> tuple[list[str], str]:
    """blkid's low-level probe: filesystem, RAID, LVM, crypto and partition-table signatures."""
    argv = ["blkid", "-p", "-o", "export", str(target.path)]
    try:
        probe = executor.run(argv, 30)
    except FileNotFoundError:
        return [], "filesystem, RAID or LVM signatures: blkid is not installed (util-linux)"
    if probe.returncode == 2:  # blkid: nothing found
        return [], ""
    if probe.returncode != 0:
        first = (probe.stderr.strip().splitlines() or [f"exit {probe.returncode}"])[0]
        return [], f"filesystem, RAID or LVM signatures: blkid failed ({first})"
    tags = dict(line.split("=", 1) for line in probe.stdout.splitlines() if "=" in line)
    found = []
    if "TYPE" in tags:
        usage = tags.get("USAGE", "filesystem")
        kind = {"filesystem": "filesystem", "raid": "RAID/LVM signature"}.get(
            usage, f"{usage} signature"
        )
        found.append(f"a {tags['TYPE']} {kind}")
    if "PTTYPE" in tags:
        found.append(f"a {tags['PTTYPE']} partition table")
    return found, ""


def _first_mib(path: Path) -> tuple[bytes, str]:
    try:
        with path.open("rb") as f:
            return f.read(MIB), ""
    except OSError as err:
        return b"", f"what its first MiB holds: {err.strerror or err}"


def _partition_table(first: bytes) -> bool:
    mbr = len(first) >= 512 and first[510:512] == b"\x55\xaa"
    gpt = first[512:520] == b"EFI PART" or first[4096:4104] == b"EFI PART"
    return mbr or gpt
