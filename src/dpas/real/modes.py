"""What each mode means on the kernel found: the knob writes and the fio engine, or a refusal.

On the DPAS kernel every mode gets the settings of docs/reference.md section 1. On a stock kernel a
mode gets its closest real equivalent, stated in the plan's note, or a one-line refusal naming
what is missing. A mode is never swapped for another.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dpas.errors import DpasError
from dpas.machine.kernel import Kernel
from dpas.policy import Method, SwitchParams
from dpas.real.knobs import Knobs
from dpas.results import ENGINE


class Refused(DpasError, ValueError):
    """This mode cannot run here; the message says why in one line."""


@dataclass(frozen=True, slots=True)
class ModePlan:
    mode: Method
    ioengine: str
    hipri: bool
    knobs: dict[str, str] = field(default_factory=dict)
    note: str = ""


def _knob(knobs: Knobs | None, name: str) -> str | None:
    return knobs.read(name) if knobs is not None and knobs.has(name) else None


def plan_mode(
    mode: Method,
    kernel: Kernel,
    knobs: Knobs | None,
    d_init_ns: int,
    switch: SwitchParams,
    ioengine: str | None = None,
    where: str = "the device",
) -> ModePlan:
    dpas_kernel = knobs is not None and knobs.has("pas_enabled") and knobs.has("switch_enabled")
    _check_polling(mode, knobs, where)
    if mode is Method.HYB:
        raise Refused(
            "HYB needs io_uring's IORING_SETUP_HYBRID_IOPOLL, which no fio option sets: "
            "--engine dpas runs it"
            + ("" if kernel.io_uring_hybrid_polling else f" (on 6.13+; kernel {kernel.release})")
        )
    engine = "pvsync2" if kernel.sync_hipri_polls else "io_uring"
    if dpas_kernel:
        assert knobs is not None
        return _dpas_plan(mode, kernel, knobs, engine, d_init_ns, switch, ioengine, where)
    return _stock_plan(mode, kernel, knobs, engine, ioengine, where)


def _dpas_plan(
    mode: Method,
    kernel: Kernel,
    knobs: Knobs,
    engine: str,
    d_init_ns: int,
    switch: SwitchParams,
    ioengine: str | None,
    where: str,
) -> ModePlan:
    writes: dict[str, str] = {}
    if knobs.has("nomerges"):
        writes["nomerges"] = "2"
    hybrid = mode in (Method.LHP, Method.EHP, Method.PAS, Method.DPAS)
    if kernel.block_hybrid_polling:  # the 5.18 patch sleeps on the block layer's hybrid path
        if not knobs.has("io_poll_delay"):
            raise Refused(f"{mode.value} needs queue/io_poll_delay, which {where} does not have")
        writes["io_poll_delay"] = "0" if hybrid else "-1"
    elif mode is Method.LHP:
        raise Refused(
            f"LHP with fio needs block hybrid polling (queue/io_poll_delay, removed in 6.4), "
            f"which the DPAS series does not bring back (kernel {kernel.release}): --engine "
            "dpas runs it"
        )
    if knobs.has("ehp_enabled"):
        writes["ehp_enabled"] = "1" if mode is Method.EHP else "0"
    elif mode is Method.EHP:
        raise Refused(f"EHP needs the knob queue/ehp_enabled, which {where} does not have")
    writes["pas_enabled"] = "1" if mode in (Method.PAS, Method.DPAS) else "0"
    if mode in (Method.PAS, Method.DPAS):
        writes["pas_adaptive_enabled"] = "1"
        writes["pas_d_init"] = str(d_init_ns)
    if mode is Method.DPAS:
        for i in range(1, 8):
            writes[f"switch_param{i}"] = str(getattr(switch, f"param{i}"))
    writes["switch_enabled"] = "1" if mode is Method.DPAS else "0"  # last: it resets the state
    chosen = ioengine or engine
    note = (
        f"{mode.value}: DPAS kernel knobs, fio {chosen}{' hipri' if mode is not Method.INT else ''}"
    )
    return ModePlan(mode, chosen, mode is not Method.INT, writes, note)


def _stock_plan(
    mode: Method,
    kernel: Kernel,
    knobs: Knobs | None,
    engine: str,
    ioengine: str | None,
    where: str,
) -> ModePlan:
    if mode in (Method.PAS, Method.DPAS, Method.EHP):
        knob = "ehp_enabled" if mode is Method.EHP else "pas_enabled"
        raise Refused(
            f"{mode.value} with fio needs the DPAS kernel: queue/{knob} is missing on {where} "
            f"(kernel {kernel.release}); --engine dpas runs it on this kernel"
        )
    # a stock kernel's queue is left as it is, but for what a mode cannot do without
    writes: dict[str, str] = {}
    if mode is Method.INT:
        chosen = ioengine or "pvsync2"
        return ModePlan(
            mode, chosen, False, writes, f"INT: interrupt completion, fio {chosen} without hipri"
        )
    if mode is Method.CP:
        if kernel.block_hybrid_polling and knobs is not None and knobs.has("io_poll_delay"):
            writes["io_poll_delay"] = "-1"
        chosen = ioengine or engine
        how = (
            "sync hipri polls (up to 5.18)"
            if kernel.sync_hipri_polls
            else "io_uring IOPOLL, since sync hipri stopped polling in 5.19"
        )
        return ModePlan(
            mode, chosen, True, writes, f"CP: classic polling, fio {chosen} hipri ({how})"
        )
    # LHP
    if kernel.block_hybrid_polling:
        if knobs is None or not knobs.has("io_poll_delay"):
            raise Refused(f"LHP needs queue/io_poll_delay, which {where} does not show")
        writes["io_poll_delay"] = "0"
        chosen = ioengine or engine
        return ModePlan(
            mode,
            chosen,
            True,
            writes,
            f"LHP: block-layer hybrid polling (io_poll_delay 0), fio {chosen} hipri",
        )
    raise Refused(
        f"LHP with fio needs block hybrid polling (queue/io_poll_delay, removed in 6.4); kernel "
        f"{kernel.release}: --engine dpas runs it (and HYB, io_uring's hybrid polling, 6.13+)"
    )


def resets_state(kernel: Kernel, knobs: Knobs | None) -> bool:
    """The DPAS series of kernel/ (io_uring polling, 5.19+, and no EHP: no ehp_enabled) starts
    every CPU's switch state afresh when pas_enabled or switch_enabled is written; the 5.18
    patch never does, so its runs may have to settle a CPU back to PAS first."""
    return (
        not kernel.sync_hipri_polls
        and knobs is not None
        and knobs.has("switch_stat")
        and not knobs.has("ehp_enabled")
    )


def _check_polling(mode: Method, knobs: Knobs | None, where: str) -> None:
    """A polled mode needs a queue that can poll (io_poll 1): without poll queues an IOPOLL
    wait completes through the interrupt while the thread spins, measuring nothing."""
    if mode is not Method.INT and _knob(knobs, "io_poll") == "0":
        raise Refused(
            f"{mode.value} needs polled I/O: {where} has no poll queues (queue/io_poll is 0; "
            "for NVMe: modprobe nvme poll_queues=N)"
        )


def plan_engine(mode: Method, kernel: Kernel, knobs: Knobs | None, where: str) -> ModePlan:
    """The engine's plan: it waits itself, over io_uring (IOPOLL exists long before 5.19, when
    it became the only way to poll direct I/O).

    The only knob it touches is io_poll_delay, where the kernel still has it (before 6.4): at
    -1 the kernel's own polling spins without a block-layer hybrid sleep of its own, so every
    sleep is the engine's (an IOPOLL wait goes through the same blk_poll).
    """
    _check_polling(mode, knobs, where)
    if mode is Method.HYB and not kernel.io_uring_hybrid_polling:
        raise Refused(
            f"HYB needs io_uring's IORING_SETUP_HYBRID_IOPOLL, Linux 6.13 or newer "
            f"(kernel {kernel.release})"
        )
    writes: dict[str, str] = {}
    if mode is not Method.INT and _knob(knobs, "io_poll_delay") not in (None, "-1"):
        writes["io_poll_delay"] = "-1"
    waits = {
        Method.INT: "an io_uring without IOPOLL: the thread sleeps until the interrupt",
        Method.CP: "an IOPOLL io_uring: the kernel spins until the completion",
        Method.HYB: "an IOPOLL|HYBRID_IOPOLL io_uring: the kernel sleeps, then spins",
    }
    how = waits.get(
        mode,
        "dpas.policy decides per I/O (compiled): sleep, one poll pass, then spin on IOPOLL, "
        "or the interrupt ring",
    )
    return ModePlan(mode, ENGINE, mode is not Method.INT, writes, f"{mode.value}: {ENGINE}, {how}")
