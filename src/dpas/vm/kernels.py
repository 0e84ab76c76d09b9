"""``--kernel SPEC``: which guest kernel to boot, fetched or built once and cached.

The forms (``parse_kernel`` checks them before anything is fetched or booted):

- ``debian``: the newest kernel of the host's own suite, through the host's apt (read only).
- ``debian:SUITE`` and ``debian:SUITE:VERSION``: any Debian suite through dpas's own apt
  configuration (``dpas.vm.apt.PrivateApt``), its newest kernel or the one VERSION names.
- ``PATH.deb``: a kernel image package (the lab's ``linux-image-5.18.0-dpas_*.deb``).
- ``build:VERSION`` with ``--patch FILE``...: a minimal kernel built from Debian's source.
- ``dpas:VERSION``: ``build:VERSION`` with the DPAS patch series of this repository
  (``kernel/``, dpas.vm.series) and the options it needs; ``--patch`` FILEs go on top.
- ``build:DIR``, likewise: any kernel source tree on disk (a path: it holds a ``/`` or is a
  folder), built from a copy in the cache the same way.
- any other PATH: a bzImage, with ``--modules DIR`` for its modules.

Debian's packages come in two layouts: the old one (6.1, the lab's 5.18: one package with
``/boot/vmlinuz-<rel>`` and ``/lib/modules/<rel>/`` of plain ``.ko``) and sid's split one
(``linux-image-<rel>`` only depends on ``linux-binary-<rel>``, with
``/usr/lib/modules/<rel>/vmlinuz``, ``linux-modules-<rel>`` with ``*.ko.xz``, and
``linux-base-<rel>`` with modules.builtin). Both are unpacked into one folder per package
under ``<cache>/kernels/debian-<suite>/`` (a .deb given: ``<cache>/kernels/deb-<sha256>/``),
moved into place only when complete, and never fetched again.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from dpas.vm.apt import PrivateApt
from dpas.vm.build import build_dir, build_kernel
from dpas.vm.kernel import (
    GuestKernel,
    VmError,
    check_nvme,
    given_kernel,
    image_release,
    run_tool,
)
from dpas.vm.series import read_series

Progress = Callable[[str], None] | None

FORMS = (
    "debian, debian:SUITE, debian:SUITE:VERSION, build:VERSION, build:DIR, dpas:VERSION, "
    "PATH.deb or PATH (a bzImage)"
)
_VERSION = re.compile(r"[0-9][0-9A-Za-z.+~-]{0,60}")
_BUILD_VERSION = re.compile(r"[0-9]+\.[0-9]+")  # linux-source-MAJOR.MINOR
#: a versioned kernel image package of any flavour (not the meta packages, -dbg, -unsigned)
_IMAGE = re.compile(r"linux-image-([0-9][0-9A-Za-z.+~-]*-amd64)")
#: other flavours than the default one (which is what linux-image-amd64 depends on)
_FLAVOURS = ("-cloud-amd64", "-rt-amd64")


@dataclass(frozen=True, slots=True)
class KernelSpec:
    """``--kernel`` parsed: kind is debian, deb, build, dpas or image."""

    kind: str
    suite: str | None = None  # debian: None for the host's own suite
    version: str | None = None  # debian: a kernel version; build: the version to build
    path: Path | None = None  # deb and image
    modules: Path | None = None
    patches: tuple[Path, ...] = ()
    fixes: tuple[str, ...] = ()  # build:DIR: dpas.vm.fixes names


def parse_kernel(
    spec: str,
    modules: Path | None = None,
    patches: tuple[Path, ...] = (),
    fixes: tuple[str, ...] = (),
) -> KernelSpec:
    """``--kernel``, ``--modules``, ``--patch`` and ``--fix`` checked together, one-line
    errors."""
    spec = spec.strip()
    if not spec:
        raise VmError(f"--kernel: empty (expected {FORMS})")
    kind, _, rest = spec.partition(":")
    # the words win over a file of that name (a source tree's debian/ folder): ./debian for it
    if kind == "debian":
        parts = rest.split(":") if rest else []
        if ":" in spec and (not parts or len(parts) > 2 or not all(parts)):
            raise VmError(f"--kernel {spec}: expected debian, debian:SUITE or debian:SUITE:VERSION")
        suite = parts[0] if parts else None
        version = parts[1] if len(parts) > 1 else None
        if suite is not None and not re.fullmatch(r"[a-z][a-z0-9.-]{1,40}", suite):
            raise VmError(f"--kernel {spec}: {suite!r} is not a suite name (sid, trixie-backports)")
        if version is not None and not _VERSION.fullmatch(version):
            raise VmError(f"--kernel {spec}: {version!r} is not a kernel version (7.2.13)")
        out = KernelSpec("debian", suite, version)
    elif kind == "build":
        if _BUILD_VERSION.fullmatch(rest):
            out = KernelSpec("build", version=rest, patches=patches)
        elif rest and ("/" in rest or _is(Path(rest).expanduser(), Path.is_dir)):
            tree = Path(rest).expanduser()
            if not _is(tree, Path.is_dir):
                raise VmError(f"--kernel {spec}: {rest} is not a folder (build:DIR: a kernel tree)")
            out = KernelSpec("build", path=tree, patches=patches, fixes=fixes)
        else:
            raise VmError(
                f"--kernel {spec}: expected build:MAJOR.MINOR (build:7.2) or build:DIR (a "
                "kernel source tree: ./linux, /src/linux)"
            )
    elif kind == "dpas":
        if not _BUILD_VERSION.fullmatch(rest):
            raise VmError(
                f"--kernel {spec}: expected dpas:MAJOR.MINOR (dpas:7.2: Debian's linux-source "
                "with the DPAS patch series)"
            )
        out = KernelSpec("dpas", version=rest, patches=patches)
    else:
        path = Path(spec)
        if not _is(path, Path.exists):
            raise VmError(f"--kernel {spec}: no such file (expected {FORMS})")
        if not _is(path, Path.is_file):
            raise VmError(f"--kernel {spec}: not a file (expected {FORMS})")
        out = KernelSpec("deb" if path.suffix == ".deb" else "image", path=path)
    if modules is not None and out.kind != "image":
        raise VmError(f"--modules is for a bzImage given as --kernel PATH, not --kernel {spec}")
    if patches and out.kind not in ("build", "dpas"):
        raise VmError(
            f"--patch is for --kernel build:VERSION, build:DIR or dpas:VERSION, not --kernel {spec}"
        )
    if fixes and not (out.kind == "build" and out.path is not None):
        raise VmError(
            f"--fix is for --kernel build:DIR (the artifact's DPAS tree), not --kernel {spec}"
        )
    for patch in patches:
        if not _is(patch, Path.is_file):
            raise VmError(f"--patch {patch}: no such file")
    if modules is not None:
        if not _is(modules, Path.is_dir):
            raise VmError(f"--modules {modules}: not a directory")
        out = KernelSpec("image", path=out.path, modules=modules)
    return out


def _is(path: Path, test: Callable[[Path], bool]) -> bool:
    """A file test that says False where the path cannot even be looked at (too long)."""
    try:
        return test(path)
    except (OSError, ValueError):
        return False


def resolve_kernel(
    spec: str,
    modules: Path | None,
    patches: tuple[Path, ...],
    cache: Path,
    progress: Progress = None,
    fixes: tuple[str, ...] = (),
) -> GuestKernel:
    """The guest kernel ``--kernel spec`` names, fetched, unpacked or built into ``cache``
    (the kernels folder) if not there yet, and checked for an NVMe driver before booting."""
    parsed = parse_kernel(spec, modules, patches, fixes)
    say = progress or (lambda line: None)
    if parsed.kind == "debian" and parsed.suite is None:
        kernel = host_debian_kernel(cache, say)
    elif parsed.kind == "debian":
        assert parsed.suite is not None
        kernel = suite_kernel(parsed.suite, parsed.version, cache, say)
    elif parsed.kind == "deb":
        assert parsed.path is not None
        kernel = deb_kernel(parsed.path, cache, say)
    elif parsed.kind == "build" and parsed.path is not None:
        kernel = build_dir(parsed.path, parsed.patches, cache / "build", say, parsed.fixes)
    elif parsed.kind == "build":
        assert parsed.version is not None
        kernel = built_kernel(parsed.version, parsed.patches, cache, say)
    elif parsed.kind == "dpas":
        assert parsed.version is not None
        kernel = dpas_kernel(parsed.version, parsed.patches, cache, say)
    else:
        assert parsed.path is not None
        kernel = given_kernel(parsed.path, parsed.modules)
    check_nvme(kernel)
    return kernel


# --- Debian's packages ----------------------------------------------------------------------


class Apt(Protocol):
    def depends(self, package: str) -> list[str]: ...
    def download(self, package: str, into: Path) -> Path: ...


class HostApt:
    """The host's apt, read only: its lists say what exists, ``apt-get download`` writes the
    .deb into a folder of dpas's (nothing under /etc/apt or /var is written)."""

    def depends(self, package: str) -> list[str]:
        out = _run(["apt-cache", "depends", package], Path.cwd(), "apt-cache depends")
        return re.findall(r"^\s*\|?Depends: (\S+)", out, re.M)

    def download(self, package: str, into: Path) -> Path:
        into.mkdir(parents=True, exist_ok=True)
        for old in into.glob(f"{package}_*.deb"):
            old.unlink()
        _run(["apt-get", "download", package], into, f"apt-get download {package}")
        debs = sorted(into.glob(f"{package}_*.deb"))
        if not debs:
            raise VmError(f"apt-get download {package} left no .deb in {into}")
        return debs[-1]


def host_suite(os_release: Path = Path("/etc/os-release")) -> str:
    """The host's Debian codename (bookworm), naming its cache folder; 'host' if unknown."""
    try:
        m = re.search(r"^VERSION_CODENAME=\"?([a-z0-9.-]+)", os_release.read_text(), re.M)
    except OSError:
        m = None
    return m[1] if m else "host"


def host_debian_kernel(cache: Path, say: Callable[[str], None] = lambda line: None) -> GuestKernel:
    """``--kernel debian``: the package the host's ``linux-image-amd64`` depends on."""
    apt = HostApt()
    try:
        depends = apt.depends("linux-image-amd64")
    except VmError as err:
        raise VmError(f"--kernel debian: {err} (run apt-get update)") from None
    package = _newest_image(depends)
    if package is None:
        raise VmError(
            "--kernel debian: apt-cache depends linux-image-amd64 names no kernel package "
            "(run apt-get update)"
        )
    return _debian_package(apt, package, cache / f"debian-{host_suite()}", say)


def suite_kernel(
    suite: str, version: str | None, cache: Path, say: Callable[[str], None] = lambda line: None
) -> GuestKernel:
    """``--kernel debian:SUITE[:VERSION]``, through dpas's own apt configuration."""
    folder = cache / f"debian-{suite}"
    apt = PrivateApt(folder / "apt", suite)
    say(f"apt-get update of {suite} ({apt.mirror}), in {folder / 'apt'}")
    try:
        apt.update()
    except VmError as err:
        text = str(err)
        if "Release file" in text or "404" in text:
            raise VmError(
                f"--kernel debian:{suite}: no suite {suite!r} at {apt.mirror} ({text})"
            ) from None
        raise VmError(
            f"--kernel debian:{suite}: {text.removeprefix(f'debian:{suite}: ')}"
        ) from None
    spec = f"debian:{suite}" + (f":{version}" if version else "")
    images = [n for n in apt.names("linux-image-") if _IMAGE.fullmatch(n)]
    if not images:
        raise VmError(f"--kernel {spec}: no kernel package (linux-image-*-amd64) in {suite}")
    if version is None:
        try:
            package = _newest_image(apt.depends("linux-image-amd64"))
        except VmError:
            package = None
        if package is None:
            raise VmError(
                f"--kernel {spec}: linux-image-amd64 of {suite} names no kernel package "
                f"(there: {_listing(images)})"
            )
    else:
        package = pick_version(version, images, spec)
    return _debian_package(apt, package, folder, say)


def pick_version(version: str, images: list[str], spec: str) -> str:
    """The image package VERSION names: exactly (linux-image-VERSION[-amd64]), or as the
    start of one release of the default flavour (7.2.13 -> linux-image-7.2.13+deb14-amd64)."""
    for exact in (f"linux-image-{version}", f"linux-image-{version}-amd64"):
        if exact in images:
            return exact
    plain = [n for n in images if not n.endswith(_FLAVOURS)]
    found = [
        n
        for n in plain
        if n.removeprefix("linux-image-").startswith(version)
        and n.removeprefix("linux-image-")[len(version) : len(version) + 1] in ("+", "-", "~", ".")
    ]
    if len(found) == 1:
        return found[0]
    releases = sorted({n.removeprefix("linux-image-") for n in found or plain}, key=_version_key)
    if found:
        raise VmError(f"--kernel {spec}: ambiguous, it names {', '.join(releases)}")
    raise VmError(f"--kernel {spec}: no such kernel; there: {_listing(releases)}")


def _listing(names: list[str], most: int = 12) -> str:
    names = sorted((n.removeprefix("linux-image-") for n in names), key=_version_key)
    shown = names[-most:]
    return ("..., " if len(names) > most else "") + ", ".join(shown)


def _version_key(name: str) -> list[tuple[int, int | str]]:
    return [(0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"[.+~-]", name)]


def _newest_image(depends: list[str]) -> str | None:
    images = [d for d in depends if _IMAGE.fullmatch(d) and not d.endswith(_FLAVOURS)]
    return max(images, key=_version_key) if images else None


def _debian_package(
    apt: Apt, package: str, folder: Path, say: Callable[[str], None]
) -> GuestKernel:
    """The image package and, in the split layout, the packages of the same release it
    depends on (linux-binary-, linux-modules-, linux-base-), unpacked into one folder."""
    release = package.removeprefix("linux-image-")
    root = folder / package
    if not root.is_dir():
        say(f"fetching {package} (once; cached in {root})")
        with _filling(root) as tmp:
            debs = tmp.with_name(tmp.name + ".debs")
            try:
                todo, done = [package], set()
                while todo:
                    name = todo.pop(0)
                    if name in done:
                        continue
                    done.add(name)
                    deb = apt.download(name, debs)
                    say(f"unpacking {deb.name} ({deb.stat().st_size / 1e6:.1f} MB)")
                    _run(["dpkg-deb", "-x", str(deb), str(tmp)], tmp, "dpkg-deb -x")
                    deb.unlink()
                    todo += [d for d in apt.depends(name) if d.endswith(f"-{release}")]
            finally:
                shutil.rmtree(debs, ignore_errors=True)
            if _find_image(tmp) is None:
                raise VmError(f"{package}: no kernel image in it or in what it depends on")
    return _unpacked_kernel(root, package)


# --- a .deb given ---------------------------------------------------------------------------


def deb_kernel(
    deb: Path, cache: Path, say: Callable[[str], None] = lambda line: None
) -> GuestKernel:
    """``--kernel PATH.deb``: unpacked once into ``cache/deb-<sha256>``."""
    listing = _run(["dpkg-deb", "-c", str(deb)], Path.cwd(), f"dpkg-deb -c {deb}")
    # "mode owner size date time ./path[ -> target]"
    fields = [line.split(None, 5) for line in listing.splitlines()]
    paths = [f[5].split(" -> ")[0].removeprefix(".") for f in fields if len(f) == 6]
    if not any(
        re.fullmatch(r"/boot/vmlinuz-.+|(/usr)?/lib/modules/[^/]+/vmlinuz", p) for p in paths
    ):
        raise VmError(
            f"{deb} holds no kernel image (no boot/vmlinuz-* or usr/lib/modules/*/vmlinuz)"
        )
    digest = hashlib.sha256()
    with deb.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    root = cache / f"deb-{digest.hexdigest()[:16]}"
    if not root.is_dir():
        say(f"unpacking {deb} into {root}")
        with _filling(root) as tmp:
            _run(["dpkg-deb", "-x", str(deb.resolve()), str(tmp)], tmp, f"dpkg-deb -x {deb}")
    return _unpacked_kernel(root, str(deb))


# --- unpacked trees -------------------------------------------------------------------------


def _find_image(root: Path) -> tuple[Path, str] | None:
    """(kernel image, release) in an unpacked package, either layout."""
    found = [(p, p.name.removeprefix("vmlinuz-")) for p in sorted(root.glob("boot/vmlinuz-*"))]
    for lib in ("usr/lib/modules", "lib/modules"):
        found += [(p, p.parent.name) for p in sorted(root.glob(f"{lib}/*/vmlinuz"))]
    found = [(p, r) for p, r in found if p.is_file()]
    return found[0] if found else None


def _unpacked_kernel(root: Path, what: str) -> GuestKernel:
    image = _find_image(root)
    if image is None:
        raise VmError(
            f"{what} holds no kernel image (no boot/vmlinuz-* or usr/lib/modules/*/vmlinuz)"
        )
    path, release = image
    image_release(path)  # a bzImage, or a one-line refusal
    modules = None
    for lib in ("usr/lib/modules", "lib/modules"):
        folder = root / lib / release
        if folder.is_dir() and any(
            (folder / name).exists() for name in ("kernel", "modules.builtin", "modules.order")
        ):
            modules = folder
            break
    return GuestKernel(path, modules, release)


@contextmanager
def _filling(root: Path) -> Iterator[Path]:
    """A fresh folder beside ``root``, renamed to it when the block succeeds (so a folder
    under that name is always complete, even if dpas is stopped while fetching)."""
    root.parent.mkdir(parents=True, exist_ok=True)
    for stale in root.parent.glob(f".{root.name}.*"):  # left by a dpas killed while fetching
        with contextlib.suppress(OSError):
            if time.time() - stale.stat().st_mtime > 6 * 3600:
                shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=root.parent))
    try:
        yield tmp
        try:
            os.rename(tmp, root)
        except OSError:
            if not root.is_dir():  # another dpas filled it meanwhile: keep theirs
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _run(argv: list[str], cwd: Path, what: str) -> str:
    return run_tool(argv, cwd, what).stdout


# --- built from source ----------------------------------------------------------------------


def built_kernel(
    version: str,
    patches: tuple[Path, ...],
    cache: Path,
    say: Callable[[str], None] = lambda line: None,
) -> GuestKernel:
    """``--kernel build:VERSION``: dpas.vm.build makes it (NVMe built in, no modules)."""
    return build_kernel(version, patches, cache / "build", say)


def dpas_kernel(
    version: str,
    patches: tuple[Path, ...],
    cache: Path,
    say: Callable[[str], None] = lambda line: None,
) -> GuestKernel:
    """``--kernel dpas:VERSION``: build:VERSION with the DPAS series first, then ``patches``.
    A version the series does not apply to is refused when its patch fails (in one line)."""
    series = read_series()
    return build_kernel(
        version, (*series.patches, *patches), cache / "build", say, series.options, "dpas"
    )
