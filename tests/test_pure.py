"""Tests marked pure, run on the .py sources where dpas's hot modules are compiled.

They patch or subclass policy and simulator classes, which mypyc's compiled classes do not
allow (dpas.compiled); conftest skips them in a compiled process, and this runs them again in
one with DPAS_PURE_PYTHON=1, so they are never lost.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import PURE_ALREADY

from dpas import compiled


def test_the_pure_marked_tests_pass_on_the_python_sources() -> None:
    if not compiled.active():
        pytest.skip(PURE_ALREADY)  # by design: CI lets it through (conftest.BY_DESIGN)
    tests = Path(__file__).parent
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "pure", str(tests)],
        env={**os.environ, "DPAS_PURE_PYTHON": "1"},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout[-3000:]
    assert " passed" in done.stdout and "skipped" not in done.stdout, done.stdout[-3000:]
