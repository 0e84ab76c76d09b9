"""--kernel build:VERSION: the minimal guest kernel dpas builds from Debian's linux-source.

Fast: the config fragment and its check, the cache keys, patches on a tiny fake tree, make's
progress, failure and stop, the refusals (missing tools, no disk, a version no suite has).
Slow: a real download, build and boot (in the persistent ~/.cache/dpas/vm/kernels/build, so
later runs on the same machine reuse it), then a patched build of the same version,
incremental, whose release the booted guest shows.
"""

from __future__ import annotations

import difflib
import shutil
import struct
import time
from pathlib import Path

import pytest

from dpas.policy import Method
from dpas.vm import build
from dpas.vm.build import (
    OPTIONS,
    apply_patch,
    build_kernel,
    cache_key,
    check_config,
    fragment_text,
    patch_targets,
)
from dpas.vm.kernel import VmError
from dpas.vm.runner import VmBench

GOOD_CONFIG = "".join(f"CONFIG_{name}=y\n" for name in OPTIONS) + "CONFIG_HZ=250\n"


def test_fragment_has_every_option_and_what_fio_needs() -> None:
    text = fragment_text()
    assert text.splitlines() == [f"CONFIG_{name}=y" for name in OPTIONS]
    for name in ("BLK_DEV_NVME", "IO_URING", "SYSVIPC", "DEVTMPFS_MOUNT", "BINFMT_SCRIPT"):
        assert f"CONFIG_{name}=y\n" in text


def test_config_check_passes_when_every_option_is_y() -> None:
    check_config(GOOD_CONFIG)


def test_config_check_names_every_dropped_option_in_one_line() -> None:
    text = (
        GOOD_CONFIG.replace("CONFIG_SYSVIPC=y\n", "# CONFIG_SYSVIPC is not set\n")
        .replace("CONFIG_IO_URING=y\n", "")
        .replace("CONFIG_NVME_CORE=y\n", "CONFIG_NVME_CORE=m\n")
    )
    with pytest.raises(VmError) as err:
        check_config(text)
    message = str(err.value)
    assert "\n" not in message
    assert "CONFIG_SYSVIPC" in message and "CONFIG_IO_URING" in message
    assert "CONFIG_NVME_CORE=m" in message
    assert "CONFIG_BLK_DEV_NVME" not in message


def test_cache_key_follows_patch_contents_not_names() -> None:
    fragment = fragment_text()
    plain = cache_key("7.2", fragment, [])
    a = cache_key("7.2", fragment, [b"--- a/x\n+++ b/x\n"])
    assert a == cache_key("7.2", fragment, [b"--- a/x\n+++ b/x\n"])
    assert len({plain, a, cache_key("7.2", fragment, [b"--- a/y\n+++ b/y\n"])}) == 3
    assert cache_key("7.2", fragment, [b"1", b"2"]) != cache_key("7.2", fragment, [b"2", b"1"])
    assert cache_key("7.3", fragment, []) != plain
    assert cache_key("7.2", fragment + "CONFIG_AIO=y\n", []) != plain
    assert plain.startswith("7.2-") and a.startswith("7.2-")


PATCH = """--- a/init/version.c
+++ b/init/version.c
@@ -1,3 +1,3 @@
 line one
-line two
+line two, patched
 line three
"""


def _fake_tree(root: Path) -> Path:
    tree = root / "linux-source-0.1"
    (tree / "init").mkdir(parents=True)
    (tree / "init" / "version.c").write_text("line one\nline two\nline three\n")
    return tree


def test_patch_targets_drop_the_first_component() -> None:
    text = PATCH + "--- /dev/null\n+++ b/new/file.c\n@@ -0,0 +1 @@\n+x\n"
    assert patch_targets(text) == ["init/version.c", "new/file.c"]


def test_a_patch_applies_and_leaves_the_hard_linked_original_alone(tmp_path: Path) -> None:
    pristine = _fake_tree(tmp_path / "pristine")
    copy = tmp_path / "copy" / pristine.name
    (copy / "init").mkdir(parents=True)
    (copy / "init" / "version.c").hardlink_to(pristine / "init" / "version.c")
    patch = tmp_path / "ok.patch"
    patch.write_text(PATCH)
    log = tmp_path / "build.log"
    apply_patch(copy, patch, log)
    assert "line two, patched" in (copy / "init" / "version.c").read_text()
    assert (pristine / "init" / "version.c").read_text() == "line one\nline two\nline three\n"
    assert "patch -p1" in log.read_text()


def test_a_patch_that_does_not_apply_is_one_line_naming_it_and_the_log(tmp_path: Path) -> None:
    tree = _fake_tree(tmp_path)
    (tree / "init" / "version.c").write_text("something\nelse\nentirely\n")
    patch = tmp_path / "bad.patch"
    patch.write_text(PATCH)
    log = tmp_path / "build.log"
    with pytest.raises(VmError) as err:
        apply_patch(tree, patch, log)
    message = str(err.value)
    assert message == f"patch {patch} does not apply; see {log}"
    assert "FAILED" in log.read_text() or "failed" in log.read_text()
    assert not list(tree.rglob("*.orig"))


def test_a_patch_already_applied_is_refused(tmp_path: Path) -> None:
    tree = _fake_tree(tmp_path)
    patch = tmp_path / "ok.patch"
    patch.write_text(PATCH)
    apply_patch(tree, patch, tmp_path / "log")
    with pytest.raises(VmError, match="does not apply"):
        apply_patch(tree, patch, tmp_path / "log")


def test_missing_build_tools_are_refused_naming_the_packages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_which = shutil.which
    monkeypatch.setattr(
        build.shutil, "which", lambda tool: None if tool in ("flex", "bison") else real_which(tool)
    )
    monkeypatch.setattr(build, "INCLUDE_DIRS", (tmp_path / "include",))
    (tmp_path / "include" / "openssl").mkdir(parents=True)
    (tmp_path / "include" / "openssl" / "opensslv.h").write_text("")
    assert build.missing_packages() == ["flex", "bison", "libelf-dev"]
    with pytest.raises(VmError) as err:
        build_kernel("7.2", (), tmp_path / "cache")
    message = str(err.value)
    assert "\n" not in message
    assert message.endswith("apt-get install flex bison libelf-dev")
    assert not (tmp_path / "cache").exists()  # refused before anything was fetched


def _fake_bzimage(path: Path, release: str) -> None:
    data = bytearray(0x1000)
    data[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", data, 0x20E, 0x800 - 0x200)
    text = f"{release} (dpas@dpas) #1 SMP".encode()
    data[0x800 : 0x800 + len(text)] = text
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(data))


def test_a_cached_build_returns_at_once_without_tools(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(build.shutil, "which", lambda tool: None)
    patch = tmp_path / "p.patch"
    patch.write_text(PATCH)
    key = cache_key("7.2", fragment_text(), [patch.read_bytes()])
    _fake_bzimage(tmp_path / "cache" / "builds" / key / "bzImage", "7.2.13-dpastest")
    kernel = build_kernel("7.2", (patch,), tmp_path / "cache")
    assert kernel.release == "7.2.13-dpastest" and kernel.modules is None
    assert kernel.image == tmp_path / "cache" / "builds" / key / "bzImage"
    patch.write_text(PATCH.replace("patched", "patched again"))  # other content: not cached
    with pytest.raises(VmError, match="apt-get install"):
        build_kernel("7.2", (patch,), tmp_path / "cache")


def test_bad_version_and_unreadable_patch_are_refused(tmp_path: Path) -> None:
    with pytest.raises(VmError, match="not a kernel version"):
        build_kernel("7.2; rm -rf /", (), tmp_path)
    with pytest.raises(VmError, match="--patch .*missing.patch: cannot be read"):
        build_kernel("7.2", (tmp_path / "missing.patch",), tmp_path)


MAKEFILE = """bzImage:
\t@echo "  CC      init/main.o"
\t@echo "  CC      init/version.o"
\t@echo "  LD      vmlinux"
\t@echo "O=$(O)"
"""


def test_compile_counts_cc_lines_and_logs_everything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "Makefile").write_text(MAKEFILE)
    monkeypatch.setattr(build, "PROGRESS_EVERY_S", 0.0)
    said: list[str] = []
    log = tmp_path / "build.log"
    assert build._compile(tree, log, said.append, 1150, "build:0.1") == 2
    assert "O=build" in log.read_text() and "LD      vmlinux" in log.read_text()
    assert said and said[-1] == "compiling: 2 files of about 1150 so far"


def test_a_failed_build_is_one_line_naming_the_log(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "Makefile").write_text(
        'bzImage:\n\t@echo "  CC      kernel/sys.o"\n'
        '\t@echo "../kernel/sys.c:12:1: error: expected declaration" >&2\n\t@false\n'
    )
    log = tmp_path / "build.log"
    with pytest.raises(VmError) as err:
        build._compile(tree, log, lambda _: None, None, "build:0.1 with 1 patch(es)")
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("build:0.1 with 1 patch(es): make bzImage failed (")
    assert "sys.c:12:1: error: expected declaration" in message
    assert message.endswith(f"; see {log}")


def test_a_stopping_signal_ends_make_and_its_children(tmp_path: Path) -> None:
    """Under dpas.real.stop.stopping() (as in vm bench), SIGTERM ends the build's whole
    process group within a second or so, and the build raises Stopped."""
    import os
    import signal
    import threading

    from dpas.real.stop import Stopped, stopping

    tree = tmp_path / "tree"
    tree.mkdir()
    marker = tmp_path / "child.pid"
    (tree / "Makefile").write_text(f"bzImage:\n\t@sh -c 'echo $$$$ > {marker}; exec sleep 60'\n")
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    timer = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGTERM))
    start = time.monotonic()
    try:
        with pytest.raises(Stopped), stopping():
            timer.start()
            build._compile(tree, tmp_path / "log", lambda _: None, None, "build:0.1")
    finally:
        timer.cancel()
        for s, handler in saved.items():
            signal.signal(s, handler)
    assert time.monotonic() - start < 10
    status = Path(f"/proc/{int(marker.read_text())}/status")
    for _ in range(50):  # gone, or a zombie its new parent has yet to reap
        try:
            if "\nState:\tZ" in status.read_text():
                break
        except FileNotFoundError:
            break
        time.sleep(0.1)
    else:
        pytest.fail("make's child (sleep 60) outlived the stop")


def test_a_build_that_would_fill_the_disk_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from types import SimpleNamespace

    monkeypatch.setattr(build.shutil, "disk_usage", lambda _: SimpleNamespace(free=10**9))
    with pytest.raises(VmError) as err:
        build._tree("7.2", tmp_path, lambda _: None)
    assert str(err.value) == f"build:7.2 needs about 2.9 GB free in {tmp_path}, which has 1.0 GB"


class FakeApt:
    HAS = {
        "sid": ["linux-source-7.2"],
        "trixie-backports": ["linux-source-7.2", "linux-source-7.3"],
    }

    def __init__(self, root: Path, suite: str) -> None:
        self.suite = suite

    def update(self) -> None:
        pass

    def names(self, prefix: str) -> list[str]:
        return [n for n in self.HAS[self.suite] if n.startswith(prefix)]


def test_suites_are_searched_in_order_and_a_missing_version_names_what_exists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(build, "PrivateApt", FakeApt)
    assert build.find_suite("7.2", tmp_path).suite == "sid"
    assert build.find_suite("7.3", tmp_path).suite == "trixie-backports"
    with pytest.raises(VmError) as err:
        build.find_suite("9.9", tmp_path)
    assert str(err.value) == (
        "build:9.9: no linux-source-9.9 in sid or trixie-backports "
        "(sid has 7.2; trixie-backports has 7.2, 7.3)"
    )


# --- slow: a real download, build and boot ---------------------------------------------------


def _slow_tools() -> None:
    for tool in ("qemu-system-x86_64", "apt-get", "busybox", "fio"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: .ci/run installs qemu-system-x86, busybox-static, fio")
    missing = build.missing_packages()
    if missing:
        pytest.fail(f"build tools missing: apt-get install {' '.join(missing)}")


def _build_cache() -> Path:
    from dpas.vm.runner import default_cache

    return default_cache() / "kernels" / "build"  # where dpas vm bench --kernel build: builds


def _version(cache: Path) -> str:
    """7.2 while it can be had (cached, or in sid), else the newest linux-source of sid."""
    if (cache / "sources" / "linux-source-7.2.tar.xz").is_file():
        return "7.2"
    from dpas.vm.apt import PrivateApt

    apt = PrivateApt(cache / "apt" / "sid", "sid")
    apt.update()
    names = [n.removeprefix("linux-source-") for n in apt.names("linux-source-")]
    versions = [v for v in names if v.replace(".", "").isdigit()]
    if "7.2" in versions or not versions:
        return "7.2"
    return max(versions, key=lambda v: tuple(int(x) for x in v.split(".")))


@pytest.fixture
def poll_queues(monkeypatch: pytest.MonkeyPatch) -> None:
    """nvme.poll_queues=2 on the guest's command line (NVMe is built in: no insmod to take
    it), until Machine.argv adds it itself."""
    from dpas.vm.guest import Machine

    argv = Machine.argv

    def with_poll_queues(self: Machine, accel: str, serials: list[str]) -> list[str]:
        args = argv(self, accel, serials)
        at = args.index("-append") + 1
        if "nvme.poll_queues=" not in args[at]:
            args[at] += " nvme.poll_queues=2"
        return args

    monkeypatch.setattr(Machine, "argv", with_poll_queues)


def _bench(kernel: Path, modes: tuple[Method, ...], runtime: float, work: Path) -> VmBench:
    from dpas.bench.backend import Sweep
    from dpas.vm.guest import GuestRun
    from dpas.vm.runner import VmConfig, vm_bench

    sweep = Sweep(modes=modes, jobs=(1,), runtime_s=runtime, d_init_ns=4000)
    return vm_bench(VmConfig(GuestRun(), kernel=kernel, cache=work), sweep)


def _timed(what: str) -> build.Progress:
    start = time.monotonic()

    def say(message: str) -> None:
        print(f"  [{time.monotonic() - start:6.1f} s] {what}: {message}", flush=True)

    return say


@pytest.mark.slow
def test_built_kernel_boots_and_cp_polls(tmp_path: Path, poll_queues: None) -> None:
    """Integration: linux-source built with tinyconfig + OPTIONS boots the dpas initramfs;
    INT takes about one NVMe interrupt per I/O, CP (io_uring IOPOLL on poll queues) none."""
    _slow_tools()
    cache = _build_cache()
    version = _version(cache)
    start = time.monotonic()
    kernel = build_kernel(version, (), cache, _timed("build"))
    built_s = time.monotonic() - start
    assert kernel.release.startswith(version + ".") and kernel.modules is None
    assert kernel.image.stat().st_size < 8 << 20
    start = time.monotonic()
    again = build_kernel(version, (), cache)
    assert again == kernel and time.monotonic() - start < 2  # cached
    start = time.monotonic()
    bench = _bench(kernel.image, (Method.INT, Method.CP), 2, tmp_path)
    print(f"build {built_s:.0f} s, boot and run {time.monotonic() - start:.0f} s")
    assert bench.kernel == kernel.release
    runs = {r.mode: r for r in bench.records}
    assert set(runs) == {"INT", "CP"}, bench.refused
    for mode, r in runs.items():
        print(f"{mode}: {r.iops:.0f} IOPS, {r.ios} I/Os, {r.interrupts} NVMe interrupts")
    assert runs["INT"].iops > 0 and runs["CP"].iops > 0
    assert runs["CP"].interrupts == 0
    assert runs["INT"].interrupts is not None
    assert 0.8 * runs["INT"].ios <= runs["INT"].interrupts <= 1.2 * runs["INT"].ios + 10


@pytest.mark.slow
def test_patched_kernel_builds_incrementally_and_the_guest_runs_it(
    tmp_path: Path, poll_queues: None
) -> None:
    """A patch of the test's own (EXTRAVERSION in the top Makefile), built from a copy of the
    unpatched tree: the guest's uname -r ends with it."""
    _slow_tools()
    cache = _build_cache()
    version = _version(cache)
    build_kernel(version, (), cache)  # the unpatched tree (cached after the test above)
    tree = build.source_tree(version, cache)
    assert tree is not None
    original = (tree / "Makefile").read_text()
    patched = original.replace("\nEXTRAVERSION =\n", "\nEXTRAVERSION = -dpastest\n", 1)
    assert patched != original, "the Makefile has no empty EXTRAVERSION line"
    patch = tmp_path / "extraversion.patch"
    patch.write_text(
        "".join(
            difflib.unified_diff(
                original.splitlines(keepends=True),
                patched.splitlines(keepends=True),
                "a/Makefile",
                "b/Makefile",
            )
        )
    )
    start = time.monotonic()
    kernel = build_kernel(version, (patch,), cache, _timed("patched build"))
    built_s = time.monotonic() - start
    assert kernel.release.endswith("-dpastest")
    assert (tree / "Makefile").read_text() == original  # the kept source is untouched
    start = time.monotonic()
    bench = _bench(kernel.image, (Method.INT,), 1, tmp_path)
    print(f"patched build {built_s:.0f} s, boot and run {time.monotonic() - start:.0f} s")
    assert bench.kernel == kernel.release
    assert bench.records and bench.records[0].kernel.endswith("-dpastest")
