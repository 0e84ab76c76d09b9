"""A Python for the guest: this host's interpreter, the packages dpas's in-guest code imports,
and their shared libraries, at the same absolute paths as here.

Why this and not a zipapp or a second Python build: the interpreter finds its standard
library from its own location, so copying both to the same paths needs no configuration, and
the guest runs exactly the dpas code (and numpy) that the host runs. Only the top-level
packages the in-guest entry point imports go in (about 70 MB with numpy, not the 250 MB of a
whole library), found by importing it in a child interpreter and listing its modules.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from dpas.vm.kernel import VmError

#: the in-guest entry point; everything it imports, and every package those come from
ENTRY = "dpas.vm.inguest"
#: packages never needed in the guest, whatever imports them
SKIP = {"test", "tests", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3", "pydoc_data"}

_LIST_PACKAGES = f"""
import json, sys
import {ENTRY}
{ENTRY}.preload()
tops = {{}}
for name in list(sys.modules):
    top = sys.modules.get(name.split(".")[0])
    where = getattr(top, "__path__", None) or [getattr(top, "__file__", None)]
    if where and where[0]:
        tops[name.split(".")[0]] = list(where)[0]
print(json.dumps(tops))
"""


@dataclass(frozen=True, slots=True)
class GuestPython:
    """What goes into the initramfs, and how the guest runs it."""

    interpreter: Path
    files: tuple[Path, ...]  # host paths, copied to the same guest paths
    pythonpath: str  # the folders holding the packages that are not in the standard library

    def command(self, *args: str) -> str:
        """A guest shell command running the entry point."""
        env = f"PYTHONPATH={self.pythonpath} PYTHONDONTWRITEBYTECODE=1 PYTHONNOUSERSITE=1"
        return f"{env} {self.interpreter} -m {ENTRY} {' '.join(args)}"


def interpreter() -> Path:
    """The real interpreter behind a venv's python (a venv's own folder is not needed)."""
    return Path(os.path.realpath(getattr(sys, "_base_executable", sys.executable)))


def packages() -> dict[str, Path]:
    """Top-level package name -> its folder (or module file), from a clean child interpreter."""
    done = subprocess.run(
        [str(interpreter()), "-c", _LIST_PACKAGES],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)},
    )
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise VmError(f"cannot list the guest's Python packages: {last}")
    return {name: Path(path) for name, path in json.loads(done.stdout).items()}


def guest_python() -> GuestPython:
    python = interpreter()
    stdlib = Path(os.__file__).resolve().parent
    tops = {name: path.resolve() for name, path in packages().items() if name not in SKIP}
    wanted = set(tops.values()) | {stdlib / "os.py", stdlib / "encodings", stdlib / "site.py"}
    for path in list(wanted):
        libs = path.parent / f"{path.name}.libs"  # numpy.libs and the like (auditwheel)
        if libs.is_dir():
            wanted.add(libs)
    files = {python}
    for top in wanted:
        for path in [top] if top.is_file() else top.rglob("*"):
            inside = path.relative_to(top).parts if path != top else ()
            if SKIP.isdisjoint(inside) and path.suffix not in (".pyi", ".c", ".h", ".pxd"):
                if path.is_file():
                    files.add(path)
    outside = sorted({str(p.parent) for p in tops.values() if stdlib not in p.parents})
    return GuestPython(python, tuple(sorted(files)), ":".join(outside))
