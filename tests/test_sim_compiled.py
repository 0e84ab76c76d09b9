"""The compiled simulator (mypyc) against its .py sources: the same records, bit for bit; and
the switch between them (DPAS_PURE_PYTHON, a source changed since it was compiled).

The comparison runs in two subprocesses, one compiled and one with DPAS_PURE_PYTHON=1: a
process takes its decision once, for the whole compiled set. This file is also the child's
script (``python tests/test_sim_compiled.py`` reads the configs as JSON on stdin).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from dataclasses import asdict
from importlib.machinery import EXTENSION_SUFFIXES
from itertools import product
from pathlib import Path
from typing import Any

import pytest
from conftest import need

from dpas.compiled import BASE, LIBRARY, MANIFEST, MODULES, PURE_ENV, decide, manifest_text

JOBS = (1, 3, 16)
CPUS = ("0", "split")
BS = (4096, 65536)
RW = ("READ", "WRITE")
#: (runtime_s, ios): short runs, each limit both ways
LIMITS = ((0.005, None), (0.02, None), (None, 1000), (None, 3000))
PITFALLS: tuple[dict[str, Any], ...] = (
    {},
    {"always_yield": False},
    {"always_yield": True},
    {"poll_queues": False},
    {"io_poll_delay": -1},
    {"stats_sectors_bug": True, "queue_stats": True},
)
RULES = ("lab", "artifact")
SEEDS = (1, 2, 7)


def configs() -> list[dict[str, Any]]:
    """Every shipped profile x method x jobs x CPU placement, twice, the other dimensions
    drawn (seeded) for each: every value of each is used many times, in varied company."""
    from dpas.policy import Method
    from dpas.sim.profile import shipped

    rng = random.Random(20260)
    grid = product(shipped(), [m.value for m in Method.policies()], JOBS, CPUS, range(2))
    return [
        {
            "profile": profile,
            "method": method,
            "jobs": jobs,
            "cpus": cpus,
            "bs": rng.choice(BS),
            "rw": rng.choice(RW),
            "limit": rng.choice(LIMITS),
            "pitfalls": rng.choice(PITFALLS),
            "rules": rng.choice(RULES),
            "seed": rng.choice(SEEDS),
        }
        for profile, method, jobs, cpus, _ in grid
    ]


#: a workload with every pattern, short enough for LIMITS' runs (dpas.workload)
WORKLOAD = """name = "every"
[[group]]
name = "fg"
jobs = 2
cpus = "split"
think_us = 3
[[group]]
name = "gen"
role = "background"
jobs = 2
pinned = false
cpus = "0-1"
bs = 131072
burst_ios = 5
period_ms = 2
[[group]]
name = "capped"
role = "background"
rate_iops = 20000
start_s = 0.002
on_s = 0.003
off_s = 0.002
"""


def workload_configs() -> list[dict[str, Any]]:
    """The workload on two profiles, under every policy and both rules."""
    from dpas.policy import Method

    return [
        {
            "profile": profile,
            "method": method.value,
            "jobs": 2,
            "cpus": "0",
            "bs": 4096,
            "rw": "READ",
            "limit": (0.02, None),
            "pitfalls": {},
            "rules": rules,
            "seed": 3,
            "workload": WORKLOAD,
        }  # fmt: skip
        for profile in ("qemu-lab", "optane-p5800x")
        for method in Method.policies()
        for rules in RULES
    ]


def simulate_spec(spec: dict[str, Any]) -> str:
    """One config's record as JSON text (the child's work)."""
    from dpas.policy import RULE_SETS, Method, Op
    from dpas.sim import RunConfig, load, simulate
    from dpas.workload import Workload, parse

    profile = load(spec["profile"])
    if spec["pitfalls"]:
        profile = profile.with_pitfalls(**spec["pitfalls"])
    runtime_s, ios = spec["limit"]
    config = RunConfig(
        profile,
        Method(spec["method"]),
        jobs=spec["jobs"],
        rw=Op[spec["rw"]],
        bs=spec["bs"],
        cpus=spec["cpus"],
        runtime_s=runtime_s or 1.0,
        ios=ios,
        seed=spec["seed"],
        rules=RULE_SETS[spec["rules"]],
        workload=parse(spec["workload"], "test") if spec.get("workload") else Workload(),
    )
    return json.dumps(asdict(simulate(config)), sort_keys=True, default=repr)


def child_main() -> None:
    """Run the configs on stdin; print which simulator ran and the records."""
    import dpas.compiled
    import dpas.sim  # the compiled set, or its sources

    specs = json.load(sys.stdin)
    json.dump(
        {
            "mode": dpas.compiled.mode(),
            "files": {m: sys.modules[m].__file__ for m in MODULES},
            "records": [simulate_spec(spec) for spec in specs],
        },
        sys.stdout,
    )


def child_env(pure: bool, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != PURE_ENV}
    if pure:
        env[PURE_ENV] = "1"
    return {**env, **extra}


def start_child(specs: list[dict[str, Any]], pure: bool) -> subprocess.Popen[str]:
    child = subprocess.Popen(
        [sys.executable, __file__],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(pure),
    )
    assert child.stdin is not None
    child.stdin.write(json.dumps(specs))
    child.stdin.close()
    return child


def finish(child: subprocess.Popen[str]) -> dict[str, Any]:
    assert child.stdout is not None and child.stderr is not None
    out, err = child.stdout.read(), child.stderr.read()
    assert child.wait() == 0, err
    assert err == ""
    result: dict[str, Any] = json.loads(out)
    return result


def require_compiled() -> None:
    """Skip when this install has no usable compiled set, and say why (under CI: fail)."""
    status = decide(environ=child_env(pure=False))
    need(status.active, f"the compiled simulator is not in use: {status.reason}")


def test_the_configs_cover_every_value() -> None:
    specs = configs()
    for key, values in (
        ("bs", BS),
        ("rw", RW),
        ("limit", LIMITS),
        ("pitfalls", PITFALLS),
        ("rules", RULES),
        ("seed", SEEDS),
    ):
        used = [spec[key] for spec in specs]
        assert all(value in used for value in values), key


def test_compiled_and_pure_give_the_same_records_bit_for_bit() -> None:
    require_compiled()
    specs = configs() + workload_configs()
    compiled_child, pure_child = start_child(specs, pure=False), start_child(specs, pure=True)
    compiled, pure = finish(compiled_child), finish(pure_child)
    assert compiled["mode"] == "compiled" and pure["mode"] == "python"
    assert all(not f.endswith(".py") for f in compiled["files"].values()), compiled["files"]
    assert all(f.endswith(".py") for f in pure["files"].values()), pure["files"]
    for spec, a, b in zip(specs, compiled["records"], pure["records"], strict=True):
        assert a == b, f"compiled and pure differ for {spec}"


def test_pure_python_loads_the_sources() -> None:
    pure = finish(start_child([], pure=True))
    assert pure["mode"] == "python"
    for module, file in pure["files"].items():
        assert file.endswith(os.path.join(*module.split(".")) + ".py")


# -- the switch, on a copy of the package whose compiled files are stand-ins -----------------


def fake_install(base: Path) -> Path:
    """dpas's sources under ``base``, a manifest of them, and stand-in compiled files: enough
    for the decision, which never loads a compiled file it rejects."""
    skip = shutil.ignore_patterns("__pycache__", "*.so", MANIFEST)
    shutil.copytree(BASE / "dpas", base / "dpas", ignore=skip)
    (base / "dpas" / MANIFEST).write_text(manifest_text(base))
    for module in (*MODULES, LIBRARY):
        stem = base.joinpath(*module.split("."))
        stem.with_name(stem.name + EXTENSION_SUFFIXES[0]).write_bytes(b"not a library")
    return base


def edit(path: Path) -> None:
    path.write_text(path.read_text() + "\n# edited after the compile\n")


def test_a_source_changed_since_the_compile_runs_the_whole_set_from_source(
    tmp_path: Path,
) -> None:
    site = fake_install(tmp_path / "site")
    edit(site / "dpas" / "sim" / "host.py")
    code = (
        "import json, sys, dpas.sim, dpas.compiled as c; c.active(); c.mode();"
        f"print(json.dumps([sys.modules[m].__file__ for m in {MODULES!r}] + [c.mode()]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=child_env(pure=False, PYTHONPATH=str(site)),
    )
    assert done.returncode == 0, done.stderr
    host = os.path.join("site", "dpas", "sim", "host.py")
    assert done.stderr.splitlines() == [
        f"dpas: {host} changed since it was compiled; the simulator runs as pure Python "
        "(pip install -e . compiles it again)"
    ]
    *files, mode = json.loads(done.stdout)
    assert mode == "python"
    assert files == [str(site.joinpath(*m.split(".")).with_suffix(".py")) for m in MODULES]


def test_unchanged_sources_use_the_compiled_set(tmp_path: Path) -> None:
    status = decide(fake_install(tmp_path), environ={})
    assert status.active and status.notice is None


@pytest.mark.parametrize("value", ["1", "yes"])
def test_dpas_pure_python_wins_silently(tmp_path: Path, value: str) -> None:
    status = decide(fake_install(tmp_path), environ={PURE_ENV: value})
    assert not status.active and status.notice is None
    assert decide(tmp_path, environ={PURE_ENV: "0"}).active


def test_never_compiled_or_a_failed_compile_runs_python_silently(tmp_path: Path) -> None:
    site = fake_install(tmp_path)
    (site / "dpas" / MANIFEST).unlink()
    status = decide(site, environ={})
    assert not status.active and status.notice is None
    (site / "dpas" / MANIFEST).write_text(manifest_text(site, error="mypyc failed: a reason"))
    status = decide(site, environ={})
    assert not status.active and status.notice is None and "a reason" in status.reason


def test_a_missing_compiled_file_runs_python_and_says_so(tmp_path: Path) -> None:
    site = fake_install(tmp_path)
    stem = site / LIBRARY
    stem.with_name(stem.name + EXTENSION_SUFFIXES[0]).unlink()
    status = decide(site, environ={})
    assert not status.active and status.notice is not None and LIBRARY in status.notice


def test_several_changed_sources_are_named_in_one_line(tmp_path: Path) -> None:
    site = fake_install(tmp_path)
    for module in MODULES[:2]:
        edit(site.joinpath(*module.split(".")).with_suffix(".py"))
    status = decide(site, environ={})
    assert status.notice is not None and "\n" not in status.notice
    assert "they were compiled" in status.notice
    assert all(m.split(".")[-1] + ".py" in status.notice for m in MODULES[:2])


if __name__ == "__main__":
    child_main()
