"""``--kernel build:DIR``: any kernel source tree on disk, built from a copy in the cache.

The fast tests build a tree of the test's own: a top Makefile with the kernel's version lines
and the targets dpas calls (tinyconfig, olddefconfig, bzImage, mrproper, honouring O=), and
its merge_config.sh, so every step runs for real through make. The slow test builds Debian's
linux-source-7.2 unpacked into a folder and boots it (tests/test_vm_build.py builds its
pristine tree first).
"""

from __future__ import annotations

import difflib
import hashlib
import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from conftest import need

from dpas.vm import build
from dpas.vm.build import build_dir, kernel_tree_version, tree_key
from dpas.vm.kernel import VmError, image_release
from dpas.vm.kernels import parse_kernel

MAKEFILE = """VERSION = 6
PATCHLEVEL = 9
SUBLEVEL = 1
EXTRAVERSION =

tinyconfig:
\t@mkdir -p $(O) && : > $(O)/.config

olddefconfig:
\t@{olddefconfig}

bzImage:
\t@echo "  CC      init/main.o"
\t@echo built >> {counter}
\t@{compile}
\t@mkdir -p $(O)/arch/x86/boot
\t@python3 {here}/mkimage.py $(O)/arch/x86/boot/bzImage 6.9.1$(EXTRAVERSION)

mrproper:
\t@rm -f .config
"""
MERGE = '#!/bin/bash\n# -m -O DIR BASE FRAGMENT\ncat "$4" "$5" > "$3/.merged" && mv "$3/.merged" "$3/.config"\n'
MKIMAGE = """import struct, sys
data = bytearray(0x400)
data[0x202:0x206] = b"HdrS"
struct.pack_into("<H", data, 0x20E, 0x100)
release = (sys.argv[2] + " (dpas@dpas) #1").encode()
data[0x300:0x300 + len(release)] = release
open(sys.argv[1], "wb").write(bytes(data))
"""


def kernel_tree(
    root: Path, counter: Path, olddefconfig: str = "true", compile_: str = "true"
) -> Path:
    """A tree dpas takes for a kernel's: its build writes a bzImage whose release is 6.9.1."""
    tree = root / "linux"
    (tree / "arch" / "x86").mkdir(parents=True)
    (tree / "scripts" / "kconfig").mkdir(parents=True)
    (tree / "init").mkdir()
    (tree / "Kconfig").write_text("mainmenu test\n")
    (tree / "init" / "version.c").write_text("line one\nline two\nline three\n")
    (tree / "scripts" / "kconfig" / "merge_config.sh").write_text(MERGE)
    (tree / "mkimage.py").write_text(MKIMAGE)
    text = MAKEFILE.format(
        olddefconfig=olddefconfig, counter=counter, compile=compile_, here="$(CURDIR)"
    )
    (tree / "Makefile").write_text(text)
    return tree


def digest(tree: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in tree.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(tree)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


@pytest.fixture
def tools(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fake trees need make and python3 only: the kernel's own packages are not asked."""
    monkeypatch.setattr(build, "missing_packages", lambda: [])
    monkeypatch.setattr(build, "TREE_GB", 0.01)


pytestmark = pytest.mark.usefixtures("tools")


def test_a_tree_builds_from_a_copy_once_and_the_users_tree_stays_as_it_was(
    tmp_path: Path,
) -> None:
    counter = tmp_path / "builds"
    tree = kernel_tree(tmp_path / "user", counter)
    before = digest(tree)
    said: list[str] = []
    kernel = build_dir(tree, (), tmp_path / "cache", said.append)
    assert kernel.release == "6.9.1" and kernel.modules is None
    assert image_release(kernel.image) == "6.9.1"
    assert digest(tree) == before and not (tree / "build").exists()
    assert counter.read_text() == "built\n"
    assert any("a 6.9.1 kernel tree" in line for line in said)
    # every option dpas needs went through the tree's own configuration
    config = (kernel.image.parent / "config").read_text()
    assert all(f"CONFIG_{name}=y" in config for name in build.OPTIONS)
    # the same tree again: the cached image, nothing built
    assert build_dir(tree, (), tmp_path / "cache") == kernel
    assert counter.read_text() == "built\n"


def test_a_changed_tree_is_built_again(tmp_path: Path) -> None:
    counter = tmp_path / "builds"
    tree = kernel_tree(tmp_path / "user", counter)
    first = build_dir(tree, (), tmp_path / "cache")
    time.sleep(0.01)
    (tree / "init" / "version.c").write_text("line one\nline two, changed\nline three\n")
    second = build_dir(tree, (), tmp_path / "cache")
    assert second.image != first.image
    assert counter.read_text() == "built\nbuilt\n"


def test_a_patch_goes_to_a_copy(tmp_path: Path) -> None:
    counter = tmp_path / "builds"
    tree = kernel_tree(tmp_path / "user", counter)
    before = digest(tree)
    original = (tree / "Makefile").read_text()
    patched = original.replace("EXTRAVERSION =\n", "EXTRAVERSION = -fixed\n", 1)
    patch = tmp_path / "extra.patch"
    lines = [text.splitlines(keepends=True) for text in (original, patched)]
    patch.write_text("".join(difflib.unified_diff(*lines, "a/Makefile", "b/Makefile")))
    kernel = build_dir(tree, (patch,), tmp_path / "cache")
    assert kernel.release == "6.9.1-fixed"
    assert digest(tree) == before


def test_a_clean_git_checkout_is_known_by_its_tree_id(tmp_path: Path) -> None:
    need(shutil.which("git"), "git is not installed: apt-get install git")
    tree = kernel_tree(tmp_path / "user", tmp_path / "builds")
    git = ["git", "-C", str(tree), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "tree"], check=True)
    tree_id = subprocess.run(
        [*git, "rev-parse", "HEAD^{tree}"], check=True, capture_output=True, text=True
    ).stdout.strip()
    assert tree_key(tree) == f"git{tree_id[:16]}"
    (tree / "include").mkdir()
    (tree / "include" / "missing.h").write_text("")  # an untracked file is a change
    assert tree_key(tree).startswith("files")


def test_a_tree_built_in_place_is_cleaned_in_the_copy_only(tmp_path: Path) -> None:
    tree = kernel_tree(tmp_path / "user", tmp_path / "builds")
    (tree / ".config").write_text("CONFIG_OLD=y\n")
    build_dir(tree, (), tmp_path / "cache")
    assert (tree / ".config").read_text() == "CONFIG_OLD=y\n"


def test_not_a_kernel_tree(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "Makefile").write_text("all:\n\ttrue\n")
    with pytest.raises(VmError) as err:
        build_dir(tmp_path / "src", (), tmp_path / "cache")
    assert str(err.value) == (
        f"build:{tmp_path / 'src'}: not a kernel source tree (expected a top Makefile with "
        "VERSION, PATCHLEVEL and SUBLEVEL, a Kconfig and arch/x86)"
    )
    assert not (tmp_path / "cache").exists()


def test_an_option_the_tree_cannot_take_is_named(tmp_path: Path) -> None:
    tree = kernel_tree(
        tmp_path / "user",
        tmp_path / "builds",
        olddefconfig="sed -i /CONFIG_IO_URING/d $(O)/.config",
    )
    with pytest.raises(VmError, match=r"dropped CONFIG_IO_URING \(olddefconfig"):
        build_dir(tree, (), tmp_path / "cache")


def test_a_build_failure_names_its_first_error_and_the_log(tmp_path: Path) -> None:
    failing = "echo '../init/main.c:3:1: error: unknown type name' >&2; false"
    tree = kernel_tree(tmp_path / "user", tmp_path / "builds", compile_=failing)
    with pytest.raises(VmError) as err:
        build_dir(tree, (), tmp_path / "cache")
    message = str(err.value)
    assert message.startswith(f"build:{tree}: make bzImage failed (")
    assert "main.c:3:1: error: unknown type name" in message and "\n" not in message
    log = Path(message.rsplit("; see ", 1)[1])
    assert "unknown type name" in log.read_text()


def test_the_spec_forms() -> None:
    assert parse_kernel("build:7.2").version == "7.2"
    with pytest.raises(VmError, match="expected build:MAJOR.MINOR .* or build:DIR"):
        parse_kernel("build:seven")
    with pytest.raises(VmError, match="is not a folder"):
        parse_kernel("build:/no/such/tree")


def test_a_folder_is_a_tree_spec(tmp_path: Path) -> None:
    tree = kernel_tree(tmp_path, tmp_path / "builds")
    spec = parse_kernel(f"build:{tree}", patches=())
    assert spec.kind == "build" and spec.path == tree and spec.version is None
    assert kernel_tree_version(tree) == "6.9.1"


@pytest.mark.slow
def test_debians_source_unpacked_into_a_folder_builds_and_boots(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The issue's test: Debian's linux-source-7.2, unpacked into a folder of its own, built
    with build:DIR and booted: the guest runs INT and CP on it."""
    from conftest import run_dpas
    from test_vm_build import _build_cache, _slow_tools, _version

    _slow_tools()
    cache = _build_cache()
    version = _version(cache)
    source = build.source_tree(version, cache) or build._tree(version, cache, lambda _: None)
    tree = tmp_path / f"linux-{version}"
    tree.mkdir()
    pipe = f"tar -C {source} --exclude=./build -cf - . | tar -C {tree} -xf -"
    subprocess.run(["bash", "-c", f"set -o pipefail; {pipe}"], check=True)
    out = run_dpas(
        "vm", "bench", "INT", "CP", "--kernel", f"build:{tree}", "--jobs", "1",
        "--runtime", "1", "--out", str(tmp_path / "out"), timeout=1800,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"a {version}." in " ".join((out.stdout + out.stderr).split())
    records = json.loads((tmp_path / "out" / "results.json").read_text())["records"]
    assert {r["mode"] for r in records} == {"INT", "CP"}
    assert all(r["kernel"].startswith(f"{version}.") and r["ios"] > 0 for r in records)
    assert not (tree / "build").exists()
