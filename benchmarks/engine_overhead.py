"""What the engine's hot loop costs per I/O beside the device (run by hand).

    python benchmarks/engine_overhead.py [--ios N] [--rounds R] [--before OLD_ENGINE.so]
                                         [--save docs/data/engine-overhead.json]

Runs the compiled hot loop itself (one_io(), the sequence every mode takes) on its fake device:
every clock read, state-domain lock, policy event, counter, log check and histogram update of an
I/O, with the device left out. The fake device's script gives both verdicts (sleeps found on the
first poll pass and not), so PAS keeps adapting. Printed per mode, median over the rounds with
their min-max:

- ``loop ns``: the loop's own work per I/O. INT and CP are one submit-and-wait; a policy I/O
  that does not sleep takes CP's path plus its two lock holds; a sleeping one adds its wake-up.
- ``sleep ns``: the same with a real clock_nanosleep of 1 ns (timer slack 1 ns, as the job
  threads set it) for each sleep the policy takes, while the virtual clock moves by the
  policy's time: what a sleeping I/O costs beyond CP's path besides the device and the sleep
  itself (the timer's system call and wake-up; on real rings also one more io_uring_enter).
- with ``--before``, an older build of ``dpas.engine._engine`` (its ``bookkeeping(policy, n,
  op, size)``) measured in the same rounds, interleaved: compare the ratios, not the ns.

For scale, the same decisions through dpas.policy in Python. Timing here is noisy: the rounds
interleave the variants so that the machine's load moves them all alike. ``--save`` writes
every round's result (ns and sleeps per mode) and the Python figures: docs/make.py renders
docs/engine.md's table from them.
"""

from __future__ import annotations

import argparse
import importlib.machinery
import importlib.util
import statistics
import time
from collections import defaultdict
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from measured import save

from dpas.engine.native import native
from dpas.engine.rules import config_dict
from dpas.policy import Method, Op, PolicyConfig, Request, make_policy

MODES = Method.policies()
SLEEPERS = (Method.LHP, Method.EHP, Method.PAS, Method.DPAS)
DEVICE = np.array([7_000, 9_000, 12_000, 8_000, 30_000, 5_000, 11_000], dtype="<i8").tobytes()
LATE = np.array([0, 500, 3_000, 1_200, 6_000], dtype="<i8").tobytes()


def python_ns(method: Method, ios: int) -> float:
    """The same decisions through the Python reference, ns per I/O."""
    policy = make_policy(PolicyConfig(method=method))
    request = Request(Op.READ, 4096)
    start = time.perf_counter_ns()
    for i in range(ios):
        now = time.monotonic_ns()
        io = policy.on_submit(0, request, now)
        if io.polled:
            policy.on_wait_start(io, time.monotonic_ns())
            policy.on_wait_end(io, time.monotonic_ns())
        policy.on_complete(io, time.monotonic_ns(), found_on_first_poll=i % 7 < 4)
    return (time.perf_counter_ns() - start) / ios


def load_before(path: str) -> ModuleType:
    """An older build of the extension, loaded beside today's under its own file name."""
    loader = importlib.machinery.ExtensionFileLoader("dpas.engine._engine", path)
    spec = importlib.util.spec_from_file_location("dpas.engine._engine", path, loader=loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def measure(args: argparse.Namespace) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Each round's result per variant and mode: the engine's dict (ns_per_io, sleeps...)."""
    engine = native()
    before = load_before(args.before) if args.before else None
    found: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for _ in range(args.rounds):
        for method in MODES:
            config = config_dict(PolicyConfig(method=method))
            found["loop"][method.value].append(
                engine.bookkeeping(config, args.ios, 0, DEVICE, LATE)
            )
            if method in SLEEPERS:
                slept = engine.bookkeeping(config, args.ios // 20, 0, DEVICE, LATE, True)
                found["sleep"][method.value].append(slept)
            if before is not None:
                ns = before.bookkeeping(config, args.ios, 0, 4096)
                found["before"][method.value].append({"ns_per_io": ns})
    return found


def ns(found: dict[str, dict[str, list[dict[str, Any]]]], kind: str, method: Method) -> list[float]:
    return [r["ns_per_io"] for r in found[kind].get(method.value, [])]


def spread(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{statistics.median(values):7.0f} ({min(values):.0f}-{max(values):.0f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ios", type=int, default=2_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--before", help="an older _engine*.so to compare with")
    parser.add_argument("--save", type=Path, help="write the results here (docs/data/...)")
    args = parser.parse_args()
    found = measure(args)
    columns = ["loop ns", "sleep ns"] + (["before ns"] if args.before else []) + ["Python ns"]
    print(f"{'mode':6} " + " ".join(f"{c:>20}" for c in columns))
    python: dict[str, float] = {}
    for method in MODES:
        cells = [spread(ns(found, "loop", method)), spread(ns(found, "sleep", method))]
        if args.before:
            cells.append(spread(ns(found, "before", method)))
        if method is not Method.INT:
            python[method.value] = python_ns(method, max(args.ios // 50, 10_000))
        cells.append(f"{python[method.value]:20.0f}" if method.value in python else f"{'-':>20}")
        print(f"{method.value:6} " + " ".join(f"{c:>20}" for c in cells))
    cp = statistics.median(ns(found, "loop", Method.CP))
    for method in SLEEPERS:
        loop, sleep = (statistics.median(ns(found, k, method)) for k in ("loop", "sleep"))
        print(f"{method.value}: loop - CP's {loop - cp:+.0f} ns, a real sleep adds "
              f"{sleep - loop:+.0f} ns an I/O")  # fmt: skip
    if args.save:
        results = {"ios": args.ios, "sleep_ios": args.ios // 20, "python_ns": python, **found}
        save(args.save, "the engine's hot loop per I/O on its fake device, ns", results)


if __name__ == "__main__":
    main()
