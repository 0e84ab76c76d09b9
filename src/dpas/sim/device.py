"""The NVMe device: latency per op from the profile, a few commands in service at once."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from typing import Protocol

import numpy as np

from dpas.policy import Op
from dpas.sim.engine import Engine
from dpas.sim.profile import DeviceProfile
from dpas.sim.transfer import transfer_ns


class Draws:
    """Values drawn from a seeded generator in blocks and handed out one at a time.

    Drawing in blocks keeps numpy's per-call cost off the per-I/O path; the order of use is
    fixed by the simulation, so the same seed gives the same run.
    """

    __slots__ = ("_draw", "_values", "_next")

    def __init__(self, draw: Callable[[int], np.ndarray], block: int = 8192) -> None:
        self._draw = lambda: draw(block).tolist()
        self._values: list[float] = []
        self._next = 0

    def __call__(self) -> float:
        if self._next == len(self._values):
            self._values, self._next = self._draw(), 0
        value = self._values[self._next]
        self._next += 1
        return value


class Command(Protocol):
    """What the device serves: an op, a size, and who to tell when it is done."""

    op: Op
    size: int

    def device_done(self) -> None: ...


class Device:
    """A controller that takes one command at a time (serial_ns), then media that serve up
    to ``parallelism`` commands at once for the rest of the device time; a command waits for
    a free slot when all are held.

    An emulated drive is mostly controller (QEMU's single emulation thread); a real SSD is
    mostly media (many flash dies in parallel).
    """

    def __init__(self, engine: Engine, profile: DeviceProfile, rng: np.random.Generator) -> None:
        self.engine = engine
        self.profile = profile
        sigma = math.sqrt(math.log1p(profile.cv**2))
        mu = -sigma * sigma / 2  # a multiplier of mean 1

        def multipliers(n: int) -> np.ndarray:
            body = rng.lognormal(mu, sigma, n)
            return np.where(rng.random(n) < profile.tail_p, body * profile.tail_x, body)

        self._multiplier = Draws(multipliers)
        # the controller's time per command varies as the emulation thread's work does
        self._serial = (
            Draws(
                lambda n: rng.gamma(
                    1 / profile.serial_cv**2, profile.serial_ns * profile.serial_cv**2, n
                )
            )
            if profile.serial_cv > 0
            else (lambda: float(profile.serial_ns))
        )
        #: transfer time beyond 4 KiB by command size (a run uses one or two sizes)
        self._transfer: dict[int, float] = {}
        self.controller_free = 0
        #: commands holding a media slot (from the controller on, or from submission when
        #: they took one at once)
        self.holding = 0
        self.waiting: deque[Command] = deque()

    def media_ns(self, op: Op, size: int) -> int:
        p = self.profile
        base = (p.read_ns if op is Op.READ else p.write_ns) - p.serial_ns
        extra = self._transfer.get(size)
        if extra is None:
            extra = self._transfer[size] = transfer_ns(p, size)
        return round(base * (p.floor + (1 - p.floor) * self._multiplier()) + extra)

    def submit(self, cmd: Command) -> None:
        """The controller takes commands in order, one serial_ns each, then the media.

        A command that finds a media slot free (and nobody waiting for one) takes it at once:
        nothing can take it before the controller is done, so its completion is known now and
        costs one event. Otherwise it asks for a slot when the controller is done with it."""
        start = max(self.engine.now, self.controller_free)
        self.controller_free = start + round(self._serial())
        if self.holding < self.profile.parallelism and not self.waiting:
            media = self._media(cmd)
            self.engine.at(self.controller_free + media, self._done, cmd)
        else:
            self.engine.at(self.controller_free, self._to_media, cmd)

    def _to_media(self, cmd: Command) -> None:
        if self.holding < self.profile.parallelism:
            self.engine.at(self.engine.now + self._media(cmd), self._done, cmd)
        else:
            self.waiting.append(cmd)

    def _media(self, cmd: Command) -> int:
        """Take a media slot: the media time, longer by ``contention`` for each other command
        holding one (their transfers share the controller's channels and the link)."""
        others = self.holding
        self.holding += 1
        media = self.media_ns(cmd.op, cmd.size)
        if others and self.profile.contention:
            media += round(media * self.profile.contention * others)
        return media

    def _done(self, cmd: Command) -> None:
        self.holding -= 1
        if self.waiting:
            self._to_media(self.waiting.popleft())
        cmd.device_done()
