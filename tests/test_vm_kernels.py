"""dpas vm --kernel SPEC: the forms and their one-line refusals (QEMU never started), modules
read and packed decompressed, the host's apt left alone by the private one, and real boots
of Debian's newest kernel (sid, split packages, .ko.xz) and of a .deb in the lab's layout."""

from __future__ import annotations

import gzip
import hashlib
import json
import lzma
import os
import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from conftest import run_dpas

from dpas.vm import runner
from dpas.vm.apt import PrivateApt
from dpas.vm.guest import GuestRun, Machine
from dpas.vm.kernel import (
    GuestKernel,
    VmError,
    check_nvme,
    module_bytes,
    module_file_name,
    module_order,
)
from dpas.vm.kernels import KernelSpec, parse_kernel, pick_version, resolve_kernel

# --- helpers --------------------------------------------------------------------------------


def fake_module(name: str, depends: str = "") -> bytes:
    """What module_order reads of a module: its modinfo strings (depends= among them)."""
    return b"\x7fELF" + b"\0" * 60 + f"license=GPL\0depends={depends}\0name={name}\0".encode()


def fake_bzimage(path: Path, release: str = "7.9.0-fake") -> Path:
    """Enough of a bzImage header for image_release: HdrS and the version string."""
    data = bytearray(0x1000)
    data[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", data, 0x20E, 0x300)
    version = f"{release} (dpas@test) #1 SMP\0".encode()
    data[0x500 : 0x500 + len(version)] = version
    path.write_bytes(bytes(data))
    return path


def build_deb(root: Path, out: Path, package: str = "dpas-test") -> Path:
    (root / "DEBIAN").mkdir(parents=True, exist_ok=True)
    (root / "DEBIAN" / "control").write_text(
        f"Package: {package}\nVersion: 1.0\nArchitecture: amd64\n"
        "Maintainer: dpas tests <dpas@localhost>\nDescription: made by a dpas test\n"
    )
    subprocess.run(
        ["dpkg-deb", "-Zgzip", "-z1", "--root-owner-group", "-b", str(root), str(out)],
        check=True,
        capture_output=True,
    )
    return out


@pytest.fixture
def no_qemu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A qemu-system-x86_64 first on PATH that only leaves a mark: a test asserts none."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    mark = tmp_path / "qemu-was-started"
    stub = bin_dir / "qemu-system-x86_64"
    stub.write_text(f"#!/bin/sh\ntouch {mark}\nexit 1\n")
    stub.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return mark


def refused(mark: Path, *args: str, timeout: float = 120) -> str:
    """dpas vm bench with these arguments: exit 2, one line, no traceback, no QEMU."""
    out = run_dpas("vm", "bench", "INT", "--jobs", "1", "--runtime", "1", *args, timeout=timeout)
    assert out.returncode == 2, (out.stdout, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dpas: error: "), out.stderr
    assert "Traceback" not in out.stderr and not mark.exists()
    return lines[0]


# --- spec parsing ---------------------------------------------------------------------------


def test_every_kernel_form_parses(tmp_path: Path) -> None:
    deb = tmp_path / "linux-image-5.18.0-dpas_5.18.0-1_amd64.deb"
    deb.write_bytes(b"!<arch>\n")
    image = fake_bzimage(tmp_path / "bzImage")
    patch = tmp_path / "dpas.patch"
    patch.write_text("--- a\n+++ b\n")
    mods = tmp_path / "modules"
    mods.mkdir()
    assert parse_kernel("debian") == KernelSpec("debian")
    assert parse_kernel("debian:sid") == KernelSpec("debian", "sid")
    assert parse_kernel("debian:trixie-backports") == KernelSpec("debian", "trixie-backports")
    assert parse_kernel("debian:sid:7.2.13") == KernelSpec("debian", "sid", "7.2.13")
    assert parse_kernel("debian:sid:7.2.13+deb14-rt-amd64").version == "7.2.13+deb14-rt-amd64"
    assert parse_kernel("build:7.2") == KernelSpec("build", version="7.2")
    assert parse_kernel("build:7.3", patches=(patch,)).patches == (patch,)
    assert parse_kernel(str(deb)) == KernelSpec("deb", path=deb)
    assert parse_kernel(str(image)) == KernelSpec("image", path=image)
    assert parse_kernel(str(image), mods) == KernelSpec("image", path=image, modules=mods)


def test_the_words_win_over_a_folder_named_debian(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "debian").mkdir()  # as in a source tree
    monkeypatch.chdir(tmp_path)
    assert parse_kernel("debian").kind == "debian"


def test_a_version_picks_one_release_or_lists_them() -> None:
    images = [
        "linux-image-7.2.12+deb14-amd64",
        "linux-image-7.2.13+deb14-amd64",
        "linux-image-7.2.13+deb14-cloud-amd64",
        "linux-image-7.2.13+deb14-rt-amd64",
    ]
    spec = "debian:sid:x"
    assert pick_version("7.2.13", images, spec) == "linux-image-7.2.13+deb14-amd64"
    assert pick_version("7.2.13+deb14-rt", images, spec) == "linux-image-7.2.13+deb14-rt-amd64"
    assert pick_version("7.2.12+deb14-amd64", images, spec) == "linux-image-7.2.12+deb14-amd64"
    with pytest.raises(VmError, match=r"ambiguous, it names 7\.2\.12\+deb14-amd64, 7\.2\.13"):
        pick_version("7.2", images, spec)
    with pytest.raises(VmError, match=r"no such kernel; there: 7\.2\.12\+deb14-amd64, 7\.2\.13"):
        pick_version("7.2.1", images, spec)  # 7.2.1 is not a prefix of 7.2.12's release


def bad_forms(tmp_path: Path) -> list[tuple[list[str], str]]:
    image = fake_bzimage(tmp_path / "bzImage")
    not_image = tmp_path / "notes.txt"
    not_image.write_text("not a kernel\n")
    mods = tmp_path / "modules"
    mods.mkdir()
    patch = tmp_path / "dpas.patch"
    patch.write_text("--- a\n+++ b\n")
    return [
        (["--kernel", ""], "--kernel: empty"),
        (["--kernel", "debian:"], "expected debian, debian:SUITE or debian:SUITE:VERSION"),
        (["--kernel", "debian:sid:"], "expected debian, debian:SUITE or debian:SUITE:VERSION"),
        (["--kernel", "debian:sid:7.2:x"], "expected debian, debian:SUITE"),
        (["--kernel", "debian:Sid"], "'Sid' is not a suite name"),
        (["--kernel", "debian:sid:latest"], "'latest' is not a kernel version"),
        (["--kernel", "build:"], "expected build:MAJOR.MINOR"),
        (["--kernel", "build:seven"], "expected build:MAJOR.MINOR"),
        (["--kernel", "build:7.2.13"], "expected build:MAJOR.MINOR"),
        (["--kernel", str(tmp_path / "nope")], "no such file (expected debian, debian:SUITE"),
        (["--kernel", str(tmp_path)], "not a file"),
        (["--kernel", str(not_image)], "not a bzImage"),
        (["--modules", str(mods)], "--modules is for a bzImage given as --kernel PATH"),
        (["--kernel", "debian:sid", "--modules", str(mods)], "--modules is for a bzImage"),
        (["--kernel", str(image), "--modules", str(tmp_path / "no")], "not a directory"),
        (
            ["--patch", str(patch)],
            "--patch is for --kernel build:VERSION, build:DIR or dpas:VERSION, not --kernel debian",
        ),
        (["--kernel", "build:7.2", "--patch", str(tmp_path / "no.patch")], "no such file"),
        (["--kernel", str(image), "--modules", str(mods)], "has no NVMe driver"),
    ]


def test_bad_kernel_forms_are_one_line_errors_before_qemu(tmp_path: Path, no_qemu: Path) -> None:
    for args, message in bad_forms(tmp_path):
        line = refused(no_qemu, *args, "--cache", str(tmp_path / "cache"))
        assert message in line, (args, line)


def test_vm_shell_refuses_the_same_way(tmp_path: Path, no_qemu: Path) -> None:
    out = run_dpas("vm", "shell", "--patch", str(tmp_path / "x.patch"))
    assert out.returncode == 2 and "--patch is for --kernel build:VERSION" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and not no_qemu.exists()


def test_a_deb_without_a_kernel_is_refused_naming_it(tmp_path: Path, no_qemu: Path) -> None:
    root = tmp_path / "pkg"
    (root / "usr/share/doc/dpas-test").mkdir(parents=True)
    (root / "usr/share/doc/dpas-test/README").write_text("no kernel here\n")
    (root / "lib/modules/7.9.0/kernel").mkdir(parents=True)  # modules alone are not enough
    deb = build_deb(root, tmp_path / "dpas-test_1.0_amd64.deb")
    line = refused(no_qemu, "--kernel", str(deb), "--cache", str(tmp_path / "cache"))
    assert line == (
        f"dpas: error: {deb} holds no kernel image (no boot/vmlinuz-* or usr/lib/modules/*/vmlinuz)"
    )
    not_deb = tmp_path / "broken.deb"
    not_deb.write_text("not an archive\n")
    line = refused(no_qemu, "--kernel", str(not_deb), "--cache", str(tmp_path / "cache"))
    assert "dpkg-deb -c" in line and "failed" in line


def test_a_deb_in_either_layout_is_unpacked_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lab's layout (boot/, lib/modules/, plain .ko) and sid's (usr/lib/modules/<rel>/
    vmlinuz, .ko.xz), each unpacked under kernels/deb-<sha256> and found again; the .deb
    named relative to the current folder, as a user types it."""
    monkeypatch.chdir(tmp_path)
    layouts = {
        "lab": ("boot/vmlinuz-7.9.0-lab", "lib/modules/7.9.0-lab", ".ko", lambda b: b),
        "split": (
            "usr/lib/modules/7.9.0-split/vmlinuz",
            "usr/lib/modules/7.9.0-split",
            ".ko.xz",
            lzma.compress,
        ),
    }
    cache = tmp_path / "kernels"
    for name, (image, modules, suffix, pack) in layouts.items():
        root = tmp_path / name
        (root / image).parent.mkdir(parents=True, exist_ok=True)
        fake_bzimage(root / image)
        host = root / modules / "kernel/drivers/nvme/host"
        host.mkdir(parents=True)
        (host / f"nvme{suffix}").write_bytes(pack(fake_module("nvme", "nvme-core")))
        (host / f"nvme-core{suffix}").write_bytes(pack(fake_module("nvme_core")))
        deb = build_deb(root, tmp_path / f"{name}.deb", f"linux-image-{name}")
        kernel = resolve_kernel(f"./{deb.name}", None, (), cache)
        assert kernel.release == modules.rsplit("/", 1)[1]
        assert kernel.image.is_file() and kernel.modules is not None
        assert kernel.image.is_relative_to(cache) and kernel.image.parts[-1].startswith("vmlinuz")
        assert [module_file_name(p) for p in module_order(kernel.modules)] == [
            "nvme-core.ko",
            "nvme.ko",
        ]
        again = resolve_kernel(str(deb), None, (), cache)  # cached: not unpacked again
        assert again == kernel
    assert len(list(cache.glob("deb-*"))) == 2 and not list(cache.glob(".*"))


# --- modules --------------------------------------------------------------------------------


def test_module_order_reads_depends_from_xz_modules(tmp_path: Path) -> None:
    """7.x's layout: .ko.xz only, nvme-core needing nvme-auth and nvme-keyring, no CRC crypto
    providers (NVME_MODULES wants two 6.1 had): the order still comes out, from the
    decompressed content, and the initramfs gets plain .ko files."""
    mods = tmp_path / "lib/modules/7.9.0"
    host = mods / "kernel/drivers/nvme/host"
    common = mods / "kernel/drivers/nvme/common"
    host.mkdir(parents=True)
    common.mkdir(parents=True)
    contents = {
        host / "nvme.ko.xz": fake_module("nvme", "nvme-core"),
        host / "nvme-core.ko.xz": fake_module("nvme_core", "nvme-auth,nvme-keyring"),
        common / "nvme-auth.ko.xz": fake_module("nvme_auth"),
        common / "nvme-keyring.ko.xz": fake_module("nvme_keyring", "key-helper"),
        mods / "kernel/lib/key-helper.ko.gz": fake_module("key_helper"),
    }
    for path, data in contents.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.name.endswith(".xz"):
            path.write_bytes(lzma.compress(data))
        else:
            path.write_bytes(gzip.compress(data))
    order = module_order(mods)
    assert [module_file_name(p) for p in order] == [
        "nvme-auth.ko",
        "key-helper.ko",
        "nvme-keyring.ko",
        "nvme-core.ko",
        "nvme.ko",
    ]
    for path in order:
        assert module_bytes(path) == contents[path]  # what goes into the initramfs
    check_nvme(GuestKernel(tmp_path / "vmlinuz", mods, "7.9.0"))  # nvme is there


def test_zstd_modules_are_read_with_the_zstd_command_or_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mods = tmp_path / "mods"
    mods.mkdir()
    data = fake_module("nvme", "nvme-core")
    raw = mods / "raw.ko"
    raw.write_bytes(data)
    if shutil.which("zstd"):
        subprocess.run(["zstd", "-q", str(raw), "-o", str(mods / "nvme.ko.zst")], check=True)
        raw.unlink()
        module_bytes.cache_clear()
        assert module_bytes(mods / "nvme.ko.zst") == data
        module_bytes.cache_clear()
        monkeypatch.setattr("dpas.vm.kernel.shutil.which", lambda name: None)
        with pytest.raises(VmError, match=r"zstd-compressed \(\.ko\.zst\).*apt-get install zstd"):
            module_bytes(mods / "nvme.ko.zst")
    module_bytes.cache_clear()


def test_a_kernel_known_to_lack_nvme_is_refused_before_booting(tmp_path: Path) -> None:
    mods = tmp_path / "lib/modules/7.9.0"
    (mods / "kernel/crypto").mkdir(parents=True)
    (mods / "kernel/crypto/other.ko").write_bytes(fake_module("other"))
    kernel = GuestKernel(tmp_path / "vmlinuz", mods, "7.9.0")
    with pytest.raises(VmError, match="the guest kernel 7.9.0 has no NVMe driver"):
        check_nvme(kernel)
    (mods / "modules.builtin").write_text("kernel/lib/crc64.ko\n")
    with pytest.raises(VmError, match="has no NVMe driver"):
        check_nvme(kernel)
    (mods / "modules.builtin").write_text("kernel/lib/crc64.ko\nkernel/drivers/nvme/host/nvme.ko\n")
    check_nvme(kernel)  # built in
    (mods / "modules.builtin").unlink()
    (tmp_path / "boot").mkdir()
    (tmp_path / "boot/config-7.9.0").write_text("CONFIG_X=y\nCONFIG_BLK_DEV_NVME=y\n")
    check_nvme(kernel)  # built in, as its config says
    check_nvme(GuestKernel(tmp_path / "vmlinuz", None, "7.9.0"))  # unknown: the guest says


def test_the_guest_marker_for_no_drive_becomes_one_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = runner.VmConfig(GuestRun(), cache=tmp_path)
    kernel = GuestKernel(tmp_path / "bzImage", None, "7.9.0")

    def build(kernel: GuestKernel, out: Path, plan: str, python: object = None) -> Path:
        out.write_bytes(b"")  # an empty initramfs: the boot itself is faked below
        return out

    monkeypatch.setattr(runner.initramfs, "build", build)
    for driver, message in [
        ("missing", "no NVMe driver (no nvme module and /sys/block/nvme0n1 never appeared)"),
        ("loaded", "nvme driver is there but /sys/block/nvme0n1 never appeared"),
    ]:
        text = f"@@NO_NVME {driver}\n"
        monkeypatch.setattr(
            runner,
            "boot",
            lambda machine, work, timeout, per_run=None, say=None, t=text: ("tcg", "", t),
        )
        with pytest.raises(VmError, match=re.escape(message)) as err:
            runner._run_guest(config, kernel, "run", "plan", None, 10)
        assert str(tmp_path / "run" / "console.log") in str(err.value)


def test_poll_queues_are_on_the_kernel_command_line() -> None:
    argv = Machine(Path("k"), Path("i"), Path("d"), 2, "1G", poll_queues=3).argv("tcg", [])
    assert "nvme.poll_queues=3" in argv[argv.index("-append") + 1].split()


# --- the private apt ------------------------------------------------------------------------


def snapshot(*roots: Path) -> dict[str, str]:
    """Every file under the roots (and what each symlink points at), hashed."""
    seen: dict[str, str] = {}
    for root in roots:
        for folder, dirs, files in os.walk(root):
            for name in dirs + files:
                path = Path(folder, name)
                if path.is_symlink():
                    seen[str(path)] = "-> " + os.readlink(path)
                elif path.is_file():
                    seen[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
                elif name in dirs:
                    seen[str(path)] = "dir"
    return seen


def test_the_private_apt_leaves_the_hosts_apt_byte_identical(tmp_path: Path) -> None:
    roots = [Path("/etc/apt"), Path("/var/lib/apt/lists"), Path("/var/cache/apt")]
    before = snapshot(*roots)
    apt = PrivateApt(tmp_path / "apt", "sid")
    apt.update()
    assert any(p.startswith("linux-image-") for p in apt.depends("linux-image-amd64"))
    assert snapshot(*roots) == before
    assert any((tmp_path / "apt" / "lists").glob("*sid*Packages*"))


def test_registry_refusals_name_the_suite(tmp_path: Path, no_qemu: Path) -> None:
    """An unknown suite, a suite without kernels, a version that is not there: one line each,
    from the real registry (a few seconds: apt-get update of small lists)."""
    cache = ["--cache", str(tmp_path / "cache")]
    line = refused(no_qemu, "--kernel", "debian:nosuchsuite", *cache)
    assert "no suite 'nosuchsuite' at http" in line and "Release" in line
    line = refused(no_qemu, "--kernel", "debian:bookworm-updates", *cache)
    assert "--kernel debian:bookworm-updates: no kernel package" in line
    line = refused(no_qemu, "--kernel", "debian:sid:1.0.1", *cache)
    assert re.search(r"debian:sid:1\.0\.1: no such kernel; there: .*\d+\.\d+", line)


def test_a_registry_that_does_not_answer_gives_apts_own_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """apt-get update exits 0 when it cannot fetch: its W: line becomes the error (a mirror on
    this machine's loopback where nothing listens: connection refused)."""
    monkeypatch.setattr("dpas.vm.apt.host_mirror", lambda *args: "http://127.0.0.1:9/debian")
    with pytest.raises(VmError) as err:
        resolve_kernel("debian:sid", None, (), tmp_path / "kernels")
    assert str(err.value).startswith(
        "--kernel debian:sid: apt-get update failed: W: Failed to fetch http://127.0.0.1:9/"
    )
    assert "Could not connect" in str(err.value) and "\n" not in str(err.value)


# --- real boots (slow) ----------------------------------------------------------------------


@pytest.fixture(scope="session")
def kernels() -> Path:
    """The CLI's own kernel cache (~/.cache/dpas/vm/kernels), so a kernel is fetched once
    for every test session and every dpas run on this machine."""
    for tool in ("qemu-system-x86_64", "apt-get", "dpkg-deb", "busybox", "fio"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: .ci/run installs qemu-system-x86, busybox-static, fio")
    folder = runner.default_cache() / "kernels"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def cache(tmp_path: Path, kernels: Path) -> Path:
    """A cache folder of the test's own (work folders apart) sharing the kernels."""
    folder = tmp_path / "cache"
    folder.mkdir()
    (folder / "kernels").symlink_to(kernels, target_is_directory=True)
    return folder


@pytest.fixture(scope="session")
def sid_kernel(kernels: Path) -> GuestKernel:
    return resolve_kernel("debian:sid", None, (), kernels)


def bench(tmp_path: Path, cache: Path, kernel: str) -> dict:  # type: ignore[type-arg]
    out = run_dpas(
        "vm", "bench", "INT", "CP", "--jobs", "1", "--runtime", "2", "--json",
        "--kernel", kernel, "--out", str(tmp_path / "out"), "--cache", str(cache),
        timeout=1200,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def assert_cp_polled(data: dict) -> None:  # type: ignore[type-arg]
    runs = {r["mode"]: r for r in data["records"]}
    assert runs["INT"]["iops"] > 0 and runs["CP"]["iops"] > 0
    assert runs["INT"]["interrupts"] >= 0.9 * runs["INT"]["ios"]  # about one per I/O
    assert runs["CP"]["interrupts"] == 0  # every completion polled
    assert {r["kernel"] for r in data["records"]} == {data["kernel"]}


@pytest.mark.slow
def test_debians_newest_kernel_boots_and_cp_polls(
    tmp_path: Path, cache: Path, sid_kernel: GuestKernel
) -> None:
    """sid's split packages (linux-binary + linux-modules, .ko.xz), fetched with the private
    apt; 7.x's nvme modules and what they depend on load in the guest."""
    data = bench(tmp_path, cache, "debian:sid")
    assert data["kernel"] == sid_kernel.release and data["config"]["kernel"] == "debian:sid"
    assert int(data["kernel"].split(".")[0]) >= 7, data["kernel"]
    assert_cp_polled(data)


@pytest.mark.slow
def test_a_deb_in_the_labs_layout_boots_and_cp_polls(
    tmp_path: Path, sid_kernel: GuestKernel
) -> None:
    """Like the lab's linux-image-5.18.0-dpas_*.deb: boot/vmlinuz-<rel> and lib/modules/<rel>
    with plain .ko files (here sid's kernel and its nvme modules, decompressed)."""
    assert sid_kernel.modules is not None
    release = sid_kernel.release
    root = tmp_path / "pkg"
    (root / "boot").mkdir(parents=True)
    shutil.copy(sid_kernel.image, root / "boot" / f"vmlinuz-{release}")
    modules = root / "lib/modules" / release
    for path in module_order(sid_kernel.modules):
        target = modules / path.relative_to(sid_kernel.modules).parent / module_file_name(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(module_bytes(path))
    deb = build_deb(root, tmp_path / f"linux-image-{release}-lab_1.0_amd64.deb", "linux-image-lab")
    own = tmp_path / "own-cache"  # each run's .deb differs: not into the shared cache
    data = bench(tmp_path, own, str(deb))
    assert data["kernel"] == release and (own / "kernels").is_dir()
    assert_cp_polled(data)


@pytest.mark.slow
def test_a_bzimage_without_its_modules_is_a_guest_with_no_nvme_driver(
    tmp_path: Path, cache: Path, sid_kernel: GuestKernel
) -> None:
    """nvme is a module of Debian's kernel: booted alone, the guest never sees the drive and
    says so, and dpas turns that into one line (after 20 s of waiting in the guest)."""
    out = run_dpas(
        "vm", "bench", "INT", "--jobs", "1", "--runtime", "1", "--kernel",
        str(sid_kernel.image), "--cache", str(cache), "--out", str(tmp_path / "out"),
        timeout=600,
    )  # fmt: skip
    assert out.returncode == 2
    (line,) = out.stderr.strip().splitlines()
    assert (
        f"the guest kernel {sid_kernel.release} has no NVMe driver (no nvme module and "
        "/sys/block/nvme0n1 never appeared); console log at " in line
    )
