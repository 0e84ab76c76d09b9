"""Everything an emulation run is configured with (the pages' parameters and the kernel's)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import Enum

import numpy as np

from dpas.emulate.ranges import RANGES, Range, check
from dpas.policy import Method, PasParams, PolicyConfig, SwitchParams


class Model(Enum):
    """kernel: the policy core, integer ns; page: the lab pages' floating-point emulators."""

    KERNEL = "kernel"
    PAGE = "page"


#: The methods each model can run; the pages have no EHP or DPAS emulator.
PAGE_METHODS = (Method.PAS, Method.LHP, Method.CP, Method.INT)

#: The kernel model's LHP statistics window by default: the kernel's 100 ms.
KERNEL_EPOCH_MS = 100.0
#: The LHP page's Auto epoch: the trace's total device time over this many (reference §3).
AUTO_EPOCHS = 20


#: The numbers of RANGES that EmulateConfig holds (the rest go to the trace and the policy).
CONFIG_NUMBERS = (
    "cs_overhead_us",
    "int_overhead_us",
    "initial_sleep_us",
    "up",
    "dn",
    "attenuation",
    "epoch_ms",
)


@dataclass(frozen=True, slots=True)
class EmulateConfig:
    """Both models' parameters, with the lab pages' defaults where they have one."""

    model: Model = Model.KERNEL
    #: context switch from the timer's expiry back to the polling thread (both models)
    cs_overhead_us: float = 2.0
    #: INT: ISR and wakeup added to the device time (both models)
    int_overhead_us: float = 2.0
    #: the pure tracker: PAS without the cs overhead
    track: bool = False
    # the page model
    up: float = 0.01
    dn: float = 0.1
    initial_sleep_us: float = 4.0
    attenuation: float = 0.5
    #: LHP epoch (page) and statistics window (kernel), ms of emulated time; None is the
    #: model's default: the page's Auto (see ``epoch_us_for``), the kernel's 100 ms
    epoch_ms: float | None = None
    # the kernel model
    policy: PolicyConfig = field(default_factory=PolicyConfig)

    def __post_init__(self) -> None:
        """Refuse numbers out of RANGES here too: the models loop on what they are given
        (an infinite first sleep never ends an LHP epoch)."""
        for name in CONFIG_NUMBERS:
            value = getattr(self, name)
            if value is not None:
                check(name, value)

    @property
    def cs_us(self) -> float:
        return 0.0 if self.track else self.cs_overhead_us

    @property
    def epoch_auto(self) -> bool:
        """Whether the LHP epoch is the page's Auto (the page model without ``epoch_ms``)."""
        return self.epoch_ms is None and self.model is Model.PAGE

    def epoch_us_for(self, device_us: np.ndarray) -> float:
        """The epoch a run over the device times ``device_us`` uses, in µs.

        The LHP page's default is Auto, the trace's total device time / 20, so that any trace
        gets some 20 epochs (100 ms is only its manual value); the kernel's window is 100
        ms. Auto stays in µs, with no round trip through ms to move a boundary by a bit.
        """
        if self.epoch_ms is not None:
            return self.epoch_ms * 1000
        if self.model is Model.PAGE:
            # summed left to right, as a plain loop adds (numpy's sum() is pairwise)
            return float(np.cumsum(device_us)[-1]) / AUTO_EPOCHS if len(device_us) else 0.0
        return KERNEL_EPOCH_MS * 1000

    def policy_for(self, method: Method) -> PolicyConfig:
        """The policy config of one method, with the LHP window from ``epoch_ms``."""
        window_ms = KERNEL_EPOCH_MS if self.epoch_ms is None else self.epoch_ms
        return replace(self.policy, method=method, lhp_window_ns=round(window_ms * 1e6))


def kernel_rates(up: float, dn: float, base: PasParams) -> PasParams:
    """The pages' UP and DN as the kernel's fixed-point up_init and dn_init."""
    return replace(base, up_init=round(up * 1e6), dn_init=round(dn * 1e6))


__all__ = [
    "PAGE_METHODS",
    "RANGES",
    "EmulateConfig",
    "Model",
    "PolicyConfig",
    "Range",
    "SwitchParams",
    "check",
    "kernel_rates",
]
