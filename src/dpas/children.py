"""Child processes that end with dpas, whatever ends dpas.

A SIGKILLed parent runs no cleanup, so the kernel has to do it: PR_SET_PDEATHSIG asks it to
send the child SIGKILL when the parent goes. Used for the simulator's pool workers and for
the tools dpas runs (fio, QEMU).
"""

from __future__ import annotations

import ctypes
import os
import signal
from collections.abc import Callable
from functools import partial

PR_SET_PDEATHSIG = 1


def die_with(parent: int) -> None:
    """In the child: be killed when ``parent`` dies, and die now if it already has."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: nothing the kernel can do for us
        return
    if os.getppid() != parent:  # the parent died before the request was made
        os._exit(1)


def dying_with_me() -> Callable[[], None]:
    """A function for a child to call first (an initializer, a preexec_fn): it ties the
    child's life to this process."""
    return partial(die_with, os.getpid())  # a partial pickles, for a spawning pool
