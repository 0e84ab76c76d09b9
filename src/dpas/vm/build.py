"""A minimal guest kernel built from Debian's ``linux-source-VERSION``: ``--kernel build:7.2``.

``make tinyconfig`` plus what the dpas guest uses (``OPTIONS``), the NVMe driver built in, the
caller's patches applied first. Poll queues then come from the kernel command line
(``nvme.poll_queues=2``), not from a module parameter.

Everything lives under ``cache`` (for dpas vm: ``~/.cache/dpas/vm/kernels/build``)::

    apt/SUITE/                      PrivateApt's own lists (sid, trixie-backports)
    sources/linux-source-V.tar.xz   the source tarball, kept: a rebuild downloads nothing
    trees/V/linux-source-V/         the pristine source, with build/ (O=build) inside it: the
                                    objects of the unpatched build, kept for incremental builds
    builds/KEY/                     bzImage, config and build.log of one build; KEY hashes the
                                    version, the config fragment and the patches' contents
    work/KEY/                       a patched build while it runs (removed after): the source
                                    hard-linked from trees/V, build/ copied, then patched

At most one tree per version is kept (2.0 GB for 7.2: 1.85 GB of source, 140 MB of objects;
see ``tree_size``), with its tarball (157 MB); the bzImages are about 1.7 MB each. A patched
build starts from a copy of the unpatched build's objects, so only what the patches change
compiles again (for an EXTRAVERSION patch: 7 kernel files, and objtool, whose build records
absolute paths).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import select
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from dpas.children import dying_with_me
from dpas.real.stop import check as check_stop
from dpas.real.stop import stopped
from dpas.vm.apt import PrivateApt
from dpas.vm.fixes import FORMAT as FIXES_FORMAT
from dpas.vm.fixes import apply_fixes
from dpas.vm.kernel import GuestKernel, VmError, image_release

#: where linux-source-VERSION is looked for, in this order
SUITES = ("sid", "trixie-backports")

#: each =y in the final .config, or the build is refused naming the ones dropped
OPTIONS = (
    # the machine: QEMU q35, x86-64, several vCPUs, MSI-X for the NVMe queues, ACPI power-off
    "64BIT", "SMP", "PCI", "PCI_MSI", "X86_LOCAL_APIC", "HPET_TIMER", "ACPI",
    "HIGH_RES_TIMERS", "NO_HZ_IDLE",
    # the drive, polled through io_uring (poll queues: nvme.poll_queues=2 on the command line)
    "BLOCK", "BLK_DEV", "BLK_DEV_NVME", "NVME_CORE", "IO_URING",
    # the initramfs (a newc cpio, uncompressed) and /init: busybox's mounts and shell script,
    # the console on ttyS0 and the results on ttyS1, /proc/interrupts, /sys/block/*/queue
    "BLK_DEV_INITRD", "RD_GZIP", "DEVTMPFS", "DEVTMPFS_MOUNT", "PROC_FS", "SYSFS", "TTY",
    "SERIAL_8250", "SERIAL_8250_CONSOLE", "PRINTK", "BINFMT_ELF", "BINFMT_SCRIPT", "MULTIUSER",
    # fio and glibc (strace of fio 3.33, io_uring and pvsync2): threads and futexes, timers,
    # timerfd; its job area is System V shared memory (without SYSVIPC fio stops at once:
    # "shmget: Function not implemented", seen in the guest); fadvise64 and madvise
    "FUTEX", "EPOLL", "TIMERFD", "EVENTFD", "SHMEM", "POSIX_TIMERS", "SYSVIPC",
    "ADVISE_SYSCALLS",
)  # fmt: skip

#: program -> Debian package, needed to fetch, patch and build the kernel
TOOLS = {
    "gcc": "gcc",
    "make": "make",
    "flex": "flex",
    "bison": "bison",
    "bc": "bc",
    "xz": "xz-utils",
    "patch": "patch",
    "dpkg-deb": "dpkg",
}
#: header (under one of INCLUDE_DIRS) -> Debian package
HEADERS = {"gelf.h": "libelf-dev", "openssl/opensslv.h": "libssl-dev"}
INCLUDE_DIRS = (Path("/usr/include"),)

#: a full build's compile steps, for the progress line (tinyconfig + OPTIONS, 7.2.13: 1146)
CC_ESTIMATE = 1150
FULL_BUILD_MINUTES_2_CORES = 4
#: disk a new tree takes once built (7.2: 2.0 GB), and a patched build's copy while it runs
TREE_GB = 2.5
COPY_GB = 0.5
PROGRESS_EVERY_S = 5.0
#: bump when the layout or the build steps change, so that old builds are not returned
FORMAT = 1

Progress = Callable[[str], None]


def fragment_text(options: Sequence[str] = OPTIONS) -> str:
    return "".join(f"CONFIG_{name}=y\n" for name in options)


def cache_key(version: str, fragment: str, patches: Sequence[bytes]) -> str:
    """The build's name: the version, the config fragment and the patches' contents, in order
    (not their file names)."""
    h = hashlib.sha256()
    h.update(json.dumps([FORMAT, version, fragment]).encode())
    for text in patches:
        h.update(hashlib.sha256(text).digest())
    return f"{version}-{'p' if patches else 'u'}-{h.hexdigest()[:16]}"


def check_config(text: str, options: Sequence[str] = OPTIONS) -> None:
    """Every option =y in the .config ``text``, or one error naming those that are not."""
    values = dict(re.findall(r"^CONFIG_(\w+)=(.*)$", text, re.M))
    dropped = [name for name in options if values.get(name) != "y"]
    if dropped:
        raise VmError(
            "the kernel configuration dropped "
            + ", ".join(f"CONFIG_{n}" + (f"={values[n]}" if n in values else "") for n in dropped)
            + " (olddefconfig: a dependency is not met)"
        )


def missing_packages() -> list[str]:
    """The Debian packages a build needs that are not installed, in TOOLS then HEADERS order."""
    missing = [package for tool, package in TOOLS.items() if shutil.which(tool) is None]
    for header, package in HEADERS.items():
        if not any((folder / header).is_file() for folder in INCLUDE_DIRS):
            missing.append(package)
    return list(dict.fromkeys(missing))


def check_tools(what: str) -> None:
    missing = missing_packages()
    if missing:
        raise VmError(
            f"{what} needs {', '.join(missing)} (not installed): "
            f"apt-get install {' '.join(missing)}"
        )


def source_tree(version: str, cache: Path) -> Path | None:
    """The pristine unpacked source of ``version`` if the cache keeps it (to write patches
    against: ``diff -u`` a copy of a file with the original, paths as a/FILE and b/FILE)."""
    tree = cache / "trees" / version / f"linux-source-{version}"
    return tree if (cache / "trees" / version / "unpacked").is_file() and tree.is_dir() else None


def tree_size(version: str, cache: Path) -> int:
    """Bytes the kept tree of ``version`` takes (source and objects), 0 if none is kept."""
    root = cache / "trees" / version
    total = 0
    for folder, _, files in os.walk(root):
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_blocks * 512
            except OSError:
                pass
    return total


def build_kernel(
    version: str,
    patches: tuple[Path, ...],
    cache: Path,
    progress: Callable[[str], None] | None = None,
    options: tuple[str, ...] = (),
    what: str = "build",
) -> GuestKernel:
    """The bzImage of Debian's linux-source-VERSION with ``OPTIONS`` and ``patches`` (applied
    in order with patch -p1), built once: the same inputs again return the cached image.
    ``options`` are more CONFIG_ names set =y in the patched build (dpas:VERSION's series
    needs its own); ``what`` names the spec in messages (build, dpas)."""
    say: Progress = progress or (lambda _: None)
    if not re.fullmatch(r"\d+\.\d+", version):
        raise VmError(f"{what}:{version}: not a kernel version (MAJOR.MINOR, e.g. 7.2)")
    return _build(version, f"{what}:{version}", lambda: _tree(version, cache, say), patches,
                  cache, say, options=options)  # fmt: skip


def build_dir(
    source: Path,
    patches: tuple[Path, ...],
    cache: Path,
    progress: Callable[[str], None] | None = None,
    fixes: tuple[str, ...] = (),
) -> GuestKernel:
    """The bzImage of the kernel source tree ``source`` (a clone of the artifact, the lab's
    tree, a user's own), configured and built as build:VERSION builds Debian's, from a copy in
    the cache: the user's tree is never written. Cached by the tree's content (tree_key).
    ``fixes`` (dpas.vm.fixes) are made in the copy of the built tree, before the patches."""
    say: Progress = progress or (lambda _: None)
    source = source.expanduser().resolve()
    release = kernel_tree_version(source)
    name = f"dir-{tree_key(source)}"
    say(f"build:{source}: a {release} kernel tree ({name} in the cache)")
    return _build(name, f"build:{source}", lambda: _copied_tree(source, name, cache, say),
                  patches, cache, say, fixes)  # fmt: skip


def _build(
    name: str,
    what: str,
    tree: Callable[[], Path],
    patches: tuple[Path, ...],
    cache: Path,
    say: Progress,
    fixes: tuple[str, ...] = (),
    options: tuple[str, ...] = (),
) -> GuestKernel:
    """The cached image of the tree ``tree()`` gives (called only to build), ``fixes``,
    ``patches`` and ``options`` on a copy (the unpatched build keeps the guest's options
    only); ``name`` keys the cache, ``what`` names the build in messages."""
    texts = [f"--fix {name} {FIXES_FORMAT}".encode() for name in fixes]
    for patch in patches:
        try:
            texts.append(Path(patch).read_bytes())
        except OSError as err:
            raise VmError(f"--patch {patch}: cannot be read ({err.strerror})") from None
    fragment = fragment_text((*OPTIONS, *(o for o in options if o not in OPTIONS)))
    key = cache_key(name, fragment, texts)
    image = cache / "builds" / key / "bzImage"
    if image.is_file():
        return _guest_kernel(image)
    check_tools(what)
    cache.mkdir(parents=True, exist_ok=True)
    with _locked(cache / "lock", say):
        if image.is_file():  # another dpas built it while this one waited
            return _guest_kernel(image)
        shutil.rmtree(cache / "work", ignore_errors=True)  # what a killed build left
        source = tree()
        base = _base_build(name, what, source, fragment_text(), cache, say)
        if not patches and not fixes and fragment == fragment_text():
            return _guest_kernel(base)
        return _guest_kernel(
            _patched_build(
                what, source, fragment, tuple(Path(p) for p in patches), key, cache, say, fixes
            )  # fmt: skip
        )


def _guest_kernel(image: Path) -> GuestKernel:
    symbols = image.with_name("System.map")
    return GuestKernel(image, None, image_release(image), symbols if symbols.is_file() else None)


@contextmanager
def _locked(path: Path, say: Progress) -> Iterator[None]:
    """One build at a time per cache (two would share the tree)."""
    with path.open("a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say(f"waiting for another dpas building in {path.parent}")
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


# --- the source ------------------------------------------------------------------------------


def find_suite(version: str, cache: Path) -> PrivateApt:
    """The first of SUITES that has linux-source-VERSION (its lists freshly updated)."""
    package = f"linux-source-{version}"
    seen = []
    for suite in SUITES:
        apt = PrivateApt(cache / "apt" / suite, suite)
        apt.update()
        names = apt.names("linux-source-")
        if package in names:
            return apt
        versions = [n.removeprefix("linux-source-") for n in names]
        seen.append(f"{suite} has {', '.join(versions) or 'none'}")
    raise VmError(f"build:{version}: no {package} in {' or '.join(SUITES)} ({'; '.join(seen)})")


def _source(version: str, cache: Path, say: Progress) -> Path:
    """linux-source-VERSION.tar.xz, downloaded once (the .deb is dropped once it is out)."""
    folder = cache / "sources"
    tarball = folder / f"linux-source-{version}.tar.xz"
    if tarball.is_file():
        return tarball
    package = f"linux-source-{version}"
    say(f"looking for {package} in {', '.join(SUITES)}")
    apt = find_suite(version, cache)
    say(f"fetching {package} from {apt.suite} (about 160 MB)")
    download = folder / ".download"
    shutil.rmtree(download, ignore_errors=True)
    deb = apt.download(package, download)
    say(f"extracting {tarball.name} from {deb.name}")
    unpacked = download / "x"
    _run(["dpkg-deb", "-x", str(deb), str(unpacked)], download, None, f"dpkg-deb -x {deb.name}")
    inside = unpacked / "usr" / "src" / tarball.name
    if not inside.is_file():
        raise VmError(f"{deb.name} holds no /usr/src/{tarball.name}")
    os.replace(inside, tarball)
    (folder / f"{package}.deb-version").write_text(deb.name.split("_")[1] + "\n")
    shutil.rmtree(download, ignore_errors=True)
    return tarball


def _tree(version: str, cache: Path, say: Progress) -> Path:
    """The pristine unpacked source (trees/V/linux-source-V), unpacked once."""
    kept = source_tree(version, cache)
    if kept is not None:
        return kept
    fetched = (cache / "sources" / f"linux-source-{version}.tar.xz").is_file()
    # 0.4: the .deb, the .tar.xz
    _need_space(cache, TREE_GB + (0 if fetched else 0.4), f"build:{version}")
    tarball = _source(version, cache, say)
    root = cache / "trees" / version
    partial = cache / "trees" / f".{version}.partial"
    say(f"unpacking {tarball.name} (about 15 s)")
    shutil.rmtree(root, ignore_errors=True)
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    _run(["tar", "-xf", str(tarball), "-C", str(partial)], partial, None, f"tar -xf {tarball}")
    if not (partial / f"linux-source-{version}" / "Makefile").is_file():
        raise VmError(f"{tarball} holds no linux-source-{version}/Makefile")
    os.replace(partial, root)
    (root / "unpacked").write_text(tarball.name + "\n")
    return root / f"linux-source-{version}"


# --- a kernel tree of the user's -------------------------------------------------------------


def kernel_tree_version(tree: Path) -> str:
    """MAJOR.MINOR.SUBLEVEL of a kernel source tree (its top Makefile), or VmError saying it
    is not one."""
    try:
        top = (tree / "Makefile").read_text(errors="replace")
    except OSError:
        top = ""
    numbers = [re.search(rf"^{name}\s*=\s*(\d+)\s*$", top, re.M) for name in
               ("VERSION", "PATCHLEVEL", "SUBLEVEL")]  # fmt: skip
    if not all(numbers) or not (tree / "Kconfig").is_file() or not (tree / "arch/x86").is_dir():
        raise VmError(
            f"build:{tree}: not a kernel source tree (expected a top Makefile with VERSION, "
            "PATCHLEVEL and SUBLEVEL, a Kconfig and arch/x86)"
        )
    return ".".join(m[1] for m in numbers if m)


def tree_key(tree: Path) -> str:
    """What the cache knows a tree by: its git tree id where it is a clean git checkout (an
    untracked file is a change too), else a hash of every file's path, size and modification
    time (a copy made with cp -a or tar keeps them; an edit changes them)."""
    git = ["git", "-C", str(tree)]
    try:
        status = subprocess.run([*git, "status", "--porcelain"], capture_output=True, text=True)
        head = subprocess.run([*git, "rev-parse", "--verify", "HEAD^{tree}"],
                              capture_output=True, text=True)  # fmt: skip
    except FileNotFoundError:  # no git here
        status = head = subprocess.CompletedProcess([], 1)
    is_top = head.returncode == 0 and (tree / ".git").exists()
    if is_top and status.returncode == 0 and not status.stdout.strip():
        return f"git{head.stdout.strip()[:16]}"
    h = hashlib.sha256()
    for root, dirs, files in os.walk(tree):
        dirs[:] = sorted(d for d in dirs if d != ".git")
        for name in sorted(files):
            path = os.path.join(root, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            h.update(f"{os.path.relpath(path, tree)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return f"files{h.hexdigest()[:16]}"


def _copied_tree(source: Path, name: str, cache: Path, say: Progress) -> Path:
    """A copy of ``source`` in the cache (trees/NAME/src), made once, where the build writes
    its objects; a tree that was built in place is cleaned there (make mrproper), never in
    the user's own folder."""
    root = cache / "trees" / name
    tree = root / "src"
    if (root / "copied").is_file():
        return tree
    _need_space(cache, TREE_GB, f"build:{source}")
    partial = cache / "trees" / f".{name}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    say(f"copying {source} into the cache (the build never writes in it)")
    copy = partial / "src"
    copy.mkdir()
    pipe = (f"set -o pipefail; tar -C {shlex.quote(str(source))} --exclude=./.git -cf - . "
            f"| tar -C {shlex.quote(str(copy))} -xf -")  # fmt: skip
    _run(["bash", "-c", pipe], partial, None, f"copying {source}")
    if (copy / ".config").exists() or (copy / "include" / "config").exists():
        say("the tree was built in place: make mrproper (in the copy)")
        _run(["make", "mrproper"], copy, None, "make mrproper")
    shutil.rmtree(root, ignore_errors=True)
    os.replace(partial, root)
    (root / "copied").write_text(str(source) + "\n")
    return tree


# --- building --------------------------------------------------------------------------------


def _base_build(
    name: str, what: str, tree: Path, fragment: str, cache: Path, say: Progress
) -> Path:
    """The unpatched build: its bzImage in builds/KEY, its objects kept in the tree."""
    key = cache_key(name, fragment, [])
    out = cache / "builds" / key
    stamp = tree.parent / "built"
    built = tree / "build" / "arch" / "x86" / "boot" / "bzImage"
    if not (_stamp(stamp).get("key") == key and built.is_file()):
        stamp.unlink(missing_ok=True)  # the objects are being changed: not a finished build
        out.mkdir(parents=True, exist_ok=True)
        log = out / "build.log"
        log.write_text("")
        _configure(tree, fragment, log, say)
        minutes = FULL_BUILD_MINUTES_2_CORES * 2 / _jobs()
        say(f"compiling (about {minutes:.0f} minutes on {_jobs()} cores)")
        compiled = _compile(tree, log, say, CC_ESTIMATE, what)
        stamp.write_text(json.dumps({"key": key, "compiled": compiled}) + "\n")
    return _keep(tree, out)


def _patched_build(
    what: str,
    tree: Path,
    fragment: str,
    patches: tuple[Path, ...],
    key: str,
    cache: Path,
    say: Progress,
    fixes: tuple[str, ...] = (),
) -> Path:
    """A copy of the unpatched tree (source hard-linked, objects copied), fixed (``fixes``),
    patched, configured and rebuilt: only what the fixes and patches change compiles."""
    _need_space(cache, COPY_GB, what)
    out = cache / "builds" / key
    out.mkdir(parents=True, exist_ok=True)
    log = out / "build.log"
    log.write_text("")
    work = cache / "work" / key
    shutil.rmtree(work, ignore_errors=True)
    copy = work / tree.name
    copy.mkdir(parents=True)
    try:
        say("copying the built tree (source hard-linked, objects copied)")
        entries = [str(p) for p in sorted(tree.iterdir()) if p.name != "build"]
        _run(["cp", "-al", "-t", str(copy), *entries], work, log, "cp -al")
        _run(["cp", "-a", str(tree / "build"), str(copy / "build")], work, log, "cp -a")
        for line in apply_fixes(copy, fixes):
            say(line)
            with log.open("a") as f:
                f.write(line + "\n")
        for patch in patches:
            say(f"patching: {patch.name}")
            apply_patch(copy, patch, log)
        _configure(copy, fragment, log, say)
        say("compiling what they change")
        changes = [f"--fix {','.join(fixes)}"] * bool(fixes) + [f"{len(patches)} patch(es)"] * bool(
            patches
        )
        _compile(copy, log, say, None, f"{what} with {' and '.join(changes)}")
        return _keep(copy, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _need_space(cache: Path, gb: float, what: str) -> None:
    free = shutil.disk_usage(cache).free / 1e9
    if free < gb:
        raise VmError(f"{what} needs about {gb:.1f} GB free in {cache}, which has {free:.1f} GB")


def _keep(tree: Path, out: Path) -> Path:
    """The build's bzImage, .config and System.map into ``out`` (the image last,
    atomically)."""
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(tree / "build" / ".config", out / "config")
    if (tree / "build" / "System.map").is_file():  # a tinyconfig kernel has no kallsyms
        shutil.copyfile(tree / "build" / "System.map", out / "System.map")
    image = out / "bzImage"
    if not image.is_file():
        shutil.copyfile(tree / "build" / "arch" / "x86" / "boot" / "bzImage", out / ".bzImage")
        os.replace(out / ".bzImage", image)
    return image


def _stamp(path: Path) -> dict[str, object]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def patch_targets(text: str) -> list[str]:
    """The files a unified diff names (-p1: the first path component dropped)."""
    paths = []
    for m in re.finditer(r"^(?:---|\+\+\+) (\S+)", text, re.M):
        path = m[1]
        if path != "/dev/null" and "/" in path:
            paths.append(path.split("/", 1)[1])
    return list(dict.fromkeys(paths))


def apply_patch(tree: Path, patch: Path, log: Path) -> None:
    """``patch -p1 --forward --batch`` in ``tree``; files it names that are hard links (to
    the kept pristine source) become files of their own first, so the original stays as is."""
    text = patch.read_bytes().decode(errors="replace")
    for name in patch_targets(text):
        target = tree / name
        if target.is_file() and not target.is_symlink() and target.stat().st_nlink > 1:
            own = target.with_name(target.name + ".dpas-own")
            shutil.copy2(target, own)
            os.replace(own, target)
    with log.open("a") as f:
        f.write(f"$ patch -p1 --forward --batch -i {patch}\n")
    code = _run(
        [
            "patch", "-p1", "--forward", "--batch", "--no-backup-if-mismatch",
            "-i", str(patch.resolve()),
        ],
        tree, log, f"patch {patch}", must_succeed=False,
    )  # fmt: skip
    if code != 0:
        raise VmError(f"patch {patch} does not apply; see {log}")


def _configure(tree: Path, fragment: str, log: Path, say: Progress) -> None:
    """tinyconfig, the fragment merged in, olddefconfig; then each option checked."""
    say("configuring (tinyconfig + the dpas guest's options)")
    build = tree / "build"
    build.mkdir(exist_ok=True)
    (build / "dpas.config").write_text(fragment)
    _make(tree, ["tinyconfig"], log)
    merge = ["bash", "scripts/kconfig/merge_config.sh", "-m", "-O", "build"]
    _run([*merge, "build/.config", "build/dpas.config"], tree, log, "merge_config.sh")
    _make(tree, ["olddefconfig"], log)
    check_config((build / ".config").read_text(), re.findall(r"^CONFIG_(\w+)=y$", fragment, re.M))


def _jobs() -> int:
    return max(len(os.sched_getaffinity(0)), 1)


def _env() -> dict[str, str]:
    """The build's environment: nothing of a caller's make or cross-build leaks in."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("ARCH", "CROSS_COMPILE", "KBUILD_OUTPUT", "KCONFIG_CONFIG", "O")
        and not k.startswith(("MAKE", "MFLAGS"))
    }
    env.update(LC_ALL="C", KBUILD_BUILD_USER="dpas", KBUILD_BUILD_HOST="dpas")
    return env


def _make(tree: Path, targets: list[str], log: Path) -> None:
    _run(["make", "O=build", *targets], tree, log, f"make {' '.join(targets)}")


def _compile(tree: Path, log: Path, say: Progress, estimate: int | None, what: str) -> int:
    """make -jN bzImage, its compile steps counted for the progress line; returns the count."""
    compiled = 0
    last = time.monotonic()

    def line(text: str) -> None:
        nonlocal compiled, last
        if re.match(r"\s+CC\s", text):
            compiled += 1
        if time.monotonic() - last >= PROGRESS_EVERY_S:
            last = time.monotonic()
            of = f" of about {estimate}" if estimate else ""
            say(f"compiling: {compiled} files{of} so far")

    code = _run(
        ["make", "O=build", f"-j{_jobs()}", "bzImage"],
        tree,
        log,
        "make bzImage",
        line,
        must_succeed=False,
    )
    if code != 0:
        first = _first_error(log)
        raise VmError(f"{what}: make bzImage failed{f' ({first})' if first else ''}; see {log}")
    return compiled


def _first_error(log: Path) -> str:
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return ""
    m = re.search(r"^.*\berror:.*$", text, re.M) or re.search(r"^make.*\bError \d+.*$", text, re.M)
    return m[0].strip()[:200] if m else ""


def _run(
    argv: list[str],
    cwd: Path,
    log: Path | None,
    what: str,
    on_line: Callable[[str], None] | None = None,
    *,
    must_succeed: bool = True,
) -> int:
    """Run a step in a process group of its own, its output appended to ``log``; a stopping
    signal (dpas.real.stop) or any exception here ends the whole group (make and its
    compilers). Returns the exit code; a failure is an error naming the log unless told not."""
    sink = log.open("ab") if log is not None else None
    try:
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=dying_with_me(),
        )
    except FileNotFoundError:
        if sink is not None:
            sink.close()
        raise VmError(f"{what}: {argv[0]} not found") from None
    tail: list[bytes] = []
    try:
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        pending = b""
        while True:
            if stopped() is not None:
                break
            ready, _, _ = select.select([fd], [], [], 1.0)
            if not ready:
                if on_line is not None:
                    on_line("")
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            if sink is not None:
                sink.write(chunk)
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for raw in lines:
                tail = (tail + [raw])[-5:]
                if on_line is not None:
                    on_line(raw.decode(errors="replace"))
        if stopped() is None:
            proc.wait()
    finally:
        try:  # a stop, an exception, or stragglers of a finished step: the whole group ends
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
        if sink is not None:
            sink.close()
    check_stop()
    if proc.returncode != 0 and must_succeed:
        where = f"; see {log}" if log is not None else ""
        last = tail[-1].decode(errors="replace").strip() if tail else f"exit {proc.returncode}"
        raise VmError(f"{what} failed: {last}{where}")
    return proc.returncode
