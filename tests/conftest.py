"""Drivers shared by the policy tests: they send events exactly as the API documents."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator

import pytest

from dpas.compiled import PURE_ENV

if "MUTANT_UNDER_TEST" in os.environ:
    # mutmut (its every process sets this) mutates the .py sources of modules mypyc compiled:
    # they must run, not the .so files copied beside them. Set before dpas.compiled decides.
    os.environ[PURE_ENV] = "1"

from dpas.policy import Io, Op, Policy, Request

#: the skips that are the design, not a missing prerequisite (CI lets these through): the
#: pure-marked tests in a compiled process (tests/test_pure.py runs them on the .py sources),
#: test_pure.py itself in a process already on the .py sources, and the artifact kernel's
#: stress test, which needs the artifact's own tree (DPAS_ARTIFACT_TREE; CI has none)
COMPILED_HERE = "runs on the .py sources in tests/test_pure.py (compiled here)"
PURE_ALREADY = "the .py sources run here: the pure-marked tests ran in this session"
NO_ARTIFACT_TREE = "the artifact's tree is not here: DPAS_ARTIFACT_TREE=PATH/DPAS_FAST26/kernel"
BY_DESIGN = (COMPILED_HERE, PURE_ALREADY, NO_ARTIFACT_TREE)


def in_ci() -> bool:
    """.ci/run sets CI: there a missing prerequisite is a failure, not a skip."""
    return bool(os.environ.get("CI"))


def need(condition: object, why: str) -> None:
    """The calling test's prerequisite: without it the test skips saying ``why`` (what is
    missing and how to get it), and under CI fails (pytest_runtest_makereport)."""
    if not condition:
        pytest.skip(why)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Under CI every skip but BY_DESIGN's fails: a test CI cannot run is one it did not pass
    (need(), a skipif mark and a bare pytest.skip alike)."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if not (report.skipped and in_ci()) or hasattr(report, "wasxfail"):
        return
    said = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    reason = said.removeprefix("Skipped: ")
    if reason in BY_DESIGN:
        return
    report.outcome = "failed"
    report.longrepr = f"CI: a missing prerequisite fails the test here, not skips it: {reason}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked pure patch or subclass classes mypyc compiled: skipped here where the
    compiled set is in use, and run by tests/test_pure.py on the .py sources."""
    from dpas import compiled

    if not compiled.active():
        return
    skip = pytest.mark.skip(reason=COMPILED_HERE)
    for item in items:
        if item.get_closest_marker("pure"):
            item.add_marker(skip)


def read_4k() -> Request:
    """A 4 KiB read (bucket 6). Built on call: nothing of dpas runs at import (mutmut needs it)."""
    return Request(Op.READ, 4096)


class Clock:
    """The caller's time, advanced by the tests (the policy never reads a clock)."""

    def __init__(self) -> None:
        self.now = 0

    def tick(self, ns: int = 10_000) -> int:
        self.now += ns
        return self.now


def overlapped(policy: Policy, clock: Clock, jobs: int, overslept: bool, cpu: int = 0) -> list[Io]:
    """``jobs`` I/Os on one CPU whose waits overlap: all start waiting, then all finish."""
    now = clock.tick()
    ios = [policy.on_submit(cpu, read_4k(), now) for _ in range(jobs)]
    for io in ios:
        if io.polled:
            policy.on_wait_start(io, now)
    for io in ios:
        if io.polled:
            policy.on_wait_end(io, now + io.sleep_ns)
    for io in ios:
        policy.on_complete(io, now + io.sleep_ns + 1_000, found_on_first_poll=overslept)
    return ios


def steps(
    policy: Policy, clock: Clock, count: int, jobs: int, overslept: bool, cpu: int = 0
) -> list[Io]:
    done: list[Io] = []
    for _ in range(count):
        done += overlapped(policy, clock, jobs, overslept, cpu)
    return done


def run_dpas(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """The dpas command as a real process: its exit code and streams as a user sees them."""
    return subprocess.run(
        [sys.executable, "-m", "dpas", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def fio() -> str:
    """Real fio: the README's test command installs it."""
    path = shutil.which("fio")
    if path is None:
        pytest.fail("fio is not installed: apt-get install -y fio (the README's test command does)")
    return path


@pytest.fixture(autouse=True)
def no_stop_left_over() -> Iterator[None]:
    """A test that stops a run with a signal leaves dpas.real.stop saying so (the process
    would end there); the next test starts without it."""
    yield
    from dpas.real import stop

    stop._State.signum = None
