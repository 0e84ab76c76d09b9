"""dpas's compiled parts; everything else is pyproject.toml. Both are optional: without a C
compiler, Python's headers or mypyc, dpas still installs and runs.

- dpas.engine._engine (src/dpas/engine/_engine.c): the engine's hot loop. Without it the
  engine says what is missing when asked to run (dpas.engine.native).
- The simulator's hot modules (dpas.compiled.MODULES), compiled with mypyc: about twice as
  fast. Without them, or if their compile fails, they run as Python. Beside them goes a
  manifest of their sources' hashes (dpas.compiled.MANIFEST), from which dpas tells whether
  the compiled code is still that of the sources (dpas/compiled.py).
"""

from __future__ import annotations

import contextlib
import io
import os
import runpy
import sys
import traceback
from pathlib import Path
from typing import Any

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

#: dpas/compiled.py, run without importing dpas (not importable while it builds): the list of
#: compiled modules, the group's name and the manifest live there, in one place
COMPILED: dict[str, Any] = runpy.run_path(os.path.join("src", "dpas", "compiled.py"))
#: mypyc's generated C and its mypy cache, apart from the developer's own .mypy_cache
MYPYC_DIR = os.path.join("build", "mypyc")
SOURCES = Path("src")


def mypyc_extensions() -> tuple[list[Extension], str | None]:
    """The compiled set's extensions, or none and why: mypyc missing, or its type check or
    code generation failing (it exits on errors), must not fail the install."""
    try:
        from mypyc.build import mypycify
    except ImportError as e:
        return [], f"mypyc is not installed ({e})"
    paths = [str(COMPILED["source"](m, SOURCES)) for m in COMPILED["MODULES"]]
    options = ["--ignore-missing-imports", "--cache-dir", os.path.join(MYPYC_DIR, "cache")]
    said = io.StringIO()
    try:
        with contextlib.redirect_stdout(said):
            extensions = mypycify(
                [*options, *paths], group_name=COMPILED["GROUP"], target_dir=MYPYC_DIR
            )
    except SystemExit:  # mypyc's way out after printing the type errors
        errors = [line for line in said.getvalue().splitlines() if ": error:" in line]
        return [], f"mypyc failed: {errors[0] if errors else said.getvalue().strip()}"
    except Exception as e:
        traceback.print_exc()
        return [], f"mypyc failed: {type(e).__name__}: {e}"
    finally:
        sys.stderr.write(said.getvalue())
    return extensions, None


def placeholders() -> list[Extension]:
    """The compiled set's extensions, named but without sources: setuptools knows them from
    the start, mypyc fills them in only when they are built (see BuildExt)."""
    names = [COMPILED["LIBRARY"], *COMPILED["MODULES"]]
    return [Extension(name, sources=[], optional=True) for name in names]


class BuildExt(build_ext):
    """build_ext plus the mypyc set and its manifest, written where the built modules go.

    mypyc type-checks and generates C only when extensions are built: setuptools finalizes
    build_ext for metadata and sdists too, and there the set's placeholders cost nothing.
    """

    def initialize_options(self) -> None:
        super().initialize_options()
        self.mypyc_error: str | None = "build_ext built no extension"
        self.mypyc_manifest = ""
        self.mypyc_built: set[str] = set()

    def build_extensions(self) -> None:
        # the sources' hashes before mypyc reads them: a source edited while it compiles
        # then differs from its hash, and dpas runs it as Python rather than the old code
        self.mypyc_manifest = COMPILED["manifest_text"](SOURCES)
        self.mypyc_error = self.fill_mypyc()
        super().build_extensions()

    def fill_mypyc(self) -> str | None:
        """Give the placeholders mypyc's sources and flags; without them (the error said),
        drop the placeholders, so nothing of the set is built or installed."""
        mine = {e.name: e for e in self.extensions if e.name in self.mypyc_names()}
        made, error = mypyc_extensions()
        if not error and sorted(e.name for e in made) != sorted(mine):
            error = f"mypyc made {sorted(e.name for e in made)}, not {sorted(mine)}"
        if error:
            print(f"dpas: the simulator stays pure Python: {error}", file=sys.stderr)
            self.extensions = [e for e in self.extensions if e.name not in mine]
            return error
        for ext in made:
            public = {k: v for k, v in vars(ext).items() if not k.startswith("_") and k != "name"}
            vars(mine[ext.name]).update(public, optional=True)
        return None

    def mypyc_names(self) -> set[str]:
        return {COMPILED["LIBRARY"], *COMPILED["MODULES"]}

    def build_extension(self, ext: Extension) -> None:
        super().build_extension(ext)  # an optional extension's failure raises, caught above
        self.mypyc_built.add(ext.name)

    def run(self) -> None:
        super().run()
        error = self.mypyc_error
        failed = sorted(self.mypyc_names() - self.mypyc_built)
        if failed and not error:
            error = f"the C compile of {', '.join(failed)} failed"
            print(f"dpas: the simulator stays pure Python: {error}", file=sys.stderr)
        text = COMPILED["manifest_text"](SOURCES, error) if error else self.mypyc_manifest
        for path in self.manifest_paths():
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as f:
                f.write(text)

    def manifest_paths(self) -> list[str]:
        """build_lib's (a wheel's), and with --inplace (an editable install) the source
        tree's, which is what runs."""
        paths = [os.path.join(self.build_lib, "dpas", COMPILED["MANIFEST"])]
        if self.inplace:
            package_dir = self.get_finalized_command("build_py").get_package_dir("dpas")
            paths.append(os.path.join(package_dir, COMPILED["MANIFEST"]))
        return paths

    def get_outputs(self) -> list[str]:
        return [*super().get_outputs(), *self.manifest_paths()[:1]]


setup(
    cmdclass={"build_ext": BuildExt},
    ext_modules=[
        Extension(
            "dpas.engine._engine",
            sources=[
                "src/dpas/engine/_engine.c",
                "src/dpas/engine/policy_core.c",
                "src/dpas/engine/replay.c",
            ],
            depends=["src/dpas/engine/policy_core.h", "src/dpas/engine/replay.h"],
            extra_compile_args=["-O2", "-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter"],
            extra_link_args=["-pthread"],
            optional=True,
        ),
        *placeholders(),
    ],
)
