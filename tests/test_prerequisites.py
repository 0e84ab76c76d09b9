"""conftest's rule for missing prerequisites: a skip outside CI, a failure under CI (.ci/run sets
CI), except the skips that are the design (conftest.BY_DESIGN)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CASES = """
import pytest
from conftest import BY_DESIGN, NO_ARTIFACT_TREE, need


def test_needs_what_is_missing():
    need(False, "no widget here: apt-get install widget")


@pytest.mark.skipif(True, reason="a skipif without its tool")
def test_marked_without_its_tool():
    pass


def test_skips_by_design():
    pytest.skip(BY_DESIGN[0])


@pytest.mark.skipif(True, reason=NO_ARTIFACT_TREE)
def test_marked_by_design():
    pass


def test_has_what_it_needs():
    need(True, "never said")
"""


def outcomes(tmp_path: Path, ci: str | None) -> dict[str, str]:
    """Each case's outcome (PASSED, SKIPPED, FAILED, ERROR) in a pytest of its own, with
    tests/conftest.py beside it, with CI set to ``ci`` or unset."""
    shutil.copy(Path(__file__).with_name("conftest.py"), tmp_path / "conftest.py")
    (tmp_path / "test_cases.py").write_text(CASES)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci is not None:
        env["CI"] = ci
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider", "test_cases.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    said: dict[str, str] = {}
    for line in done.stdout.splitlines():
        word, _, rest = line.partition(" ")
        if word in ("PASSED", "FAILED", "ERROR"):
            said[rest.split(" ")[0].removeprefix("test_cases.py::")] = word
        elif word == "SKIPPED":  # SKIPPED [1] test_cases.py:LINE: reason
            said[rest.split(": ", 1)[1]] = word
    return said


def test_outside_ci_a_missing_prerequisite_skips(tmp_path: Path) -> None:
    from conftest import BY_DESIGN, NO_ARTIFACT_TREE

    assert outcomes(tmp_path, None) == {
        "test_has_what_it_needs": "PASSED",
        "no widget here: apt-get install widget": "SKIPPED",
        "a skipif without its tool": "SKIPPED",
        BY_DESIGN[0]: "SKIPPED",
        NO_ARTIFACT_TREE: "SKIPPED",
    }


@pytest.mark.parametrize("ci", ["1", "true"])
def test_under_ci_it_fails_but_the_designed_skips_stay(tmp_path: Path, ci: str) -> None:
    from conftest import BY_DESIGN, NO_ARTIFACT_TREE

    assert outcomes(tmp_path, ci) == {
        "test_has_what_it_needs": "PASSED",
        "test_needs_what_is_missing": "FAILED",
        "test_marked_without_its_tool": "ERROR",  # a skipif mark decides at setup
        BY_DESIGN[0]: "SKIPPED",
        NO_ARTIFACT_TREE: "SKIPPED",
    }
