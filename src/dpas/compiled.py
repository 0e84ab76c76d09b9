"""The simulator's hot modules compiled with mypyc, and the way back to their .py sources.

setup.py compiles ``MODULES`` with mypyc into one group (shared library ``LIBRARY``), about
twice as fast as CPython runs them, and writes ``MANIFEST`` beside this file: a hash of each
source as it was compiled. dpas then imports the compiled modules, unless

- ``DPAS_PURE_PYTHON=1``: the .py sources, for debugging, profiling or comparing;
- a source changed since it was compiled (a developer edited host.py and did not reinstall):
  the .py sources, said once on stderr, so nobody runs the old code by mistake;
- the compile did not happen or failed (no mypyc, no C compiler): the .py sources, silently.

All or nothing: the compiled modules call each other's classes natively, so a mix of
compiled and interpreted modules of the set is never loaded. The decision is taken once per
process, when the first module of the set is imported (or ``active()`` is asked).

setup.py runs this file with runpy (dpas itself is not importable while it builds), so it
imports nothing from dpas and does nothing when run.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.abc import MetaPathFinder
from importlib.machinery import EXTENSION_SUFFIXES, ModuleSpec, SourceFileLoader
from importlib.util import spec_from_file_location
from pathlib import Path
from types import ModuleType

#: The modules mypyc compiles: the one list setup.py and the import switch share. The
#: simulator's loop and the policy it calls for every I/O: together about 2.3 times CPython.
MODULES = (
    "dpas.sim.engine",
    "dpas.sim.device",
    "dpas.sim.host",
    "dpas.policy.base",
    "dpas.policy.request",
    "dpas.policy.rules",
    "dpas.policy.windows",
    "dpas.policy.classic",
    "dpas.policy.lhp",
    "dpas.policy.ehp",
    "dpas.policy.pas",
    "dpas.policy.pas_update",
    "dpas.policy.switch",
    "dpas.policy.dpas",
    "dpas.workload.pacer",
)
#: mypyc's group name. Its shared library, dpas_sim__mypyc, is a top-level module beside the
#: dpas package (src/ in an editable install, site-packages otherwise): mypyc derives its
#: modules' __file__ from the library's folder, right only at the top.
GROUP = "dpas_sim"
LIBRARY = GROUP + "__mypyc"
#: Written by setup.py next to this file, ignored by git.
MANIFEST = "compiled.json"
#: Set to 1 to run the simulator from its .py sources.
PURE_ENV = "DPAS_PURE_PYTHON"

#: The folder that holds the dpas package (src/ or site-packages), the modules' and the
#: library's; the manifest is in the package, beside this file.
BASE = Path(__file__).resolve().parent.parent


def source(module: str, base: Path = BASE) -> Path:
    """A module's .py file under ``base``."""
    return base.joinpath(*module.split(".")).with_suffix(".py")


def digest(path: Path) -> str:
    """sha256 of a file's bytes: what tells a source from the one that was compiled."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def manifest_text(base: Path = BASE, error: str | None = None) -> str:
    """The manifest setup.py writes: each compiled module's source hash, or why the compile
    failed (then no module is compiled and dpas runs them as Python)."""
    modules = {} if error else {m: digest(source(m, base)) for m in MODULES}
    body = {"library": LIBRARY, "modules": modules, "error": error}
    return json.dumps(body, indent=1, sort_keys=True) + "\n"


@dataclass(frozen=True, slots=True)
class Status:
    """Whether the compiled set is in use, and why not if it is not."""

    active: bool
    reason: str
    #: a line for stderr when the user would expect compiled code and does not get it
    notice: str | None = None


def _shown(path: Path) -> str:
    """A path as the user knows it: relative to the working directory if under it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _has_extension(module: str, base: Path) -> bool:
    stem = base.joinpath(*module.split("."))
    return any(stem.with_name(stem.name + suffix).is_file() for suffix in EXTENSION_SUFFIXES)


def _read_manifest(base: Path) -> dict[str, object] | None:
    try:
        data = json.loads((base / "dpas" / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def decide(base: Path = BASE, environ: dict[str, str] | None = None) -> Status:
    """Compiled or pure, from the environment, the manifest and the files under ``base``."""
    env = os.environ if environ is None else environ
    if env.get(PURE_ENV, "") not in ("", "0"):
        return Status(False, f"{PURE_ENV}={env[PURE_ENV]}")
    data = _read_manifest(base)
    if data is None:
        return Status(False, "not compiled (no manifest: dpas was installed without mypyc)")
    if data.get("error"):
        return Status(False, f"not compiled: {data['error']}")
    modules = data.get("modules")
    if not isinstance(modules, dict) or sorted(modules) != sorted(MODULES):
        return _stale("the list of compiled modules changed since they were compiled")
    changed = [source(m, base) for m in MODULES if _source_digest(m, base) != modules[m]]
    if changed:
        names = " and ".join(_shown(p) for p in changed)
        verb = "changed since it was" if len(changed) == 1 else "changed since they were"
        return _stale(f"{names} {verb} compiled")
    missing = [m for m in (*MODULES, LIBRARY) if not _has_extension(m, base)]
    if missing:
        return _stale(f"the compiled files of {', '.join(missing)} are missing")
    return Status(True, "compiled")


def _source_digest(module: str, base: Path) -> str | None:
    try:
        return digest(source(module, base))
    except OSError:
        return None


def _stale(what: str) -> Status:
    notice = f"dpas: {what}; the simulator runs as pure Python (pip install -e . compiles it again)"
    return Status(False, what, notice)


_status: Status | None = None


def status() -> Status:
    """This process's decision, taken on first use and then kept (all or nothing)."""
    global _status
    if _status is None:
        _status = decide()
        if _status.notice:
            print(_status.notice, file=sys.stderr)
    return _status


def active() -> bool:
    """Whether the simulator runs compiled (mypyc) in this process."""
    return status().active


def mode() -> str:
    """ "compiled" or "python": which simulator this process runs, for results' context."""
    return "compiled" if active() else "python"


class SourceFinder(MetaPathFinder):
    """Loads the compiled set from its .py sources when the compiled set is not in use; when
    it is, lets the normal finders pick the compiled extension (they prefer it to the .py)."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname not in MODULES or status().active:
            return None
        file = str(source(fullname))
        return spec_from_file_location(fullname, file, loader=SourceFileLoader(fullname, file))


def install() -> None:
    """Put the finder first on sys.meta_path (once): dpas/__init__.py calls this before any
    module of the set can be imported."""
    if not any(isinstance(finder, SourceFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, SourceFinder())
