"""A finished engine run held against dpas.policy: its every logged decision (through
dpas.engine.iolog's replay) and, for DPAS, each CPU's state after the run."""

from __future__ import annotations

import numpy as np

from dpas.engine.iolog import replay_log
from dpas.engine.run import EngineResult
from dpas.policy import Method


def replay_differences(result: EngineResult) -> list[str]:
    """Where the engine's decisions differ from dpas.policy's for the feedback it saw: every
    decision (replay_log), and for DPAS each CPU's switch_stat totals and its transitions.
    Empty: identical. Needs the whole run in the log (EngineRun.log_ios at least the I/Os of
    each job)."""
    run = result.run
    if not result.logged_all:
        return ["the log does not hold every I/O of the run: raise log_ios"]
    config = run.policy_config()
    log = np.concatenate([job.log for job in result.jobs])
    # each job's op and size (a workload's jobs differ), one per logged I/O
    counts = [len(job.log) for job in result.jobs]
    ops = np.repeat(np.array([int(op) for op in run.ops], dtype=np.int64), counts)
    sizes = np.repeat(np.array(run.sizes, dtype=np.int64), counts)
    ncpus = max((c.cpu for c in result.cpus), default=0) + 1
    found, replayed = replay_log(log, config, ops, sizes, ncpus)
    if config.method is Method.DPAS:
        for cpu in result.cpus:
            totals = tuple(replayed.switch_stat[cpu.cpu][:4])
            if totals != tuple(cpu.totals.values()):
                found.append(f"CPU {cpu.cpu}: engine totals {cpu.totals}, policy {totals}")
        engine_transitions = [tuple(t) for cpu in result.cpus for t in cpu.transitions]
        if engine_transitions != replayed.transitions:
            found.append(
                f"transitions: engine {len(engine_transitions)}, policy "
                f"{len(replayed.transitions)} (or the same number, differing)"
            )
    return found
