"""Stopping a run on a signal without leaving anything behind.

While ``stopping()`` is active, SIGINT, SIGTERM, SIGHUP and SIGQUIT do not raise: the handler
kills every child's process group (fio and its job processes, QEMU) and records the signal. The
run sees it at its next ``check()``, raises ``Stopped``, and its ``finally`` blocks restore the
knobs. Because the handler never raises, a second signal cannot cut a restore short: it is
only recorded again.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

from dpas.children import dying_with_me
from dpas.errors import DpasError

CAUGHT = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)


class Stopped(DpasError):
    """A signal asked the run to stop; by the time this reaches the user, knobs are back."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        name = signal.Signals(signum).name
        super().__init__(f"stopped by {name}: fio ended, every knob restored as found")

        self.exit_code = 128 + signum


class _State:
    """Process-wide, as signals are: the signal seen and the process groups to end."""

    signum: int | None = None
    groups: set[int] = set()
    #: stopping() blocks open: a sweep of runs holds one around each run's own
    depth = 0


def _handle(signum: int, frame: FrameType | None) -> None:
    if _State.signum is None:
        _State.signum = signum
    for group in list(_State.groups):
        _kill(group)


def _kill(group: int) -> None:
    try:
        os.killpg(group, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


@contextmanager
def stopping() -> Iterator[None]:
    """Catch the stopping signals for the duration of a run (main thread only). Nested, the
    inner block keeps a signal the outer one saw (a sweep's runs each hold one of their own)."""
    previous = {s: signal.signal(s, _handle) for s in CAUGHT}
    if _State.depth == 0:
        _State.signum = None
    _State.depth += 1
    try:
        yield
    finally:
        _State.depth -= 1
        if _State.signum is None:
            for s, handler in previous.items():
                signal.signal(s, handler)
        else:  # on its way out: later signals are ignored, so that it can say what it did
            for s in CAUGHT:  # (ignored, not blocked: blocking would miss other threads)
                signal.signal(s, signal.SIG_IGN)


def stopped() -> Stopped | None:
    """The stop a signal asked for, if one came."""
    return None if _State.signum is None else Stopped(_State.signum)


def check() -> None:
    """Raise Stopped if a signal came; called between the steps of a run."""
    if _State.signum is not None:
        raise Stopped(_State.signum)


def run_child(
    argv: list[str],
    timeout: float,
    alive: Callable[[], bool] | None = None,
    **popen: object,
) -> subprocess.CompletedProcess[str]:
    """``subprocess.run`` in a process group of its own, which a signal, a timeout or any
    exception here ends as a whole (fio's job processes with it); a SIGKILLed dpas takes
    the child with it. ``alive`` is asked every second: False ends the child as a timeout
    does (TimeoutExpired), before ``timeout`` (a guest stuck in one of its runs)."""
    proc = subprocess.Popen(  # type: ignore[call-overload]
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
        start_new_session=True,
        preexec_fn=dying_with_me(),
        **popen,
    )
    _State.groups.add(proc.pid)
    try:
        if _State.signum is not None:  # the signal came while it was starting
            _kill(proc.pid)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                out, err = proc.communicate(timeout=max(min(left, 1.0), 0.0) if alive else left)
                break
            except subprocess.TimeoutExpired:
                if time.monotonic() >= deadline or (alive is not None and not alive()):
                    raise
    finally:
        _State.groups.discard(proc.pid)
        _kill(proc.pid)  # stragglers: job processes fio left behind
        proc.kill()
        proc.wait()
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)
