"""I/Os per second of the trace emulators, per method and model (run by hand).

    python benchmarks/emulate_throughput.py [--ios N]

The issue's target: the kernel-model PAS emulation of 1,000,000 I/Os in at most 3 s. Each
method runs over the same noisy trace in this one process, so compare the ratios.
"""

from __future__ import annotations

import argparse
import time

from dpas.emulate import EmulateConfig, Model, emulate
from dpas.emulate.config import PAGE_METHODS
from dpas.emulate.traces import pattern
from dpas.policy import Method


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ios", type=int, default=1_000_000)
    args = parser.parse_args()
    trace = pattern("noisy:30:5", args.ios, 1)
    print(f"{'model':6} {'method':6} {'seconds':>8} {'I/Os per s':>12}")
    for model in Model:
        methods = PAGE_METHODS if model is Model.PAGE else Method.policies()
        for method in methods:
            start = time.perf_counter()
            emulate(trace, [method], EmulateConfig(model=model))
            seconds = time.perf_counter() - start
            print(f"{model.value:6} {method.value:6} {seconds:8.2f} {args.ios / seconds:12,.0f}")


if __name__ == "__main__":
    main()
