"""The guest kernel: Debian's stock package (fetched once and cached) or an image given."""

from __future__ import annotations

import re
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

from dpas.errors import DpasError

#: the NVMe driver, after the crypto providers its CRC modules ask for at load time (soft
#: dependencies that depends= does not list); the rest comes from the depends= strings
NVME_MODULES = ("crct10dif_generic", "crc64_rocksoft_generic", "nvme")


class VmError(DpasError, RuntimeError):
    """A guest could not be prepared or run; one line, naming the step."""


@dataclass(frozen=True, slots=True)
class GuestKernel:
    image: Path
    modules: Path | None  # lib/modules/<release> with kernel/..., None if everything is built in
    release: str


def image_release(image: Path) -> str:
    """The release string a bzImage carries in its header."""
    data = image.read_bytes()[:0x10000]
    if data[0x202:0x206] != b"HdrS":
        raise VmError(f"--kernel {image}: not a bzImage (no HdrS header)")
    offset = struct.unpack_from("<H", data, 0x20E)[0] + 0x200
    return data[offset : offset + 128].split(b"\0")[0].split(b" ")[0].decode(errors="replace")


def _run(argv: list[str], cwd: Path, what: str) -> str:
    try:
        done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=600)
    except FileNotFoundError:
        raise VmError(
            f"{what}: {argv[0]} not found (a Debian-based machine with apt is needed)"
        ) from None
    if done.returncode != 0:
        last = (done.stderr.strip() or done.stdout.strip()).splitlines()[-1:]
        raise VmError(f"{what} failed: {' '.join(last) or f'exit {done.returncode}'}")
    return done.stdout


def debian_kernel(cache: Path) -> GuestKernel:
    """linux-image-<version>-amd64 as linux-image-amd64 names it, downloaded and unpacked once."""
    cache.mkdir(parents=True, exist_ok=True)
    depends = _run(["apt-cache", "depends", "linux-image-amd64"], cache, "apt-cache depends")
    m = re.search(r"Depends: (linux-image-[\w.+-]+)", depends)
    if m is None:
        raise VmError(
            "apt-cache depends linux-image-amd64 names no kernel package (run apt-get update)"
        )
    package = m[1]
    root = cache / package
    release = package.removeprefix("linux-image-")
    image = root / "boot" / f"vmlinuz-{release}"
    if not image.exists():
        cache.mkdir(parents=True, exist_ok=True)
        for old in cache.glob(f"{package}_*.deb"):
            old.unlink()
        _run(["apt-get", "download", package], cache, f"apt-get download {package}")
        debs = sorted(cache.glob(f"{package}_*.deb"))
        if not debs:
            raise VmError(f"apt-get download {package} left no .deb in {cache}")
        _run(["dpkg-deb", "-x", str(debs[-1]), str(root)], cache, "dpkg-deb -x")
        debs[-1].unlink()
    return GuestKernel(image, root / "lib" / "modules" / release, release)


def given_kernel(image: Path, modules: Path | None) -> GuestKernel:
    if not image.is_file():
        raise VmError(f"--kernel {image}: no such file")
    if modules is not None and not modules.is_dir():
        raise VmError(f"--modules {modules}: not a directory")
    return GuestKernel(image, modules, image_release(image))


def _module_index(modules: Path) -> dict[str, Path]:
    """Module name (with _ for -) -> .ko file."""
    return {p.name.removesuffix(".ko").replace("-", "_"): p for p in modules.rglob("*.ko")}


def _depends(ko: Path) -> list[str]:
    m = re.search(rb"depends=([^\0]*)\0", ko.read_bytes())
    return [d.replace("-", "_") for d in m[1].decode().split(",") if d] if m else []


def module_order(modules: Path, wanted: tuple[str, ...] = NVME_MODULES) -> list[Path]:
    """The .ko files to insmod, dependencies first, read from each module's depends= string
    (the package ships no modules.dep)."""
    index = _module_index(modules)
    order: list[Path] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen:
            return
        seen.add(name)
        if name not in index:
            return  # built into the kernel
        for dep in _depends(index[name]):
            visit(dep)
        order.append(index[name])

    for name in wanted:
        visit(name)
    return order
