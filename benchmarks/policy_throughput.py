"""I/Os per second of each method's decisions through the event API (run by hand).

    python benchmarks/policy_throughput.py [--ios N]

Every method sees the same synthetic stream (one CPU, 4 KiB reads, a fixed latency, every
third sleep overslept), so the ratios between methods, measured in one run, are what to
compare; the absolute figures depend on the machine's load.
"""

from __future__ import annotations

import argparse
import time

from dpas.policy import Method, Op, PolicyConfig, Request, make_policy


def ios_per_second(method: Method, ios: int) -> float:
    policy = make_policy(PolicyConfig(method=method))
    request = Request(Op.READ, 4096)
    now = 0
    start = time.perf_counter()
    for i in range(ios):
        now += 20_000
        io = policy.on_submit(0, request, now)
        if io.polled:
            sleep = policy.on_wait_start(io, now)
            policy.on_wait_end(io, now + sleep)
        policy.on_complete(io, now + 15_000, found_on_first_poll=i % 3 == 0)
    return ios / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ios", type=int, default=300_000)
    args = parser.parse_args()
    rates = {m: ios_per_second(m, args.ios) for m in Method.policies()}
    base = rates[Method.INT]
    print(f"{'method':6} {'I/Os per s':>12} {'vs INT':>7}")
    for method, rate in rates.items():
        print(f"{method.value:6} {rate:12,.0f} {rate / base:7.2f}")


if __name__ == "__main__":
    main()
