"""The guest kernel: Debian's stock package (fetched once and cached) or an image given."""

from __future__ import annotations

import functools
import gzip
import lzma
import re
import shutil
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

from dpas.errors import DpasError

#: the NVMe driver, after the crypto providers 6.1's CRC modules ask for at load time (soft
#: dependencies that depends= does not list; 7.x builds its CRCs in and has no such modules);
#: the rest comes from the depends= strings
NVME_MODULES = ("crct10dif_generic", "crc64_rocksoft_generic", "nvme")


class VmError(DpasError, RuntimeError):
    """A guest could not be prepared or run; one line, naming the step."""


def run_tool(argv: list[str], cwd: Path, what: str) -> subprocess.CompletedProcess[str]:
    """apt, dpkg-deb and the like: their output, or a VmError with their own E: line."""
    try:
        done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=1800)
    except FileNotFoundError:
        raise VmError(
            f"{what}: {argv[0]} not found (a Debian-based machine with apt is needed)"
        ) from None
    except subprocess.TimeoutExpired:
        raise VmError(f"{what}: no answer in 30 minutes") from None
    if done.returncode != 0:
        lines = (done.stderr.strip() or done.stdout.strip()).splitlines()
        errors = [line for line in lines if line.startswith("E:")] or lines[-1:]
        raise VmError(f"{what} failed: {errors[0] if errors else f'exit {done.returncode}'}")
    return done


@dataclass(frozen=True, slots=True)
class GuestKernel:
    image: Path
    modules: Path | None  # lib/modules/<release> with kernel/..., None if everything is built in
    release: str
    #: the kernel's symbols (a build's System.map), to name a faulting address it printed bare
    system_map: Path | None = None


def image_release(image: Path) -> str:
    """The release string a bzImage carries in its header."""
    data = image.read_bytes()[:0x10000]
    if data[0x202:0x206] != b"HdrS":
        raise VmError(f"--kernel {image}: not a bzImage (no HdrS header)")
    offset = struct.unpack_from("<H", data, 0x20E)[0] + 0x200
    return data[offset : offset + 128].split(b"\0")[0].split(b" ")[0].decode(errors="replace")


def given_kernel(image: Path, modules: Path | None) -> GuestKernel:
    if not image.is_file():
        raise VmError(f"--kernel {image}: no such file")
    if modules is not None and not modules.is_dir():
        raise VmError(f"--modules {modules}: not a directory")
    return GuestKernel(image, modules, image_release(image))


#: how a module file may end: plain, or compressed as the kernel's MODULE_COMPRESS_* left it
MODULE_SUFFIXES = (".ko", ".ko.xz", ".ko.gz", ".ko.zst")


def module_name(path: Path) -> str:
    """A module's name as depends= and modules.builtin spell it (with _ for -)."""
    name = path.name
    for suffix in MODULE_SUFFIXES:
        if name.endswith(suffix):
            name = name.removesuffix(suffix)
            break
    return name.replace("-", "_")


def module_file_name(path: Path) -> str:
    """The file name the module gets in the initramfs: decompressed, so always .ko."""
    for suffix in MODULE_SUFFIXES:
        if path.name.endswith(suffix):
            return path.name.removesuffix(suffix) + ".ko"
    return path.name


@functools.lru_cache(maxsize=64)
def module_bytes(path: Path) -> bytes:
    """The module's ELF content, decompressed (busybox insmod reads plain .ko only)."""
    data = path.read_bytes()
    try:
        if path.name.endswith(".ko.xz"):
            return lzma.decompress(data)
        if path.name.endswith(".ko.gz"):
            return gzip.decompress(data)
    except (lzma.LZMAError, OSError, EOFError) as err:
        raise VmError(f"module {path}: cannot decompress ({err})") from None
    if path.name.endswith(".ko.zst"):
        return _unzstd(path, data)
    return data


def _unzstd(path: Path, data: bytes) -> bytes:
    try:  # Python 3.14 has zstd in its stdlib; 3.11 to 3.13 do not
        from compression import zstd  # type: ignore[import-not-found]

        return bytes(zstd.decompress(data))
    except ImportError:
        pass
    tool = shutil.which("zstd")
    if tool is None:
        raise VmError(
            f"module {path} is zstd-compressed (.ko.zst) and neither Python nor a zstd "
            "command can read it here: apt-get install zstd"
        )
    done = subprocess.run([tool, "-dc"], input=data, capture_output=True, timeout=120)
    if done.returncode != 0:
        why = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["?"]
        raise VmError(f"module {path}: zstd -d failed: {why[0]}")
    return done.stdout


def _module_index(modules: Path) -> dict[str, Path]:
    """Module name (with _ for -) -> module file; a plain .ko wins over a compressed one."""
    index: dict[str, Path] = {}
    for path in sorted(modules.rglob("*.ko*")):
        if path.is_file() and path.name.endswith(MODULE_SUFFIXES):
            name = module_name(path)
            if name not in index or path.name.endswith(".ko"):
                index[name] = path
    return index


def _depends(ko: Path) -> list[str]:
    m = re.search(rb"depends=([^\0]*)\0", module_bytes(ko))
    return [d.replace("-", "_") for d in m[1].decode().split(",") if d] if m else []


def builtin_modules(modules: Path) -> set[str] | None:
    """Names of the modules built into the kernel (modules.builtin beside kernel/), or None
    when the folder does not say."""
    listing = modules / "modules.builtin"
    if not listing.is_file():
        return None
    return {module_name(Path(line.strip())) for line in listing.read_text().splitlines() if line}


def check_nvme(kernel: GuestKernel) -> None:
    """Refuse, before booting, a kernel known to have no NVMe driver: no nvme module in its
    modules folder and nothing saying the driver is built in (modules.builtin, config).
    Without a modules folder nothing is known: the guest reports it (@@NO_NVME)."""
    if kernel.modules is None:
        return
    if "nvme" in _module_index(kernel.modules):
        return
    if "nvme" in (builtin_modules(kernel.modules) or set()):
        return
    configs = [kernel.modules / "config"]
    if len(kernel.modules.parents) > 2:
        configs.append(kernel.modules.parents[2] / "boot" / f"config-{kernel.release}")
    for config in configs:
        if config.is_file() and "\nCONFIG_BLK_DEV_NVME=y" in config.read_text(errors="replace"):
            return
    raise VmError(
        f"the guest kernel {kernel.release} has no NVMe driver (no nvme module under "
        f"{kernel.modules} and nothing says it is built in)"
    )


def module_order(modules: Path, wanted: tuple[str, ...] = NVME_MODULES) -> list[Path]:
    """The module files to insmod, dependencies first, read from each module's depends=
    string (the packages ship no modules.dep). A wanted module that is not there is taken as
    built in (or, for the CRC crypto providers 6.1 needs, as not needed: 7.x has none)."""
    index = _module_index(modules)
    order: list[Path] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen:
            return
        seen.add(name)
        if name not in index:
            return  # built into the kernel, or not part of it
        for dep in _depends(index[name]):
            visit(dep)
        order.append(index[name])

    for name in wanted:
        visit(name)
    return order
