"""An emulation: methods over one trace, under one model, into versioned records."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from dpas.emulate.config import PAGE_METHODS, EmulateConfig, Model
from dpas.emulate.iolog import IoLog
from dpas.emulate.kernel import run_kernel
from dpas.emulate.page import run_page
from dpas.emulate.summary import MethodSummary, mean, summarize
from dpas.emulate.traces import Trace, TraceError, device_times
from dpas.policy import Method

SCHEMA = "dpas.emulate/1"


@dataclass(slots=True)
class Emulation:
    """The records of one run; ``logs`` hold every I/O, by method."""

    trace: Trace
    config: EmulateConfig
    #: the LHP epoch / statistics window the run used, µs (the page's Auto resolved)
    epoch_us: float
    summaries: list[MethodSummary] = field(default_factory=list)
    logs: dict[str, IoLog] = field(default_factory=dict)

    @property
    def epoch_ms(self) -> float:
        return self.epoch_us / 1000

    def records(self) -> dict[str, object]:
        """JSON-ready: the schema, the trace, the configuration and one summary per method."""
        return {
            "schema": SCHEMA,
            "trace": {
                "name": self.trace.name,
                "source": self.trace.source,
                "ios": len(self.trace),
                "device_mean_us": mean(self.trace.device_us),
            },
            "config": _config_record(self.config, self.epoch_ms),
            "methods": [asdict(s) for s in self.summaries],
        }


def _config_record(config: EmulateConfig, epoch_ms: float) -> dict[str, object]:
    """The configuration; ``epoch_ms`` is the epoch used (a number even when it was Auto,
    which ``epoch_auto`` says)."""
    record = asdict(config)
    record["model"] = config.model.value
    record["epoch_ms"] = epoch_ms
    record["epoch_auto"] = config.epoch_auto
    policy = record.pop("policy")
    if config.model is Model.KERNEL:
        policy.pop("method")
        policy["order"] = config.policy.order.value
        record["policy"] = policy
    return record


def check_methods(methods: list[Method], config: EmulateConfig) -> None:
    """Refuse combinations the models cannot run, naming what they can."""
    if config.model is Model.PAGE:
        for m in methods:
            if m not in PAGE_METHODS:
                names = ", ".join(p.value.lower() for p in PAGE_METHODS)
                raise ValueError(f"method {m.value.lower()}: the page model has {names}")
    if config.track and methods != [Method.PAS]:
        raise ValueError("--track is the PAS tracker: use it with --method pas alone")


def check_trace(trace: Trace) -> None:
    """The models' precondition, whoever built the trace: I/Os, each a device time (a time
    of 0 makes a run of no time, one of 1e18 µs overflows the kernel model's int64 ns)."""
    if not len(trace):
        raise TraceError(f"trace {trace.name}: no device times found")
    device_times(trace.device_us, f"trace {trace.name}")


def emulate(trace: Trace, methods: list[Method], config: EmulateConfig) -> Emulation:
    check_methods(methods, config)
    check_trace(trace)
    result = Emulation(trace, config, config.epoch_us_for(trace.device_us))
    for method in methods:
        if config.model is Model.PAGE:
            log = run_page(method, trace, config, result.epoch_us)
        else:
            log = run_kernel(method, trace, config)
        name = method.value.lower()
        result.logs[name] = log
        result.summaries.append(summarize(name, log))
    return result
