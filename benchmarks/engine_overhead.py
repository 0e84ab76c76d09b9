"""What the engine's hot loop costs per I/O beside the device (run by hand).

    python benchmarks/engine_overhead.py [--ios N]

Runs the compiled loop's bookkeeping alone, without I/O or sleep: the clock reads, the
state-domain locks, the four policy events of an I/O, the counters and the latency
histogram, exactly as the loop runs them. The target is at most 0.3 us an I/O for PAS and
DPAS. For scale, it also times the same decisions through dpas.policy in Python (what a Python
hot loop would pay), all in one run: compare the ratios, the machine's load moves both.
"""

from __future__ import annotations

import argparse
import time

from dpas.engine.native import native
from dpas.engine.rules import config_dict
from dpas.policy import Method, Op, PolicyConfig, Request, make_policy


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ios", type=int, default=5_000_000)
    args = parser.parse_args()
    engine = native()
    print(f"{'method':6} {'compiled ns/I/O':>16} {'Python ns/I/O':>14} {'ratio':>7}")
    for method in Method.policies():
        config = config_dict(PolicyConfig(method=method))
        compiled = min(engine.bookkeeping(config, args.ios, 0, 4096) for _ in range(3))
        python = python_ns(method, max(args.ios // 50, 10_000))
        print(f"{method.value:6} {compiled:16.1f} {python:14.0f} {python / compiled:7.0f}x")


if __name__ == "__main__":
    main()
