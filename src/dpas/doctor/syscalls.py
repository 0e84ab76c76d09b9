"""The few system calls the doctor makes directly: io_uring_setup, statx, timerfd (x86-64)."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
from dataclasses import dataclass

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.syscall.restype = ctypes.c_long

#: system call numbers; the doctor reports "not probed" on other architectures
SYSCALLS = {"x86_64": {"io_uring_setup": 425, "statx": 332}}
IORING_SETUP_IOPOLL = 1 << 0
IORING_SETUP_HYBRID_IOPOLL = 1 << 17
STATX_WRITE_ATOMIC = 0x00010000
AT_FDCWD = -100


def _number(name: str) -> int | None:
    return SYSCALLS.get(platform.machine(), {}).get(name)


@dataclass(frozen=True, slots=True)
class SetupResult:
    accepted: bool
    errno: int  # 0 when accepted

    @property
    def reason(self) -> str:
        return "accepted" if self.accepted else os.strerror(self.errno)


def io_uring_setup(flags: int) -> SetupResult | None:
    """Create (and close) an io_uring instance with ``flags``; None where not probed."""
    number = _number("io_uring_setup")
    if number is None:
        return None
    params = ctypes.create_string_buffer(120)  # struct io_uring_params, zeroed
    ctypes.memmove(ctypes.addressof(params) + 8, ctypes.byref(ctypes.c_uint32(flags)), 4)
    fd = _libc.syscall(number, ctypes.c_uint(4), params)
    if fd < 0:
        return SetupResult(False, ctypes.get_errno())
    os.close(fd)
    return SetupResult(True, 0)


@dataclass(frozen=True, slots=True)
class AtomicWrite:
    unit_min: int
    unit_max: int
    segments_max: int


def statx_atomic_write(path: str) -> AtomicWrite | None | str:
    """The file's atomic-write limits (statx STATX_WRITE_ATOMIC): None when the kernel or
    file system reports none, a message when the call fails."""
    number = _number("statx")
    if number is None:
        return "statx not probed on this architecture"
    buf = ctypes.create_string_buffer(256)
    rc = _libc.syscall(
        number,
        ctypes.c_int(AT_FDCWD),
        path.encode(),
        ctypes.c_int(0),
        ctypes.c_uint(STATX_WRITE_ATOMIC),
        buf,
    )
    if rc < 0:
        return f"statx failed: {os.strerror(ctypes.get_errno())}"
    mask = int.from_bytes(buf.raw[0:4], "little")
    if not mask & STATX_WRITE_ATOMIC:
        return None
    raw = buf.raw
    return AtomicWrite(
        int.from_bytes(raw[168:172], "little"),
        int.from_bytes(raw[172:176], "little"),
        int.from_bytes(raw[176:180], "little"),
    )


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


class TimerFd:
    """A CLOCK_MONOTONIC timerfd: arm once, then block in read() until it fires."""

    def __init__(self) -> None:
        fd = _libc.timerfd_create(1, 0)  # CLOCK_MONOTONIC, blocking
        if fd < 0:
            raise OSError(ctypes.get_errno(), "timerfd_create")
        self.fd = fd

    def sleep(self, ns: int) -> None:
        spec = _Itimerspec(_Timespec(0, 0), _Timespec(ns // 1_000_000_000, ns % 1_000_000_000))
        if _libc.timerfd_settime(self.fd, 0, ctypes.byref(spec), None) < 0:
            raise OSError(ctypes.get_errno(), "timerfd_settime")
        os.read(self.fd, 8)

    def close(self) -> None:
        os.close(self.fd)
